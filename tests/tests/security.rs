//! Regression tests for the runc/crun/youki CVE classes berth guards against.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::symlink;

/// CVE-2019-5736: the container must never reach a writable berth binary
/// through /proc/PID/exe. The attack takes a handle on the init's exe while
/// berth runs inside the container and reopens it for writing once berth
/// has exited: both must fail (a read-only bind of berth, EROFS; or, where
/// that cannot be made, a sealed memfd, EPERM).
#[test]
fn berth_binary_cannot_be_written_through_the_inits_exe() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut b = Bundle::new("exe");
    b.args(&["/probe", "sleep", "30"]);
    let (id, out) = b.create("c");
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let exe = std::ffi::CString::new(format!("/proc/{pid}/exe")).unwrap();
    // SAFETY: open(2) with a valid C string; the fd is owned below.
    let fd = unsafe { libc::open(exe.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open O_PATH: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fd.
    let handle = unsafe { OwnedFd::from_raw_fd(fd) };
    let reopen = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
    };
    assert!(
        reopen().is_err(),
        "the init's executable could be opened for writing while it ran"
    );
    assert!(b.cmd(&["delete", "--force", &id]).status.success());
    assert!(
        reopen().is_err(),
        "the berth binary could be reopened for writing after berth exited"
    );
    // Which errno comes first depends on whether some other berth still
    // runs the same file (ETXTBSY), so check the protection itself: the
    // handle's mount is read-only, or the file is a sealed memfd.
    // SAFETY: zeroed statvfs is a valid out-buffer; fcntl on our own fd.
    let (ro, seals) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let ro =
            libc::fstatvfs(handle.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0;
        let f = std::fs::File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).unwrap();
        (ro, libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS))
    };
    assert!(
        ro || (seals > 0 && seals & libc::F_SEAL_WRITE != 0),
        "the init's executable is neither on a read-only mount nor a sealed memfd"
    );
    // And the binary the host runs is the same file, untouched.
    assert!(berth_bin().exists());
}

/// CVE-2024-21626: a cwd that points through an fd leaked into the init
/// must not give the container a host directory.
#[test]
fn cwd_through_proc_self_fd_is_refused() {
    for fd in 3..9 {
        let mut b = Bundle::new("cwd");
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        let (code, out, err) = b.run("c");
        assert_ne!(code, 0, "cwd /proc/self/fd/{fd} was accepted: {out}");
        assert!(err.contains("process.cwd"), "{err}");
    }
}

/// Symlinks in the rootfs are resolved as if the rootfs were /: a mount
/// destination that is a symlink to an absolute host path lands inside the
/// rootfs, never on the host (CVE-2021-30465 class).
#[test]
fn mount_destination_symlinks_stay_inside_the_rootfs() {
    let mut b = Bundle::new("symlink");
    let escape = format!("/tmp/berth-escape-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&escape);
    symlink(&escape, b.rootfs().join("evil")).unwrap();
    symlink(
        "../../../../../../../../tmp/berth-rel-escape",
        b.rootfs().join("evil2"),
    )
    .unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}));
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil2/sub", "type": "tmpfs", "source": "tmpfs"}));
    b.config["root"]["readonly"] = json!(false);
    let r = b.report();
    assert!(
        !std::path::Path::new(&escape).exists(),
        "mount escaped to the host"
    );
    assert!(
        !std::path::Path::new("/tmp/berth-rel-escape").exists(),
        "relative symlink escaped"
    );
    assert!(
        b.rootfs().join(escape.trim_start_matches('/')).is_dir(),
        "target not created inside the rootfs"
    );
    assert!(
        mount(&r, &escape).is_some(),
        "tmpfs not mounted at the resolved path"
    );
    assert!(mount(&r, "/tmp/berth-rel-escape/sub").is_some());
}

/// A /proc destination that is a symlink is refused outright
/// (CVE-2019-19921 class).
#[test]
fn proc_mounted_on_a_symlink_is_refused() {
    let mut b = Bundle::new("procsym");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("fakeproc")).unwrap();
    symlink("/fakeproc", b.rootfs().join("proc")).unwrap();
    let (id, out) = b.create("p");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/proc"), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

/// Masking uses the host's verified /dev/null, so a rootfs whose /dev/null
/// is a symlink to a sensitive file cannot turn masking into an exposure
/// (CVE-2025-31133 class), and a symlinked masked path is not followed.
#[test]
fn masking_cannot_be_redirected_by_rootfs_symlinks() {
    let mut b = Bundle::new("maskdev");
    // No /dev tmpfs: the rootfs's own /dev is used, with a hostile null.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| {
        m["destination"] != "/dev"
            && m["destination"] != "/dev/pts"
            && m["destination"] != "/dev/shm"
            && m["destination"] != "/dev/mqueue"
    });
    symlink("/proc/sys/kernel/core_pattern", b.rootfs().join("dev/null")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    symlink("/etc/passwd", b.rootfs().join("data/secret")).unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/proc/sys/kernel/core_pattern"));
    b.config["root"]["readonly"] = json!(false);
    b.args(&[
        "/probe",
        "stat",
        "/proc/timer_list",
        "/proc/sys/kernel/core_pattern",
        "/dev/null",
    ]);
    let (code, out, err) = b.run("m");
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    for p in [
        "/proc/timer_list",
        "/proc/sys/kernel/core_pattern",
        "/dev/null",
    ] {
        assert_eq!(
            (
                s[p]["kind"].as_str(),
                s[p]["major"].as_u64(),
                s[p]["minor"].as_u64()
            ),
            (Some("char"), Some(1), Some(3)),
            "{p}: {}",
            s[p]
        );
    }

    let mut b = Bundle::new("masksym");
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    symlink("/etc/passwd", b.rootfs().join("data/secret")).unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/data/secret"));
    let (id, out) = b.create("s");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a symlinked masked path was followed"
    );
    assert!(stderr(&out).contains("maskedPaths"), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

/// Bind mount sources are host paths chosen by the config's author, but
/// the destination inside the rootfs must not be swappable: the mount lands
/// on the inode that was resolved, checked by a file bind.
#[test]
fn file_bind_mount_lands_on_the_resolved_file() {
    let mut b = Bundle::new("filebind");
    let src = b.dir.join("payload");
    std::fs::write(&src, "payload").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/sub")).unwrap();
    symlink("/etc/sub/target", b.rootfs().join("etc/link")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/link", "type": "bind", "source": src, "options": ["bind", "ro"]}));
    b.args(&["/probe", "read", "/etc/sub/target"]);
    let (code, out, err) = b.run("f");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "payload");
    assert!(b.rootfs().join("etc/sub/target").exists());
}

/// The Rust runtime ignores SIGPIPE; an ignored signal survives execve, so
/// berth must restore it (and an empty signal mask) for the program.
#[test]
fn program_starts_with_default_signal_dispositions() {
    let mut b = Bundle::new("sigpipe");
    // cat, not the probe: a Rust program ignores SIGPIPE itself at start-up.
    b.args(&["/bin/cat", "/proc/self/status"]);
    let (code, out, err) = b.run("s");
    assert_eq!(code, 0, "{err}");
    let field = |name: &str| {
        let l = out.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(l[name.len()..].trim(), 16).unwrap()
    };
    let sigpipe = 1u64 << (13 - 1);
    assert_eq!(
        field("SigIgn:") & sigpipe,
        0,
        "SIGPIPE ignored in the container"
    );
    assert_eq!(field("SigBlk:"), 0, "signals blocked in the container");
}

/// With the host's /dev bound in, linux.devices must not create or re-own
/// nodes in it.
#[test]
fn devices_are_not_made_in_a_bound_host_dev() {
    let mut b = Bundle::new("devbind");
    let node = format!("berth-test-node-{}", std::process::id());
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}),
    );
    b.config["linux"]["devices"] =
        json!([{"path": format!("/dev/{node}"), "type": "c", "major": 1, "minor": 3}]);
    let (code, _, err) = b.run("d");
    assert_eq!(code, 0, "{err}");
    assert!(
        !std::path::Path::new("/dev").join(&node).exists(),
        "device node created on the host"
    );
}

#[test]
fn state_is_private_to_root() {
    use std::os::unix::fs::PermissionsExt;
    let mut b = Bundle::new("perm");
    b.args(&["/probe", "sleep", "30"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&b.root), 0o700);
    assert_eq!(mode(&b.root.join(&id).join("state.json")), 0o600);
}
