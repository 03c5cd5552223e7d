//! The state machine, hooks, signals and the runc-compatible commands.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Stdio;

#[test]
fn create_start_kill_delete_walks_the_state_machine() {
    let mut b = Bundle::new("life");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("c");
    assert!(out.status.success(), "create: {}", stderr(&out));
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    assert!(st["created"].as_str().unwrap().ends_with('Z'));
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 1);
    // The user program has not started yet: the init is still berth.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "probe");

    let again = b.detached(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let out = b.cmd(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert_eq!(b.status(&id), "running");
    assert!(wait_until(|| std::fs::read_to_string(format!(
        "/proc/{pid}/comm"
    ))
    .is_ok_and(|c| c.trim() == "probe")));
    let out = b.cmd(&["start", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    let out = b.cmd(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not stopped"), "{}", stderr(&out));

    let out = b.cmd(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    assert!(wait_until(|| b.status(&id) == "stopped"));
    assert_eq!(b.state(&id)["pid"], 0);
    let out = b.cmd(&["start", &id]);
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
    let out = b.cmd(&["kill", &id, "TERM"]);
    assert_eq!(out.status.code(), Some(1));

    let out = b.cmd(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_nothing_left(&b, &id);
    let out = b.cmd(&["state", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"));
}

#[test]
fn delete_force_removes_running_and_created_containers() {
    let mut b = Bundle::new("force");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("created");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);

    let (id, out) = b.create("running");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let out = b.cmd(&["delete", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn delete_of_a_created_container_without_force_works() {
    let mut b = Bundle::new("delcreated");
    let (id, out) = b.create("c");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.cmd(&["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn run_passes_exit_status_and_output_through() {
    let mut b = Bundle::new("exit");
    b.args(&["/probe", "exit", "7"]);
    let (code, _, _) = b.run("seven");
    assert_eq!(code, 7);
    b.args(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    let (code, out, err) = b.run("sh");
    assert_eq!((code, out.as_str()), (3, "out\n"));
    assert!(err.contains("err"));
    // Outside a pid namespace the shell is not an init and can be killed.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    b.args(&["/bin/sh", "-c", "kill -9 $$"]);
    let (code, _, _) = b.run("killed");
    assert_eq!(code, 137);
    // run removes the container afterwards.
    let ids = b.ids.clone();
    for id in ids {
        assert!(!b.root.join(&id).exists());
    }
}

#[test]
fn run_forwards_signals_to_the_container() {
    let mut b = Bundle::new("sig");
    b.args(&["/probe", "wait-signal"]);
    b.write_config();
    let id = b.id("w");
    let mut child = b
        .berth()
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&id)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    use std::io::Read;
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(rest, "got SIGUSR1\n");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn kill_accepts_names_and_numbers_and_all() {
    let mut b = Bundle::new("kill");
    b.args(&[
        "/bin/sh",
        "-c",
        "trap 'exit 42' USR2; /probe sleep 60 & wait",
    ]);
    let (id, out) = b.create("k");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    // An init ignores signals it has no handler for: wait for the trap.
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(wait_until(|| std::fs::read_to_string(format!(
        "/proc/{pid}/status"
    ))
    .ok()
    .and_then(|s| s
        .lines()
        .find(|l| l.starts_with("SigCgt:"))
        .map(|l| u64::from_str_radix(l[7..].trim(), 16).unwrap_or(0)))
    .is_some_and(|m| m & (1 << (libc::SIGUSR2 - 1)) != 0)));
    assert!(b.cmd(&["kill", &id, "sigusr2"]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    b.cmd(&["delete", &id]);

    b.args(&["/probe", "sleep", "60"]);
    let (id, _) = b.create("n");
    b.cmd(&["start", &id]);
    let out = b.cmd(&["kill", "--all", &id, "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["kill", &id, "NOSUCHSIG"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn list_shows_containers_in_table_json_and_quiet_form() {
    let mut b = Bundle::new("list");
    b.args(&["/probe", "sleep", "60"]);
    let (id, _) = b.create("l");
    let out = b.cmd(&["list"]);
    let table = stdout(&out);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("created"), "{table}");
    let out = b.cmd(&["list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["status"], "created");
    let out = b.cmd(&["list", "-q"]);
    assert_eq!(stdout(&out).trim(), id);
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let mut b = Bundle::new("hooks");
    let log = b.dir.join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo {name} \"$s\" >> {}", log.display())]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /tmp/inside.log"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.config["root"]["readonly"] = json!(false);
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("h");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    assert!(b.cmd(&["kill", &id, "KILL"]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    assert!(b.cmd(&["delete", &id]).status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    for line in text.lines() {
        let state: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        assert_eq!(state["id"], id.as_str());
    }
    let first: Value =
        serde_json::from_str(text.lines().next().unwrap().split_once(' ').unwrap().1).unwrap();
    assert_eq!(first["status"], "creating");
    assert!(first["pid"].as_i64().unwrap() > 0);
    let inside = std::fs::read_to_string(b.rootfs().join("tmp/inside.log")).unwrap();
    assert_eq!(inside, "startContainer\n");
}

#[test]
fn a_hook_that_leaves_a_process_behind_does_not_hold_up_create() {
    // The hook's child keeps the hook's stderr open for a minute: berth must
    // not wait for that pipe to close once the hook itself has exited.
    let mut b = Bundle::new("hookchild");
    let pidfile = b.dir.join("sleeper.pid");
    let script = format!(
        "sleep 60 </dev/null >/dev/null & echo $! > {}; echo left >&2; exit 5",
        pidfile.display()
    );
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    b.write_config();
    let id = b.id("h");
    let mut child = b
        .berth()
        .args(["create", "--bundle", b.dir.to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    assert!(
        wait_until(|| {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "create still waiting on the hook's stderr"
    );
    assert_eq!(status.unwrap().code(), Some(1));
    let mut e = String::new();
    use std::io::Read;
    // The sleep holds the write end: read only what is there.
    let mut err = child.stderr.take().unwrap();
    berth_nonblock(&err);
    let _ = err.read_to_string(&mut e);
    if let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill of the sleep this test's hook started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(e.contains("status 5") && e.contains("left"), "{e}");
    assert_nothing_left(&b, &id);
}

fn berth_nonblock(f: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on an fd the test owns.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

#[test]
fn a_failing_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new("badhook");
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    let (id, out) = b.create("h");
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("hooks.createRuntime[0]") && e.contains("status 3") && e.contains("nope"),
        "{e}"
    );
    assert_nothing_left(&b, &id);

    b.config["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]});
    let (id, out) = b.create("t");
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn spec_and_features_documents() {
    let b = Bundle::new("spec");
    let dir = b.dir.join("fresh");
    std::fs::create_dir_all(&dir).unwrap();
    let out = b.cmd(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], json!(["sh"]));
    let out = b.cmd(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "spec must not overwrite");

    let out = b.cmd(&["features"]);
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for n in ["pid", "mount", "network", "user", "time", "cgroup"] {
        assert!(ns.contains(&n));
    }
    assert!(f["linux"]["seccomp"]["enabled"].as_bool().unwrap());
    assert!(f["hooks"].as_array().unwrap().len() == 6);
}

#[test]
fn errors_go_to_the_json_log_file() {
    let mut b = Bundle::new("log");
    b.config["ociVersion"] = json!("7.0.0");
    b.write_config();
    let log = b.dir.join("log.json");
    let id = b.id("l");
    let out = b
        .berth()
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            &id,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = std::fs::read_to_string(&log).unwrap();
    let v: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("ociVersion"));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn concurrent_creates_of_one_id_admit_exactly_one() {
    let mut b = Bundle::new("race");
    b.args(&["/probe", "sleep", "60"]);
    b.write_config();
    let id = b.id("same");
    let dir = b.dir.to_str().unwrap().to_string();
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| b.detached(&["create", "--bundle", &dir, &id])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(stderr).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|o| !o.status.success()) {
        assert!(stderr(r).contains("already exists"), "{}", stderr(r));
    }
}
