//! The shim's short-lived commands: `start` (find or launch the shim daemon
//! for a container and tell containerd its address), `delete` (clean up
//! after a shim that died), and `-info`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use protobuf::Message;
use sha2::Digest;

use crate::flags::Flags;

/// Annotations that put several containers into one shim: the pod's.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

/// Where containerd's own shims put their sockets.
const SOCKET_DIR: &str = "/run/containerd/s";

/// In the bundle: the state root the container was created under, for
/// `delete` after the shim that knew it is gone.
pub const ROOT_FILE: &str = "berth-root";

/// berth's state root for a containerd namespace, as runc's shim uses
/// /run/containerd/runc/<namespace>.
pub fn runtime_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/berth").join(namespace)
}

/// The socket of the shim serving `group`: a hash of containerd's address,
/// the namespace and the group, so two containerds never share a shim.
fn socket_path(f: &Flags, group: &str) -> PathBuf {
    let mut h = sha2::Sha256::new();
    h.update(f.address.as_bytes());
    h.update(b"/");
    h.update(f.namespace.as_bytes());
    h.update(b"/");
    h.update(group.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Path::new(SOCKET_DIR).join(hex)
}

fn group_of(bundle: &Path, id: &str) -> String {
    let Ok(text) = std::fs::read(bundle.join("config.json")) else {
        return id.to_string();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return id.to_string();
    };
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| v["annotations"][k].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string()
}

/// `start`: containerd runs it in the bundle and reads one address from its
/// stdout.
pub fn start(f: &Flags) -> Result<(), String> {
    // The runtime options arrive on stdin; the daemon reads them from the
    // Create request instead.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let bundle = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    let group = group_of(&bundle, &f.id);
    let sock = socket_path(f, &group);
    let address = format!("unix://{}", sock.display());
    if UnixStream::connect(&sock).is_ok() {
        // A shim already serves this pod.
        return reply(f, &bundle, &address);
    }
    // Only root may talk to a shim: the socket is 0600 whatever the umask.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o077) };
    std::fs::create_dir_all(SOCKET_DIR).map_err(|e| format!("mkdir {SOCKET_DIR}: {e}"))?;
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(|e| format!("listen on {}: {e}", sock.display()))?;
    let lfd = listener.as_raw_fd();
    let exe = std::env::current_exe().map_err(|e| format!("finding the shim binary: {e}"))?;
    let mut cmd = Command::new(exe);
    let mut daemon_flags = f.clone();
    daemon_flags.socket = sock.display().to_string();
    cmd.args(daemon_flags.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2, fcntl and setsid are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set.
            let placed = if lfd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(lfd, 3)
            };
            if placed < 0 || libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        let _ = std::fs::remove_file(&sock);
        format!("starting the shim daemon: {e}")
    })?;
    drop(listener);
    // The daemon outlives this command; whoever adopts it reaps it.
    std::mem::forget(child);
    reply(f, &bundle, &address)
}

fn reply(f: &Flags, bundle: &Path, address: &str) -> Result<(), String> {
    let _ = std::fs::write(bundle.join("address"), address);
    let out = if task_api_version(f) >= 3 {
        serde_json::json!({"version": 3, "address": address, "protocol": "ttrpc"}).to_string()
    } else {
        address.to_string()
    };
    let mut so = std::io::stdout();
    so.write_all(out.as_bytes())
        .and_then(|_| so.flush())
        .map_err(|e| format!("writing the address: {e}"))
}

/// The task API containerd speaks: 3 for containerd 2.x, 2 for 1.x, which
/// refuses a version-3 reply. Nothing in the call tells them apart, so the
/// shim looks at the Go build info of the containerd binary that runs it
/// (`-publish-binary`): 2.x is the module github.com/containerd/containerd/v2.
/// Both versions accept a plain address, which means version 2.
pub fn task_api_version(f: &Flags) -> u32 {
    if let Ok(v) = std::env::var("BERTH_SHIM_TASK_API") {
        return v.parse().unwrap_or(2);
    }
    match go_main_path(Path::new(&f.publish_binary)) {
        Some(p) if p.contains("github.com/containerd/containerd/v2/") => 3,
        _ => 2,
    }
}

/// The `path` line of a Go binary's build info, from its `.go.buildinfo`
/// ELF section: a few reads, no exec.
fn go_main_path(bin: &Path) -> Option<String> {
    let file = std::fs::File::open(bin).ok()?;
    let mut eh = [0u8; 64];
    file.read_exact_at(&mut eh, 0).ok()?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 {
        return None;
    }
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let shoff = u64_at(&eh, 0x28);
    let shentsize = u16_at(&eh, 0x3a) as usize;
    let shnum = u16_at(&eh, 0x3c) as usize;
    let shstrndx = u16_at(&eh, 0x3e) as usize;
    if shentsize < 64 || shnum == 0 || shnum > 4096 || shstrndx >= shnum {
        return None;
    }
    let mut sh = vec![0u8; shentsize * shnum];
    file.read_exact_at(&mut sh, shoff).ok()?;
    let section = |i: usize| {
        let s = &sh[i * shentsize..];
        (u32_at(s, 0), u64_at(s, 0x18), u64_at(s, 0x20))
    };
    let (_, stroff, strsize) = section(shstrndx);
    let mut names = vec![0u8; strsize.min(1 << 16) as usize];
    file.read_exact_at(&mut names, stroff).ok()?;
    for i in 0..shnum {
        let (name, off, size) = section(i);
        let name = names.get(name as usize..)?;
        if name.starts_with(b".go.buildinfo\0") {
            let mut data = vec![0u8; size.min(1 << 16) as usize];
            file.read_exact_at(&mut data, off).ok()?;
            let at = data.windows(5).position(|w| w == b"path\t")?;
            let rest = &data[at + 5..];
            let end = rest.iter().position(|&b| b == b'\n')?;
            return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
    None
}

/// `delete`: containerd lost the shim (it was killed); kill and remove the
/// container, unmount its rootfs, and report how it ended.
pub fn delete(f: &Flags) -> Result<(), String> {
    let bundle = if f.bundle.is_empty() {
        std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?
    } else {
        PathBuf::from(&f.bundle)
    };
    let root = std::fs::read(bundle.join(ROOT_FILE))
        .ok()
        .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
        .unwrap_or_else(|| runtime_root(&f.namespace));
    let rt = berth::Runtime::new(root, false);
    let pid = rt.state(&f.id).map(|s| s.pid).unwrap_or(0);
    if let Err(e) = rt.delete(&f.id, true) {
        eprintln!("containerd-shim-berth-v2: deleting {}: {e}", f.id);
    }
    crate::rootfs::unmount(&bundle.join("rootfs"));
    // The dead shim's socket, unless another shim of the pod still serves.
    let sock = socket_path(f, &group_of(&bundle, &f.id));
    if UnixStream::connect(&sock).is_err() {
        let _ = std::fs::remove_file(&sock);
    }
    let mut resp = containerd_shim_protos::shim::shim::DeleteResponse::new();
    resp.pid = pid.max(0) as u32;
    resp.exit_status = 128 + libc::SIGKILL as u32;
    resp.exited_at = protobuf::MessageField::some(crate::events::now());
    let bytes = resp
        .write_to_bytes()
        .map_err(|e| format!("encoding: {e}"))?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| format!("writing the reply: {e}"))
}

/// `-info`: the runtime's name, version and OCI features, for containerd's
/// introspection.
pub fn info() -> Result<(), String> {
    use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let mut info = RuntimeInfo::new();
    info.name = "io.containerd.berth.v2".into();
    let mut v = RuntimeVersion::new();
    v.version = env!("CARGO_PKG_VERSION").into();
    info.version = protobuf::MessageField::some(v);
    let mut features = protobuf::well_known_types::any::Any::new();
    features.type_url =
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into();
    features.value = serde_json::to_vec(&berth::features::document()).map_err(|e| e.to_string())?;
    info.features = protobuf::MessageField::some(features);
    let bytes = info.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| format!("writing the reply: {e}"))
}

/// The listener `start` handed the daemon as fd 3.
pub fn inherited_listener() -> Result<OwnedFd, String> {
    // SAFETY: fcntl on a fixed fd number; taken only if it is open.
    if unsafe { libc::fcntl(3, libc::F_GETFD) } < 0 {
        return Err("no listening socket on fd 3: the daemon is started by `start`".into());
    }
    // SAFETY: fd 3 is open and ours from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(3) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_depends_on_address_namespace_and_group() {
        let mut f = Flags {
            address: "/run/a.sock".into(),
            namespace: "default".into(),
            ..Flags::default()
        };
        let a = socket_path(&f, "pod1");
        assert_eq!(a, socket_path(&f, "pod1"));
        assert_ne!(a, socket_path(&f, "pod2"));
        f.namespace = "k8s.io".into();
        assert_ne!(a, socket_path(&f, "pod1"));
        assert!(a.as_os_str().len() < 108, "fits in sun_path");
    }

    #[test]
    fn pod_annotation_groups_containers() {
        let d = std::env::temp_dir().join(format!("berth-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb1"}}"#,
        )
        .unwrap();
        assert_eq!(group_of(&d, "ctr1"), "sb1");
        std::fs::write(d.join("config.json"), r#"{"annotations":{}}"#).unwrap();
        assert_eq!(group_of(&d, "ctr1"), "ctr1");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn non_go_binary_means_task_api_2() {
        let f = Flags {
            publish_binary: "/proc/self/exe".into(),
            ..Flags::default()
        };
        std::env::remove_var("BERTH_SHIM_TASK_API");
        assert_eq!(task_api_version(&f), 2);
    }
}
