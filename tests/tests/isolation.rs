//! What a container sees from inside, reported by the probe.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;

#[test]
fn probe_is_pid_one_with_its_own_namespaces_and_hostname() {
    let mut b = Bundle::new("ns");
    b.config["domainname"] = json!("example.test");
    // Not in the default config (runc's has none): asked for here.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let r = b.report();
    assert_eq!(r["pid"], 1);
    assert_eq!(r["hostname"], "berth-ns");
    assert_eq!(r["domainname"], "example.test");
    for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            r["namespaces"][ns],
            host.to_string_lossy().as_ref(),
            "{ns} namespace shared with host"
        );
    }
    // Not asked for: shared with the host.
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_eq!(
        r["namespaces"]["user"],
        host_user.to_string_lossy().as_ref()
    );
}

#[test]
fn joining_a_namespace_by_path_shares_it() {
    let mut b = Bundle::new("join");
    // Join the host's network namespace through its path.
    let net = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    for n in net.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!(format!("/proc/{}/ns/net", std::process::id()));
        }
    }
    let r = b.report();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(r["namespaces"]["net"], host.to_string_lossy().as_ref());
}

#[test]
fn user_ids_groups_umask_cwd_and_env_come_from_the_config() {
    let mut b = Bundle::new("user");
    std::fs::create_dir_all(b.rootfs().join("work")).unwrap();
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 63});
    b.config["process"]["cwd"] = json!("/work");
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    let r = b.report();
    assert_eq!(
        (r["uid"].as_u64(), r["euid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        (r["gid"].as_u64(), r["egid"].as_u64()),
        (Some(1000), Some(1000))
    );
    let groups: Vec<u64> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    assert_eq!(groups, vec![5, 7]);
    assert_eq!(r["umask"], 63);
    assert_eq!(r["cwd"], "/work");
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"FOO=bar"));
    assert!(env.contains(&"HOME=/home/tester"), "{env:?}");
}

#[test]
fn capability_sets_and_no_new_privs_match_the_config() {
    let mut b = Bundle::new("caps");
    // CAP_CHOWN(0) CAP_KILL(5) CAP_NET_BIND_SERVICE(10) CAP_SYS_ADMIN(21)
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    let r = b.report();
    assert_eq!(r["caps"]["bounding"], caps_mask(&[0, 5, 10, 21]));
    // no_new_privs (the default spec's) stops execve from widening
    // permitted to the bounding set, as it would for uid 0 otherwise.
    assert_eq!(r["caps"]["permitted"], caps_mask(&[0, 5, 10]));
    assert_eq!(r["caps"]["inheritable"], caps_mask(&[5]));
    assert_eq!(r["caps"]["ambient"], caps_mask(&[5]));
    assert_eq!(r["no_new_privs"], true);

    let mut b = Bundle::new("caps-user");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let r = b.report();
    // A non-root user keeps only what the ambient set carries over exec.
    assert_eq!(r["caps"]["effective"], caps_mask(&[10]));
    assert_eq!(r["caps"]["bounding"], caps_mask(&[5, 10]));
    assert_eq!(r["no_new_privs"], false);
}

#[test]
fn rlimits_are_applied() {
    let mut b = Bundle::new("rlimit");
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
    ]);
    let r = b.report();
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"], json!([512, 1000]));
    assert_eq!(r["rlimits"]["RLIMIT_CORE"], json!([0, 0]));
    assert_eq!(r["rlimits"]["RLIMIT_NPROC"], json!([300, 400]));
}

#[test]
fn mounts_have_their_types_and_flags() {
    let mut b = Bundle::new("mounts");
    let src = b.dir.join("shared");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello"), "hi").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700", "noexec"]}));
    mounts.push(json!({"destination": "/etc/hostfile", "type": "bind", "source": src.join("hello"), "options": ["bind"]}));
    let r = b.report();
    let root = mount(&r, "/").expect("root mount");
    assert!(has_opt(root, "ro"), "root.readonly: {root}");
    assert_eq!(mount(&r, "/proc").unwrap()["fstype"], "proc");
    assert_eq!(mount(&r, "/dev").unwrap()["fstype"], "tmpfs");
    assert_eq!(mount(&r, "/dev/pts").unwrap()["fstype"], "devpts");
    assert!(mount(&r, "/dev/pts").unwrap()["super_options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "ptmxmode=666"));
    assert_eq!(mount(&r, "/dev/mqueue").unwrap()["fstype"], "mqueue");
    assert_eq!(mount(&r, "/sys").unwrap()["fstype"], "sysfs");
    let data = mount(&r, "/data").expect("bind mount");
    assert!(has_opt(data, "ro") && has_opt(data, "nosuid"), "{data}");
    let scratch = mount(&r, "/scratch").expect("tmpfs");
    assert_eq!(scratch["fstype"], "tmpfs");
    assert!(has_opt(scratch, "noexec"));
    let so: Vec<&str> = scratch["super_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        so.contains(&"size=1024k") && so.contains(&"mode=700"),
        "{so:?}"
    );
    assert!(mount(&r, "/etc/hostfile").is_some());
    // Nothing of the host's tree remains visible.
    assert!(mount(&r, "/work").is_none() && mount(&r, "/tmp/berth-tests").is_none());
}

#[test]
fn masked_and_readonly_paths_and_devices() {
    let mut b = Bundle::new("mask");
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 0, "gid": 0},
        {"path": "/dev/sub/loopish", "type": "b", "major": 7, "minor": 200, "fileMode": 432, "uid": 1000, "gid": 5}
    ]);
    b.args(&[
        "/probe",
        "stat",
        "/proc/timer_list",
        "/proc/keys",
        "/sys/firmware",
        "/dev/fuse",
        "/dev/sub/loopish",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/fd",
        "/dev/stdin",
        "/dev/shm",
        "/dev/pts",
    ]);
    let (code, out, err) = b.run("stat");
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for p in ["/proc/timer_list", "/proc/keys"] {
        assert_eq!(
            (
                s[p]["kind"].as_str(),
                s[p]["major"].as_u64(),
                s[p]["minor"].as_u64()
            ),
            (Some("char"), Some(1), Some(3)),
            "{p} not masked: {}",
            s[p]
        );
    }
    assert_eq!(s["/sys/firmware"]["kind"], "dir");
    for (p, maj, min) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        assert_eq!(
            (
                s[p]["kind"].as_str(),
                s[p]["major"].as_u64(),
                s[p]["minor"].as_u64()
            ),
            (Some("char"), Some(maj), Some(min)),
            "{p}: {}",
            s[p]
        );
        assert_eq!(s[p]["perm"], 0o666, "{p}");
    }
    assert_eq!(s["/dev/fuse"]["perm"], 0o600);
    assert_eq!(
        (
            s["/dev/fuse"]["major"].as_u64(),
            s["/dev/fuse"]["minor"].as_u64()
        ),
        (Some(10), Some(229))
    );
    let l = &s["/dev/sub/loopish"];
    assert_eq!(
        (
            l["kind"].as_str(),
            l["perm"].as_u64(),
            l["uid"].as_u64(),
            l["gid"].as_u64()
        ),
        (Some("block"), Some(0o660), Some(1000), Some(5))
    );
    assert_eq!(s["/dev/ptmx"]["link"], "pts/ptmx");
    assert_eq!(s["/dev/fd"]["link"], "/proc/self/fd");
    assert_eq!(s["/dev/stdin"]["link"], "/proc/self/fd/0");
    assert_eq!(s["/dev/shm"]["kind"], "dir");

    // A masked directory is empty, a read-only path refuses writes.
    b.args(&["/probe", "ls", "/sys/firmware"]);
    let (_, out, _) = b.run("ls");
    assert_eq!(out.trim(), "[]");
    b.args(&["/probe", "write", "/proc/sys/kernel/hostname", "x"]);
    let (_, out, _) = b.run("ro");
    let w: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(w["ok"], false);
    assert_eq!(w["errno"], libc_erofs());
}

fn libc_erofs() -> i32 {
    30
}

#[test]
fn sysctl_oom_score_adj_and_time_offsets_apply_inside() {
    let mut b = Bundle::new("sysctl");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    b.config["process"]["oomScoreAdj"] = json!(321);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400000, "nanosecs": 0}});
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.args(&["/bin/sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/self/oom_score_adj /proc/uptime"]);
    let (code, out, err) = b.run("sysctl");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], &["1", "1234", "321"]);
    let uptime: f64 = lines[3].split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        uptime > 86_400_000.0,
        "boottime offset not applied: {uptime}"
    );
    // The host is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );
}

#[test]
fn user_namespace_maps_ids_and_leaves_host_devices_alone() {
    let before: Vec<(u32, u32)> = ["/dev/null", "/dev/zero", "/dev/tty"]
        .iter()
        .map(|p| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        })
        .collect();
    let mut b = Bundle::new("userns");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs must be readable by the mapped root.
    chown_tree(&b.rootfs(), 100000);
    let r = b.report();
    assert_eq!(r["uid"], 0);
    assert!(
        r["uid_map"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["0", "100000", "65536"],
        "{}",
        r["uid_map"]
    );
    assert_eq!(r["devices"]["/dev/null"]["major"], 1);
    let after: Vec<(u32, u32)> = ["/dev/null", "/dev/zero", "/dev/tty"]
        .iter()
        .map(|p| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        })
        .collect();
    assert_eq!(before, after, "host device nodes were re-owned");
}

fn chown_tree(p: &std::path::Path, id: u32) {
    let _ = std::process::Command::new("chown")
        .args(["-R", "-h", &format!("{id}:{id}")])
        .arg(p)
        .status();
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let mut b = Bundle::new("fds");
    let r = b.report();
    let fds = fd_numbers(&r);
    assert_eq!(fds, vec![0, 1, 2], "leaked fds: {}", r["fds"]);

    // --preserve-fds 1 passes fd 3 through.
    let id = b.id("preserve");
    b.write_config();
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let mut cmd = b.berth();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(&b.dir)
        .arg(&id);
    pass_as_fd3(&mut cmd, &f);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fds: Vec<(u64, String)> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fd"].as_u64().unwrap(),
                f["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(fds.len(), 4, "{fds:?}");
    assert_eq!(fds[3].0, 3);
}

#[test]
fn socket_activation_fds_pass_with_listen_env() {
    let mut b = Bundle::new("listen");
    let id = b.id("l");
    b.write_config();
    let f = std::fs::File::open("/etc/hostname").unwrap();
    // LISTEN_PID must name berth itself: set it from a shell that execs berth.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
        .arg(berth_bin())
        .arg("--root")
        .arg(&b.root)
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&id);
    pass_as_fd3(&mut cmd, &f);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fds = fd_numbers(&r);
    assert_eq!(fds, vec![0, 1, 2, 3]);
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"LISTEN_FDS=1") && env.contains(&"LISTEN_PID=1"),
        "{env:?}"
    );
}

#[test]
fn a_missing_cwd_is_created_inside_the_rootfs_even_with_a_read_only_root() {
    let mut b = Bundle::new("mkcwd");
    // A symlink in the image pointing at a host path: the cwd under it
    // must be made inside the rootfs, never on the host.
    let host = PathBuf::from(format!("/tmp/berth-cwd-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&host);
    std::os::unix::fs::symlink(&host, b.rootfs().join("escape")).unwrap();
    b.config["root"]["readonly"] = json!(true);
    // (getcwd in the container shows the link resolved, inside it.)
    let resolved = host.join("work").to_string_lossy().into_owned();
    for (cwd, seen) in [
        ("/no/such/dir", "/no/such/dir"),
        ("/escape/work", &*resolved),
    ] {
        b.config["process"]["cwd"] = json!(cwd);
        let r = b.report();
        assert_eq!(r["cwd"], seen);
    }
    assert!(b.rootfs().join("no/such/dir").is_dir());
    assert!(b
        .rootfs()
        .join(host.strip_prefix("/").unwrap())
        .join("work")
        .is_dir());
    assert!(!host.exists(), "cwd created on the host through a symlink");
}
