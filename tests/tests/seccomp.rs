//! Seccomp profiles as the container sees them: verdicts observed by the
//! probe's raw syscalls, and a notify agent answering for the kernel.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

const GETPID: u32 = 39;
const GETPPID: u32 = 110;
const KEXEC_LOAD: u32 = 246;
const SIGSYS: i32 = 31;

fn syscall(b: &mut Bundle, nr: u32) -> (i32, Value) {
    b.args(&["/probe", "syscall", &nr.to_string()]);
    let (code, out, err) = b.run("sc");
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|_| json!({"stderr": err}));
    (code, v)
}

#[test]
fn containerd_default_profile_blocks_and_allows() {
    let fixture: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../seccomp/tests/data/containerd-default-config.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut b = Bundle::new("seccomp-default");
    b.config["linux"]["seccomp"] = fixture["linux"]["seccomp"].clone();
    let r = b.report();
    assert_eq!(r["seccomp"], 2, "filter mode not active");
    let (_, v) = syscall(&mut b, KEXEC_LOAD);
    assert_eq!(
        (v["ret"].as_i64(), v["errno"].as_i64()),
        (Some(-1), Some(1)),
        "kexec_load not refused with EPERM: {v}"
    );
    let (_, v) = syscall(&mut b, GETPPID);
    assert_eq!(v["errno"], 0, "{v}");
}

#[test]
fn hand_written_profile_errno_kill_log_and_allow() {
    let mut b = Bundle::new("seccomp-hand");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77},
            {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let (_, v) = syscall(&mut b, GETPPID);
    assert_eq!(v["errno"], 77, "{v}");
    let (_, v) = syscall(&mut b, GETPID);
    assert_eq!(
        (v["ret"].as_i64(), v["errno"].as_i64()),
        (Some(1), Some(0)),
        "LOG must allow: {v}"
    );
    let (code, _) = syscall(&mut b, KEXEC_LOAD);
    assert_eq!(code, 128 + SIGSYS, "KILL_PROCESS did not kill with SIGSYS");
    // Argument conditions: getuid(5) is refused, getuid(0) is not.
    b.args(&["/probe", "syscall", "102", "5"]);
    let (_, out, _) = b.run("arg5");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["errno"], 13);
    b.args(&["/probe", "syscall", "102", "0"]);
    let (_, out, _) = b.run("arg0");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["errno"], 0);
}

#[test]
fn notify_reaches_the_agent_and_its_answer_is_what_the_program_sees() {
    let mut b = Bundle::new("seccomp-notify");
    let sock = b.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "test-metadata",
        // runtime-spec 1.2's flag, which berth carries past oci-spec's enum.
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (payload, fd) = recv_with_fd(&conn);
        let state: Value = serde_json::from_slice(&payload).unwrap();
        let n = berth_seccomp::notify::recv(fd.as_fd()).unwrap();
        berth_seccomp::notify::respond(
            fd.as_fd(),
            n.id,
            berth_seccomp::notify::Response::Return(4242),
        )
        .unwrap();
        (state, n.nr)
    });
    let (code, v) = syscall(&mut b, GETPPID);
    let (state, nr) = agent.join().unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        v["ret"], 4242,
        "the agent's answer did not reach the program: {v}"
    );
    assert_eq!(nr, GETPPID as i32);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "test-metadata");
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert_eq!(state["state"]["id"], b.ids[0].as_str());
}

#[test]
fn bad_profiles_fail_create_and_leave_nothing() {
    for (name, profile, field) in [
        (
            "arch",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_MIPS"]}),
            "architectures",
        ),
        (
            "index",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "index",
        ),
        (
            "action",
            json!({"defaultAction": "SCMP_ACT_BOGUS"}),
            "defaultAction",
        ),
        (
            "op",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NOPE"}]}]}),
            "op",
        ),
        (
            "notify",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
    ] {
        let mut b = Bundle::new(&format!("seccomp-bad-{name}"));
        b.config["linux"]["seccomp"] = profile;
        let (id, out) = b.create(name);
        assert_eq!(out.status.code(), Some(1), "{name}: bad profile accepted");
        let e = stderr(&out);
        assert!(
            e.contains("linux.seccomp") && e.contains(field),
            "{name}: {e}"
        );
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn a_notify_filter_traps_nothing_berth_does_itself() {
    // getcwd, chdir and accept4 are syscalls berth's init makes while it
    // sets the process up (the cwd check, waiting for start); an agent that
    // never answers must not hang create or start: the filter goes in only
    // right before execve. (The program itself makes none of them.)
    let mut b = Bundle::new("seccomp-late");
    let sock = b.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [{"names": ["getcwd", "chdir", "fchdir", "accept4", "accept",
                                "setresuid", "setresgid", "setgroups"],
                      "action": "SCMP_ACT_NOTIFY"}]
    });
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    // The agent takes the listener and sits on it without answering.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            let (_, fd) = recv_with_fd(&conn);
            let _ = tx.send(fd);
        }
    });
    b.args(&["/probe", "echo", "ran"]);
    b.write_config();
    let id = b.id("l");
    let out_path = b.dir.join("late.out");
    let mut child = b
        .berth()
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &id])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = None;
    let done = wait_until(|| {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        let _ = b.cmd(&["delete", "--force", &id]);
    }
    assert!(done, "run hung on a notify filter");
    assert_eq!(status.unwrap().code(), Some(0));
    assert_eq!(std::fs::read_to_string(&out_path).unwrap().trim(), "ran");
    // The agent did get the listener.
    assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
}

#[test]
fn start_container_hooks_run_with_the_filter_and_the_process_environment() {
    let mut b = Bundle::new("seccomp-hook");
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
    b.config["hooks"] = json!({"startContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "grep ^Seccomp: /proc/self/status > /tmp/hook.out; echo \"$FROM_PROCESS\" >> /tmp/hook.out"]
    }]});
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    });
    b.args(&["/probe", "echo", "ok"]);
    let (code, _, err) = b.run("h");
    assert_eq!(code, 0, "{err}");
    let out = std::fs::read_to_string(b.rootfs().join("tmp/hook.out")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().nth(1), Some("2"), "{out}");
    assert_eq!(lines[1], "yes", "{out}");
}
