//! runc parity for the rootfs, namespaces, the working directory and the
//! terminal: behaviours tools built around runc rely on, checked from
//! inside real containers.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_no_pivot_container_cannot_mount_an_unmasked_proc() {
    // chroot leaves the host's fully visible /proc in the mount namespace;
    // unless it is hidden, a process that makes a user namespace of its
    // own inside could mount a new, unmasked procfs (the kernel's "mount
    // too revealing" check only looks for a visible one in the namespace).
    let mut b = Bundle::new("nopivot");
    std::os::unix::fs::symlink("busybox", b.rootfs().join("bin/unshare")).unwrap();
    // Mapping root into a new user namespace takes CAP_SETFCAP (5.12+).
    let caps = json!(["CAP_SETFCAP"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.args(&[
        "/bin/unshare",
        "-mrpf",
        "/bin/sh",
        "-c",
        "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused",
    ]);
    b.write_config();
    let id = b.id("n");
    let out = b.cmd(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "refused");
    // The host's own /proc is untouched.
    assert!(std::path::Path::new("/proc/self/status").exists());
}

#[test]
fn the_cwd_is_entered_before_the_user_switch() {
    // /root is 0700 root: root can enter it, uid 1000 could not.
    let mut b = Bundle::new("cwdroot");
    std::fs::set_permissions(
        b.rootfs().join("root"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["cwd"] = json!("/root");
    b.args(&["/probe", "report"]);
    let r = b.report();
    assert_eq!(r["cwd"], "/root");
}

#[test]
fn tmpfs_takes_the_mode_of_the_directory_it_covers_and_ratime_applies() {
    let mut b = Bundle::new("tmpfsmode");
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    std::fs::set_permissions(
        b.rootfs().join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
    );
    mounts.push(json!({"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/at", "type": "bind", "source": "/tmp", "options": ["rbind", "rnoatime"]}));
    mounts.push(json!({"destination": "/rat", "type": "bind", "source": "/tmp", "options": ["rbind", "rnoatime", "ratime"]}));
    b.config["root"]["readonly"] = json!(false);
    b.args(&["/probe", "stat", "/data", "/fresh"]);
    let (code, out, err) = b.run("s");
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["/data"]["perm"], 0o710, "{s}");
    assert_eq!(s["/fresh"]["perm"], 0o1777, "{s}");
    b.args(&["/probe", "report"]);
    let r = b.report();
    assert!(has_opt(mount(&r, "/at").unwrap(), "noatime"));
    assert!(!has_opt(mount(&r, "/rat").unwrap(), "noatime"));
}

#[test]
fn a_read_only_dev_tmpfs_still_gets_devpts_and_device_nodes_under_it() {
    let mut b = Bundle::new("rodev");
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    b.args(&["/probe", "report"]);
    let r = b.report();
    let dev = mount(&r, "/dev").unwrap();
    assert!(has_opt(dev, "ro"), "{dev}");
    assert!(mount(&r, "/dev/pts").is_some(), "{}", r["mounts"]);
    b.args(&["/probe", "stat", "/dev/null", "/dev/ptmx"]);
    let (code, out, err) = b.run("st");
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["/dev/null"]["kind"], "char");
    assert_eq!(s["/dev/ptmx"]["kind"], "symlink");
}

#[test]
fn an_empty_namespace_path_means_a_new_namespace() {
    let mut b = Bundle::new("emptyns");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "ipc" {
            n["path"] = json!("");
        }
    }
    let r = b.report();
    let host = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_ne!(r["namespaces"]["ipc"], host.to_string_lossy().as_ref());
}

#[test]
fn time_offsets_apply_together_with_a_user_namespace() {
    let mut b = Bundle::new("timeuser");
    with_userns(&mut b);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400000, "nanosecs": 0}});
    b.args(&["/bin/cat", "/proc/uptime"]);
    let (code, out, err) = b.run("t");
    assert_eq!(code, 0, "{err}");
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(up > 86_400_000.0, "boottime offset not applied: {out}");
}

#[test]
fn a_symlinked_destination_under_proc_or_sys_is_refused_in_runcs_words() {
    // /proc/self is a symlink (into the container's pid namespace view).
    let mut b = Bundle::new("symdest");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/proc/self/x", "type": "tmpfs", "source": "tmpfs"}));
    let (code, _, err) = b.run("s");
    assert_ne!(code, 0);
    assert!(
        err.contains("must be mounted on ordinary directory"),
        "{err}"
    );
    let id = b.ids.last().unwrap().clone();
    assert_nothing_left(&b, &id);
}

#[test]
fn the_console_is_the_users_and_output_lines_keep_plain_newlines() {
    let mut b = Bundle::new("ttyown");
    let sock = b.dir.join("console.sock");
    let receiver = console_socket(&sock);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.args(&[
        "/bin/sh",
        "-c",
        "stat -c %u /proc/self/fd/0; echo a; echo b",
    ]);
    let id = b.id("t");
    b.write_config();
    let out = b.detached(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, master) = receiver.join().unwrap();
    assert!(b.cmd(&["start", &id]).status.success());
    let text = read_master(master);
    assert_eq!(text, "1000\na\nb\n", "{text:?}");
}

#[test]
fn cgroup_v1_hierarchies_are_bound_in_a_user_namespace_with_a_read_only_root() {
    if !std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        return; // a v1 layout
    }
    for cgroupns in [true, false] {
        let mut b = Bundle::new("usercg");
        let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        if cgroupns {
            ns.push(json!({"type": "cgroup"}));
        }
        with_userns(&mut b);
        b.config["linux"]["resources"] = json!({"pids": {"limit": 77}});
        b.config["root"]["readonly"] = json!(true);
        // The container's own pids cgroup, with its limit, is what it sees.
        b.args(&["/bin/cat", "/sys/fs/cgroup/pids/pids.max"]);
        let (code, out, err) = b.run("c");
        assert_eq!(code, 0, "cgroupns {cgroupns}: {err}");
        assert_eq!(out.trim(), "77");
    }
}

#[test]
fn a_bind_source_the_mapped_root_cannot_reach_still_mounts() {
    // /tmp/<dir> is 0700 root: uid 100000 (the container's root) cannot
    // pass through it, the host's root can.
    let mut b = Bundle::new("hiddensrc");
    let secret = b.dir.join("secret");
    std::fs::create_dir_all(secret.join("inner")).unwrap();
    std::fs::write(secret.join("inner/f"), "reached").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    with_userns(&mut b);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind",
        "source": secret.join("inner"), "options": ["rbind", "ro"]
    }));
    b.args(&["/bin/cat", "/data/f"]);
    let (code, out, err) = b.run("h");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "reached");
    b.args(&["/probe", "report"]);
    let r = b.report();
    assert!(has_opt(mount(&r, "/data").unwrap(), "ro"));
}

#[test]
fn exec_with_a_terminal_gets_the_console_size_it_asks_for() {
    let mut b = Bundle::new("execsize");
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("s");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let sock = b.dir.join("exec-console.sock");
    let receiver = console_socket(&sock);
    let pfile = b.dir.join("p.json");
    std::fs::write(
        &pfile,
        json!({"args": ["/probe", "setsid-tty"], "cwd": "/", "terminal": true,
               "consoleSize": {"height": 21, "width": 87}, "user": {"uid": 0, "gid": 0}})
        .to_string(),
    )
    .unwrap();
    let out = b.detached(&[
        "exec",
        "--console-socket",
        sock.to_str().unwrap(),
        "--process",
        pfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, master) = receiver.join().unwrap();
    let v: serde_json::Value = serde_json::from_str(read_master(master).trim()).unwrap();
    assert_eq!(
        (v["rows"].as_u64(), v["cols"].as_u64()),
        (Some(21), Some(87)),
        "{v}"
    );
    assert!(b.cmd(&["delete", "--force", &id]).status.success());
}
