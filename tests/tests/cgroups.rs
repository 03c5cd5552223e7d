//! Resource limits checked by their effect inside real containers, on
//! whatever cgroup layout the host has (v1 hybrid here; pure v2 in the
//! QEMU guest).

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Stdio;

#[test]
fn pids_limit_makes_the_next_fork_fail() {
    let mut b = Bundle::new("pids");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    b.args(&["/probe", "fork", "20"]);
    let (code, out, err) = b.run("p");
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["forked"].as_u64().unwrap() < 5, "{v}");
    assert_eq!(v["errno"], 11, "fork should fail with EAGAIN: {v}");
}

#[test]
fn memory_limit_oom_kills_and_events_report_it() {
    let mut b = Bundle::new("oom");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    b.args(&["/bin/sh", "-c", "read x; /probe alloc 128"]);
    b.config["process"]["terminal"] = json!(false);
    let (id, out) = b.create("m");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut ev = b
        .berth()
        .args(["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the watcher arm before the allocation starts.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(b.cmd(&["start", &id]).status.success());
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(ev.stdout.take().unwrap()).lines();
    let mut saw_oom = false;
    for _ in 0..200 {
        match lines.next() {
            Some(Ok(l)) => {
                let v: Value = serde_json::from_str(&l).unwrap();
                if v["type"] == "oom" {
                    saw_oom = true;
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = ev.kill();
    let _ = ev.wait();
    assert!(saw_oom, "no oom event reported");
    assert!(wait_until(|| b.status(&id) == "stopped"));
}

#[test]
fn cpu_quota_throttles() {
    let mut b = Bundle::new("cpu");
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000});
    b.args(&["/bin/sh", "-c", "while :; do :; done"]);
    let began = std::time::Instant::now();
    let (id, out) = b.create("c");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(700));
    let out = b.cmd(&["events", "--stats", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "stats");
    let t = &v["data"]["cpu"]["throttling"];
    assert!(
        t["throttledPeriods"].as_u64().unwrap_or(0) > 0,
        "not throttled: {}",
        v["data"]["cpu"]
    );
    // 10% of one cpu: far below the ~100% an unthrottled loop would use
    // over the same wall time (relative, so a slow machine or the TCG
    // guest does not matter).
    let usage = v["data"]["cpu"]["usage"]["total"].as_u64().unwrap() as f64;
    let wall = began.elapsed().as_nanos() as f64;
    assert!(usage < 0.5 * wall, "used {usage} ns of cpu in {wall} ns");
    b.cmd(&["delete", "-f", &id]);
}

#[test]
fn device_rules_decide_what_opens() {
    // A host device outside berth's default allow-list, bound in.
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata("/dev/kmsg").unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let mut b = Bundle::new("dev");
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}));
    b.args(&["/probe", "open", "/dev/kmsg", "w"]);
    let (code, out, err) = b.run("deny");
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["errno"], 1,
        "deny-all must refuse the device with EPERM: {v}"
    );

    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": major, "minor": minor, "access": "w"}
    ]);
    let (_, out, _) = b.run("allow");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true, "allowed device refused: {v}");
}

#[test]
fn pause_stops_and_resume_restarts_a_counting_process() {
    let mut b = Bundle::new("pause");
    b.config["root"]["readonly"] = json!(false);
    b.args(&["/probe", "count", "/tmp/count"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let file = b.rootfs().join("tmp/count");
    let read = || {
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(wait_until(|| read() > 3));
    let out = b.cmd(&["pause", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(&id), "paused");
    let a = read();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(read(), a, "counter advanced while paused");
    let out = b.cmd(&["pause", &id]);
    assert_eq!(out.status.code(), Some(1), "pausing twice must fail");
    let out = b.cmd(&["exec", &id, "/probe", "echo", "x"]);
    // runc's status and words for an exec that cannot start.
    assert_eq!(
        out.status.code(),
        Some(255),
        "exec into a paused container must fail"
    );
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    assert!(b.cmd(&["resume", &id]).status.success());
    assert_eq!(b.status(&id), "running");
    assert!(wait_until(|| read() > a + 3), "counter did not resume");
    // ps lists the container's process.
    let out = b.cmd(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pids.contains(&b.state(&id)["pid"].as_i64().unwrap()));
    // delete --force works on a paused container too.
    assert!(b.cmd(&["pause", &id]).status.success());
    let out = b.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn update_changes_a_live_limit() {
    let mut b = Bundle::new("update");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 100});
    b.config["root"]["readonly"] = json!(false);
    // Forks on demand: each time /tmp/go appears, report a fork attempt.
    b.args(&["/bin/sh", "-c", "while :; do if [ -e /tmp/go ]; then /probe fork 10 > /tmp/result; rm /tmp/go; fi; /probe sleep 0.05; done"]);
    let (id, out) = b.create("u");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let fork_result = || -> Value {
        let _ = std::fs::remove_file(b.rootfs().join("tmp/result"));
        std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
        assert!(wait_until(|| !b.rootfs().join("tmp/go").exists()));
        serde_json::from_slice(&std::fs::read(b.rootfs().join("tmp/result")).unwrap()).unwrap()
    };
    assert_eq!(fork_result()["forked"], 10);
    let out = b.cmd(&["update", "--pids-limit", "4", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = fork_result();
    assert!(v["forked"].as_u64().unwrap() < 4 && v["errno"] == 11, "{v}");
    // --resources with runtime-spec JSON on stdin.
    let mut child = b
        .berth()
        .args(["update", "--resources", "-", &id])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 50}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(fork_result()["forked"], 10);
    let out = b.cmd(&["update", "--memory", "notanumber", &id]);
    assert_eq!(out.status.code(), Some(1));
    b.cmd(&["delete", "-f", &id]);
}

fn host_is_cgroup_v1() -> bool {
    !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn bad_resource_values_fail_create_and_leave_no_cgroup() {
    let mut cases = vec![
        (
            "cpus",
            json!({"cpu": {"cpus": "not-a-cpu-list"}}),
            "linux.resources.cpu.cpus",
        ),
        (
            "weight",
            json!({"blockIO": {"weight": 5000}}),
            "linux.resources.blockIO.weight",
        ),
    ];
    if host_is_cgroup_v1() {
        cases.push((
            "unified",
            json!({"unified": {"memory.max": "1G"}}),
            "linux.resources.unified",
        ));
    }
    for (name, res, field) in cases {
        let mut b = Bundle::new(&format!("badres-{name}"));
        b.config["linux"]["resources"] = res;
        let (id, out) = b.create(name);
        assert_eq!(out.status.code(), Some(1), "{name} accepted");
        assert!(stderr(&out).contains(field), "{name}: {}", stderr(&out));
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn init_is_born_in_its_cgroup_on_cgroup_v2() {
    let mut b = Bundle::new("clone-into");
    b.args(&["/bin/sh", "-c", "exit 0"]);
    let id = b.id("c");
    b.write_config();
    let log = b.dir.join("debug.log");
    let out = b
        .berth()
        .arg("--debug")
        .arg("--log")
        .arg(&log)
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let born = text.contains("init started in its cgroup with CLONE_INTO_CGROUP");
    if host_is_cgroup_v1() {
        assert!(!born, "no clone into a v1 cgroup: {text}");
    } else {
        assert!(
            born,
            "v2: the init should be cloned into its cgroup: {text}"
        );
    }
}
