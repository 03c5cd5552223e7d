//! runtime-spec fields that must be applied or refused by name, never
//! dropped: process.scheduler, ioPriority, execCPUAffinity,
//! linux.memoryPolicy, and the ones berth refuses (intelRdt, netDevices).

mod common;

use common::*;
use serde_json::json;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn scheduler_and_io_priority_apply_inside() {
    let mut b = Bundle::new("sched");
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    // /proc/self/stat: field 19 is nice, 41 the policy (3: SCHED_BATCH).
    b.args(&["/bin/cat", "/proc/self/stat"]);
    let (code, out, err) = b.run("s");
    assert_eq!(code, 0, "{err}");
    let after = out.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ")" the fields start at 3 (state).
    assert_eq!(f[19 - 3], "7", "nice: {out}");
    assert_eq!(f[41 - 3], "3", "policy: {out}");
}

#[test]
fn memory_policy_applies_inside() {
    let mut b = Bundle::new("mempol");
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    b.args(&["/bin/cat", "/proc/self/status"]);
    let (code, out, err) = b.run("m");
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_field(&out, "Mems_allowed_list"), "0");
    // /proc/self/numa_maps shows "bind:0" for the process's mappings.
    b.args(&["/bin/sh", "-c", "grep -c 'bind:0' /proc/self/numa_maps"]);
    let (code, out, err) = b.run("n");
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().parse::<u32>().unwrap() > 0, "{out}");
}

#[test]
fn exec_cpu_affinity_sets_the_exec_d_process_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = cpus - 1;
    let mut b = Bundle::new("affinity");
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("a");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pfile = b.dir.join("p.json");
    std::fs::write(
        &pfile,
        json!({
            "args": ["/bin/cat", "/proc/self/status"], "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0", "final": format!("{last}")}
        })
        .to_string(),
    )
    .unwrap();
    let out = b.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        status_field(&stdout(&out), "Cpus_allowed_list"),
        last.to_string()
    );
}

#[test]
fn bad_values_and_unsupported_fields_are_refused_by_name() {
    for (name, edit, field) in [
        (
            "nice",
            json!({"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}}),
            "process.scheduler.nice",
        ),
        (
            "prio",
            json!({"process": {"scheduler": {"policy": "SCHED_FIFO"}}}),
            "process.scheduler.priority",
        ),
        (
            "ioprio",
            json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}}),
            "process.ioPriority.priority",
        ),
        (
            "mempol",
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}}),
            "linux.memoryPolicy.nodes",
        ),
        (
            "rdt",
            json!({"linux": {"intelRdt": {"closID": "x", "l3CacheSchema": "L3:0=f"}}}),
            "linux.intelRdt",
        ),
        (
            "netdev",
            json!({"linux": {"netDevices": {"eth9": {"name": "eth0"}}}}),
            "linux.netDevices",
        ),
    ] {
        let mut b = Bundle::new(&format!("field-{name}"));
        for (section, fields) in edit.as_object().unwrap() {
            for (k, v) in fields.as_object().unwrap() {
                b.config[section][k] = v.clone();
            }
        }
        let (id, out) = b.create(name);
        assert!(!out.status.success(), "{name} accepted");
        assert!(stderr(&out).contains(field), "{name}: {}", stderr(&out));
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn a_created_container_can_be_paused_and_a_paused_one_refuses_exec_as_runc() {
    let mut b = Bundle::new("pausecreated");
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.cmd(&["pause", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(&id), "paused");
    let out = b.cmd(&["exec", &id, "/bin/true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("cannot exec in a paused container"),
        "{}",
        stderr(&out)
    );
    assert!(b.cmd(&["resume", &id]).status.success());
    assert_eq!(b.status(&id), "created");
    assert!(b.cmd(&["start", &id]).status.success());
    assert_eq!(b.status(&id), "running");
    assert!(b.cmd(&["delete", "--force", &id]).status.success());
    assert_nothing_left(&b, &id);
}

#[test]
fn a_container_without_a_mount_namespace_shares_the_hosts_mounts_and_changes_none_of_them() {
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let mut b = Bundle::new("nomntns");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    // Its root is the rootfs (a chroot): the probe is at /probe there.
    std::fs::write(b.rootfs().join("etc/only-in-rootfs"), "seen").unwrap();
    b.args(&["/probe", "read", "/etc/only-in-rootfs"]);
    let (code, out, err) = b.run("n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "seen");
    assert!(
        err.contains("no mount namespace") && err.contains("root.readonly"),
        "the warning is missing: {err}"
    );
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after, "the host's mounts changed");
    // The host's / is still writable.
    let probe_file = std::path::Path::new("/tmp").join(format!("nomntns-{}", std::process::id()));
    std::fs::write(&probe_file, "w").unwrap();
    std::fs::remove_file(&probe_file).unwrap();
}
