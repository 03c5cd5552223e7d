//! `berth exec`: a second process joins the running container.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn exec_joins_namespaces_cgroup_and_profile_of_the_container() {
    let mut b = Bundle::new("exec");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    });
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("e");
    assert!(out.status.success(), "{}", stderr(&out));
    // Like runc, exec works before start too.
    let out = b.cmd(&["exec", &id, "/probe", "echo", "early"]);
    assert_eq!(stdout(&out), "early\n", "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pid = b.state(&id)["pid"].as_i64().unwrap();

    let out = b.cmd(&[
        "exec",
        "--env",
        "EXTRA=1",
        "--user",
        "1000:1000",
        "--cwd",
        "/tmp",
        &id,
        "/probe",
        "report",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let init = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(
            r["namespaces"][ns],
            init.to_string_lossy().as_ref(),
            "{ns} not joined"
        );
    }
    assert_ne!(r["pid"], 1);
    assert_eq!(r["uid"], 1000);
    assert_eq!(r["cwd"], "/tmp");
    assert_eq!(r["hostname"], "berth-exec");
    assert!(r["env"].as_array().unwrap().iter().any(|e| e == "EXTRA=1"));
    assert_eq!(r["seccomp"], 2);
    // Same cgroups as the init, as the container sees them.
    let out = b.cmd(&[
        "exec",
        &id,
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup",
    ]);
    let text = stdout(&out);
    let (mine, init) = text.split_once("---\n").unwrap();
    assert_eq!(mine, init, "exec'd process not in the container's cgroup");
    let fds = fd_numbers(&r);
    assert_eq!(fds, vec![0, 1, 2], "fds leaked into exec: {}", r["fds"]);

    let out = b.cmd(&["exec", &id, "/probe", "syscall", "110"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["errno"], 77,
        "the container's seccomp profile was not applied: {v}"
    );

    let out = b.cmd(&["exec", &id, "/bin/sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9));
    // runc's status and words, which Docker maps to exit 127.
    let out = b.cmd(&["exec", &id, "nosuchprogram"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("exec: \"nosuchprogram\": executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = b.cmd(&["exec", &id, "/no/such"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("no such file or directory"),
        "{}",
        stderr(&out)
    );

    // --process with a runtime-spec process JSON.
    let pfile = b.dir.join("process.json");
    std::fs::write(&pfile, serde_json::to_vec(&json!({"user": {"uid": 0, "gid": 0}, "args": ["/probe", "echo", "from-process-file"], "cwd": "/"})).unwrap()).unwrap();
    let out = b.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-process-file\n");

    // Detached exec writes the pid file and returns at once.
    let pidfile = b.dir.join("exec.pid");
    let out = b.detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "/probe",
        "sleep",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let epid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = b.cmd(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pids.contains(&epid), "{pids:?} lacks {epid}");

    assert!(b.cmd(&["kill", &id, "KILL"]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["exec", &id, "/probe", "report"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("cannot exec in a stopped container"),
        "{}",
        stderr(&out)
    );
}
