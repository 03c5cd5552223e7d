//! The systemd cgroup driver (`--systemd-cgroup`), checked against a real
//! systemd. This host has none (PID 1 is not systemd), so the tests that
//! need one are `#[ignore]`d here and run by hack/systemd-guest.sh in a
//! QEMU guest booted with systemd as PID 1 (`cargo test -- --ignored`), on
//! pure cgroup v2 and on a hybrid v1 layout like this host's.
//! What this host can check is that the driver is refused clearly.

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl_show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "--value", "-p", prop, unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether the host runs pure cgroup v2; otherwise v1 (legacy or hybrid),
/// which hack/systemd-guest.sh boots with systemd.unified_cgroup_hierarchy=0.
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of a scope in `system.slice` for `controller` (v2: the one
/// directory).
fn scope_dir(unit: &str, controller: &str) -> PathBuf {
    let root = if unified() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    };
    root.join("system.slice").join(unit)
}

/// A limit file's name and the unit property of the same limit, on this
/// host's cgroup version.
fn memory_limit() -> (&'static str, &'static str) {
    if unified() {
        ("memory.max", "MemoryMax")
    } else {
        ("memory.limit_in_bytes", "MemoryLimit")
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// A bundle whose container runs in `system.slice` as
/// `berth-test-<id>.scope`; returns the id, the scope's name and its
/// directory in the pids hierarchy (v2: its only one).
fn systemd_bundle(b: &mut Bundle, name: &str) -> (String, String, PathBuf) {
    let id = b.id(name);
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:berth-test:{id}"));
    let unit = format!("berth-test-{id}.scope");
    let dir = scope_dir(&unit, "pids");
    (id, unit, dir)
}

fn sd(b: &Bundle, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--systemd-cgroup"];
    full.extend_from_slice(args);
    b.detached(&full)
}

fn create(b: &Bundle, id: &str) {
    b.write_config();
    let out = sd(b, &["create", "--bundle", b.dir.to_str().unwrap(), id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
}

fn assert_unit_gone(unit: &str, dir: &Path) {
    assert!(
        wait_until(|| systemctl_show(unit, "LoadState") == "not-found"),
        "{unit} still loaded: {}",
        systemctl_show(unit, "ActiveState")
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    // v1: the hierarchies systemd does not manage are berth's to clean.
    for c in ["cpuset", "freezer", "memory", "cpu"] {
        let d = scope_dir(unit, c);
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn systemd_driver_is_refused_clearly_on_a_host_without_systemd() {
    if systemd_booted() {
        // The ignored tests below cover a systemd host.
        return;
    }
    let mut b = Bundle::new("sd-refused");
    let (id, _, _) = systemd_bundle(&mut b, "c");
    b.write_config();
    let out = sd(&b, &["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--systemd-cgroup") && err.contains("not booted with systemd"),
        "{err}"
    );
    assert_nothing_left(&b, &id);
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn init_runs_in_a_delegated_transient_scope_with_its_limits() {
    assert!(systemd_booted());
    let mut b = Bundle::new("sd-scope");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.args(&["/probe", "sleep", "60"]);
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    create(&b, &id);

    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(systemctl_show(&unit, "Delegate"), "yes");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "5");
    let (file, prop) = memory_limit();
    assert_eq!(systemctl_show(&unit, prop), "67108864");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // v2: the one line; v1: every hierarchy, the unified one included.
    for line in cg.lines() {
        assert!(
            line.ends_with(&format!(":/system.slice/{unit}")),
            "init is not in the scope: {cg}"
        );
    }
    assert_eq!(read(&scope_dir(&unit, "memory"), file), "67108864");
    let out = sd(&b, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_unit_gone(&unit, &dir);
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn pids_limit_of_the_scope_makes_the_next_fork_fail() {
    let mut b = Bundle::new("sd-pids");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    b.args(&["/probe", "fork", "20"]);
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    b.write_config();
    let out = b
        .berth()
        .args(["--systemd-cgroup", "run", "--bundle"])
        .arg(&b.dir)
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "run: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["forked"].as_u64().unwrap() < 5, "{v}");
    assert_eq!(v["errno"], 11, "fork should fail with EAGAIN: {v}");
    // run deletes the container: the scope goes with it.
    assert_unit_gone(&unit, &dir);
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn limits_survive_a_daemon_reload() {
    let mut b = Bundle::new("sd-reload");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 50331648});
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    b.args(&["/probe", "sleep", "60"]);
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    create(&b, &id);
    // systemd rewrites the cgroup files of its units from their properties
    // on a reload: limits only written to the files would be reset.
    let st = Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        read(&scope_dir(&unit, "memory"), memory_limit().0),
        "50331648"
    );
    if !unified() {
        // With no device properties systemd would write "a *:* rwm" here.
        let list = read(&scope_dir(&unit, "devices"), "devices.list");
        assert!(!list.contains("a *:* rwm"), "devices opened up: {list}");
        assert!(list.contains("c 1:3 rwm"), "/dev/null lost: {list}");
    }
    let cpu = scope_dir(&unit, "cpu");
    if unified() {
        assert_eq!(read(&cpu, "cpu.max"), "20000 100000");
    } else {
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    }
    let out = sd(&b, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_unit_gone(&unit, &dir);
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn update_sets_the_units_properties_and_the_files() {
    let mut b = Bundle::new("sd-update");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    b.args(&["/probe", "sleep", "60"]);
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    create(&b, &id);
    let out = sd(&b, &["update", "--pids-limit", "7", &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(systemctl_show(&unit, "TasksMax"), "7");
    assert_eq!(read(&dir, "pids.max"), "7");
    let out = sd(&b, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_unit_gone(&unit, &dir);
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn exec_joins_the_scope_and_force_delete_empties_it() {
    let mut b = Bundle::new("sd-exec");
    b.args(&["/probe", "sleep", "60"]);
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    create(&b, &id);
    assert!(sd(&b, &["start", &id]).status.success());
    let out = sd(&b, &["exec", "--detach", &id, "/probe", "sleep", "60"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let procs = || {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(wait_until(|| procs() == 2), "procs: {}", procs());
    let out = sd(&b, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_unit_gone(&unit, &dir);
    assert!(processes_in(&b.rootfs()).is_empty());
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn a_create_failing_after_the_scope_started_leaves_no_unit() {
    let mut b = Bundle::new("sd-fail");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "source": "/nonexistent-source", "type": "bind", "options": ["rbind"]}));
    let (id, unit, dir) = systemd_bundle(&mut b, "c");
    b.write_config();
    let out = sd(&b, &["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent-source"),
        "{}",
        stderr(&out)
    );
    assert_unit_gone(&unit, &dir);
    assert!(!b.root.join(&id).exists());
}

#[test]
#[ignore = "needs systemd as PID 1: hack/systemd-guest.sh"]
fn a_taken_unit_name_is_refused_and_the_other_container_kept() {
    let mut b = Bundle::new("sd-taken");
    b.args(&["/probe", "sleep", "60"]);
    b.config["linux"]["cgroupsPath"] = json!("system.slice:berth-test:shared-name");
    let id1 = b.id("one");
    create(&b, &id1);
    let id2 = b.id("two");
    let out = sd(&b, &["create", "--bundle", b.dir.to_str().unwrap(), &id2]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(!b.root.join(&id2).exists());
    let unit = "berth-test-shared-name.scope";
    assert_eq!(systemctl_show(unit, "ActiveState"), "active");
    assert_eq!(b.status(&id1), "created");
    let out = sd(&b, &["delete", "--force", &id1]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_unit_gone(unit, &scope_dir(unit, "pids"));
}
