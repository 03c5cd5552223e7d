//! The words clients look for in a runtime's errors (containerd's shim,
//! Docker, CRI-O, podman: matched case-sensitively, on stderr and in the
//! `--log` JSON), and runc's exit statuses.

mod common;

use common::*;
use serde_json::{json, Value};

/// The last "error" record of a `--log-format json` log, as containerd's
/// shim reads it (every line must be JSON with an RFC 3339 time).
fn last_logged_error(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let mut last = String::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            v["time"].as_str().is_some_and(|t| t.contains('T')),
            "{line}"
        );
        if v["level"] == "error" {
            last = v["msg"].as_str().unwrap().to_string();
        }
    }
    last
}

#[test]
fn missing_containers_and_stopped_ones_are_named_as_runc_names_them() {
    let mut b = Bundle::new("phrases");
    let log = b.dir.join("log.json");
    let logged = |b: &Bundle, args: &[&str]| {
        let mut full = vec!["--log", log.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        b.cmd(&full)
    };
    for cmd in [
        &["kill", "nosuch", "KILL"][..],
        &["delete", "nosuch"],
        &["state", "nosuch"],
    ] {
        let out = logged(&b, cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        // containerd: "does not exist"; Docker's libcontainerd: "container
        // does not exist".
        assert!(
            stderr(&out).contains("container does not exist"),
            "{cmd:?}: {}",
            stderr(&out)
        );
        assert!(last_logged_error(&log).contains("container does not exist"));
    }
    // delete --force of what does not exist succeeds (CRI-O, podman).
    assert!(b.cmd(&["delete", "--force", "nosuch"]).status.success());

    b.args(&["/probe", "exit", "0"]);
    let (id, out) = b.create("s");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    // containerd's checkKillError: "container not running" means the
    // process is already gone, not a failure to stop it.
    let out = logged(&b, &["kill", &id, "TERM"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
    assert!(last_logged_error(&log).contains("container not running"));
    let out = b.cmd(&["start", &id]);
    assert!(
        stderr(&out).contains("cannot start a container that has stopped"),
        "{}",
        stderr(&out)
    );
    // The error line says it is one, for scripts that grep for "error".
    assert!(
        stderr(&out).starts_with("berth: error: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_errors_carry_the_texts_docker_maps_to_126_and_127() {
    let mut b = Bundle::new("execphr");
    std::fs::write(b.rootfs().join("notexec"), "#!/bin/sh\necho x\n").unwrap();
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("e");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    for (argv, phrase) in [
        (&["nosuch"][..], "executable file not found"),
        (&["/no/such"], "no such file or directory"),
        (&["/notexec"], "permission denied"),
        (&["/bin"], "is a directory"),
    ] {
        let mut args = vec!["exec", &id];
        args.extend_from_slice(argv);
        let out = b.cmd(&args);
        assert_eq!(out.status.code(), Some(255), "{argv:?}");
        assert!(stderr(&out).contains(phrase), "{argv:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("os error"), "{}", stderr(&out));
    }
    // The same at create, where Docker's CLI reads it.
    for (arg, phrase) in [
        ("nosuch", "executable file not found"),
        ("/no/such", "no such file or directory"),
    ] {
        b.args(&[arg]);
        let (_, out) = b.create("c");
        assert!(!out.status.success());
        assert!(stderr(&out).contains(phrase), "{}", stderr(&out));
    }
}

#[test]
fn exec_leaves_permission_to_the_kernel_and_takes_a_process_without_user() {
    let mut b = Bundle::new("execperm");
    // Executable by its owner (root) only: a non-root process with
    // CAP_DAC_OVERRIDE may run it, as the kernel decides at execve.
    let script = b.rootfs().join("rootonly");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let caps = json!(["CAP_DAC_OVERRIDE", "CAP_KILL"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps,
        "inheritable": caps, "ambient": caps
    });
    b.args(&["/rootonly"]);
    let (code, out, err) = b.run("r");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ran");

    // exec --process without "user": uid 0, gid 0, as runc.
    b.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pfile = b.dir.join("p.json");
    std::fs::write(&pfile, r#"{"args": ["/bin/id", "-u"], "cwd": "/"}"#).unwrap();
    let out = b.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
}
