//! runc's argument forms that scripts and clients use, on real containers.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn v1_dir(controller: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("berth")
        .join(id)
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A running container of `/probe sleep 600`.
fn running(b: &mut Bundle, name: &str) -> String {
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create(name);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.cmd(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    id
}

#[test]
fn update_takes_minus_one_as_unlimited_and_runcs_aliases() {
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        return; // the v1 paths below; the v2 guest covers update itself
    }
    let mut b = Bundle::new("upd");
    b.config["linux"]["resources"] =
        serde_json::json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let id = running(&mut b, "u");
    let out = b.cmd(&[
        "update",
        "--memory",
        "-1",
        "--pids-limit",
        "-1",
        "--cpu-quota",
        "-1",
        "--cpu-share",
        "512",
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mem: u64 = read(v1_dir("memory", &id).join("memory.limit_in_bytes"))
        .parse()
        .unwrap();
    assert!(mem > 1 << 62, "memory limit still {mem}");
    assert_eq!(read(v1_dir("pids", &id).join("pids.max")), "max");
    assert_eq!(read(v1_dir("cpu", &id).join("cpu.shares")), "512");
    assert_eq!(read(v1_dir("cpu", &id).join("cpu.cfs_quota_us")), "-1");

    // Realtime CPU: applied where the kernel has RT group scheduling, and
    // refused naming the field where it has not.
    let out = b.cmd(&[
        "update",
        "--cpu-rt-period",
        "1000000",
        "--cpu-rt-runtime",
        "0",
        &id,
    ]);
    if v1_dir("cpu", &id).join("cpu.rt_period_us").exists() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(read(v1_dir("cpu", &id).join("cpu.rt_period_us")), "1000000");
    } else {
        assert!(!out.status.success());
        assert!(stderr(&out).contains("realtime"), "{}", stderr(&out));
    }
    // Intel RDT: this host has no resctrl; a clear refusal, not a no-op.
    for flag in ["--l3-cache-schema", "--mem-bw-schema"] {
        let out = b.cmd(&["update", flag, "L3:0=f", &id]);
        assert!(!out.status.success(), "{flag} accepted");
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
}

#[test]
fn kill_with_signal_0_only_checks_the_container() {
    let mut b = Bundle::new("kill0");
    let id = running(&mut b, "k");
    assert!(b.cmd(&["kill", &id, "0"]).status.success());
    assert_eq!(b.status(&id), "running");
    assert!(b.cmd(&["kill", &id, "KILL"]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["kill", &id, "0"]);
    assert!(!out.status.success());
}

#[test]
fn ps_passes_options_after_the_id_to_ps() {
    let mut b = Bundle::new("psopts");
    let id = running(&mut b, "p");
    let out = b.cmd(&["ps", &id, "-o", "pid,comm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "COMMAND"]);
    assert!(lines.any(|l| l.ends_with("probe")), "{text}");
}

#[test]
fn run_no_subreaper_still_reports_the_exit_status() {
    let mut b = Bundle::new("nosub");
    b.args(&["/probe", "exit", "7"]);
    let id = b.id("r");
    b.write_config();
    let out = b
        .berth()
        .args([
            "run",
            "--no-subreaper",
            "--bundle",
            b.dir.to_str().unwrap(),
            &id,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn exec_cgroup_runs_the_process_in_a_sub_cgroup() {
    if !Path::new("/sys/fs/cgroup/pids").is_dir() {
        return; // v1 layout below
    }
    let mut b = Bundle::new("execcg");
    let id = running(&mut b, "e");
    // `sub` in every hierarchy the container's cgroup is in.
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("berth").join(&id);
        if d.is_dir() {
            std::fs::create_dir(d.join("sub")).unwrap();
            // A cpuset cgroup takes no task before it has cpus and mems.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(d.join(f)) {
                    std::fs::write(d.join("sub").join(f), v.trim()).unwrap();
                }
            }
        }
    }
    let line = |text: &str, ctrl: &str| -> String {
        text.lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctrl))
            })
            .map(|l| l.rsplit(':').next().unwrap().to_string())
            .unwrap_or_default()
    };
    // Every hierarchy.
    let out = b.cmd(&[
        "exec",
        "--cgroup",
        "sub",
        &id,
        "/bin/cat",
        "/proc/self/cgroup",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = stdout(&out);
    assert!(line(&t, "pids").ends_with("/sub"), "{t}");
    assert!(line(&t, "memory").ends_with("/sub"), "{t}");
    // One controller's hierarchy only (v1 form).
    let out = b.cmd(&[
        "exec",
        "--cgroup",
        "pids:sub",
        &id,
        "/bin/cat",
        "/proc/self/cgroup",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = stdout(&out);
    assert!(line(&t, "pids").ends_with("/sub"), "{t}");
    assert!(!line(&t, "memory").ends_with("/sub"), "{t}");
    // Missing and escaping sub-cgroups are refused.
    for bad in ["nosuch", "../x", "/abs"] {
        let out = b.cmd(&["exec", "--cgroup", bad, &id, "/bin/true"]);
        assert!(!out.status.success(), "--cgroup {bad} accepted");
        assert!(stderr(&out).contains("--cgroup"), "{}", stderr(&out));
    }
    assert!(b.cmd(&["delete", "--force", &id]).status.success());
    assert_nothing_left(&b, &id);
}

#[test]
fn usage_errors_are_one_line_with_status_1() {
    let b = Bundle::new("usage");
    for args in [
        &["--no-such-flag"][..],
        &["kill"],
        &["update", "--memory"],
        &["exec", "--no-such", "x"],
    ] {
        let out = b.cmd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = stderr(&out);
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
        assert!(e.starts_with("berth: "), "{e}");
    }
    let out = b.cmd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn version_prints_runcs_layout_with_v_and_version() {
    let b = Bundle::new("version");
    for flag in ["--version", "-v"] {
        let out = b.cmd(&[flag]);
        assert!(out.status.success(), "{flag}");
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("berth version "), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("commit: ")), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("spec: 1.")), "{text}");
    }
}

#[test]
fn every_command_has_help_man_pages_and_completions() {
    let b = Bundle::new("helpman");
    for c in [
        "create",
        "start",
        "run",
        "state",
        "list",
        "kill",
        "delete",
        "exec",
        "pause",
        "resume",
        "ps",
        "events",
        "update",
        "spec",
        "features",
        "check",
        "completion",
        "man",
    ] {
        let out = b.cmd(&[c, "--help"]);
        assert!(out.status.success(), "{c} --help");
        assert!(stdout(&out).contains("Usage: "), "{c}");
    }
    for sh in ["bash", "zsh", "fish"] {
        let out = b.cmd(&["completion", sh]);
        assert!(out.status.success(), "{sh}");
        assert!(stdout(&out).contains("berth"), "{sh}");
        assert!(stdout(&out).contains("exec"), "{sh}: no subcommands");
    }
    let dir = b.dir.join("man8");
    let out = b.cmd(&["man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "berth.8",
        "berth-create.8",
        "berth-exec.8",
        "berth-update.8",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
}

#[test]
fn check_reports_this_host_in_text_and_json() {
    let b = Bundle::new("check");
    let out = b.cmd(&["check"]);
    // This host has everything berth needs (the suite runs containers).
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for name in [
        "openat2",
        "cgroups",
        "seccomp",
        "AppArmor",
        "user namespaces",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let out = b.cmd(&["check", "--format", "json"]);
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = items.as_array().unwrap();
    let cg = items.iter().find(|i| i["name"] == "cgroups").unwrap();
    assert_eq!(cg["status"], "ok");
    let expect_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(
        cg["detail"].as_str().unwrap().contains("cgroup v2"),
        expect_v2,
        "{cg}"
    );
    let aa = items.iter().find(|i| i["name"] == "AppArmor").unwrap();
    let has_aa = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    assert_eq!(aa["status"] == "ok", has_aa, "{aa}");
}
