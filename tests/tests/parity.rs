//! Where berth must do what runc 1.1 does (issue #20), checked on real
//! containers and, where the behaviour is runc's own, side by side with the
//! host's runc.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{json, Value};

/// A pure cgroup v2 host: no v1 devices.list to read, no v1 refusal of
/// `unified` (the parity suite runs on the hybrid host only).
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The host's runc (hack/deps.sh installs it), with a state root inside a
/// bundle; containers it made are deleted on drop.
struct Runc {
    root: PathBuf,
    ids: Vec<String>,
}

impl Runc {
    fn new(b: &Bundle) -> Runc {
        Runc {
            root: b.dir.join("runc-state"),
            ids: Vec::new(),
        }
    }

    /// Runs runc with stdio in files (a container it creates inherits them:
    /// pipes would never reach end-of-file).
    fn cmd(&self, args: &[&str]) -> Output {
        let dir = self.root.parent().unwrap();
        let n = self.ids.len();
        let out_path = dir.join(format!("runc-out.{n}.{}", args[0]));
        let err_path = dir.join(format!("runc-err.{n}.{}", args[0]));
        let status = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("runc (hack/deps.sh installs it)");
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        }
    }

    /// `runc create` of the bundle's current config.json.
    fn create(&mut self, b: &Bundle, name: &str) -> (String, Output) {
        let id = format!(
            "runc-{}-{name}",
            b.dir.file_name().unwrap().to_string_lossy()
        );
        self.ids.push(id.clone());
        b.write_config();
        let out = self.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        (id, out)
    }

    fn pid(&self, id: &str) -> i64 {
        let out = self.cmd(&["state", id]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pid"].as_i64().unwrap()
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.cmd(&["delete", "--force", &id]);
        }
    }
}

/// The v1 device cgroup's list of the process `pid`, sorted.
fn devices_list(pid: i64) -> Vec<String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',').any(|c| c == "devices").then_some(path)
        })
        .expect("a devices hierarchy");
    let list = Path::new("/sys/fs/cgroup/devices")
        .join(rel.trim_start_matches('/'))
        .join("devices.list");
    let mut v: Vec<String> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn probe_result(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad probe output {e}: {out:?}"))
}

// ------------------------------------------------------- 3: device rules

#[test]
fn a_device_in_linux_devices_stays_denied_unless_resources_devices_allow_it() {
    let mut b = Bundle::new("devdeny");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]);
    assert_eq!(
        b.config["linux"]["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}])
    );
    b.args(&["/probe", "open", "/dev/fuse", "rw"]);
    let (code, out, err) = b.run("deny");
    assert_eq!(code, 0, "{err}");
    let v = probe_result(&out);
    assert_eq!(
        v["errno"],
        libc::EPERM,
        "a device listed in linux.devices was allowed: {v}"
    );

    b.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
    let (code, out, err) = b.run("allow");
    assert_eq!(code, 0, "{err}");
    let v = probe_result(&out);
    assert_eq!(v["ok"], true, "an allowed device was refused: {v}");
}

#[test]
fn the_device_cgroup_holds_the_same_rules_as_runcs() {
    if unified() {
        return; // devices.list is cgroup v1's
    }
    let mut b = Bundle::new("devlist");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("c");
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = devices_list(b.state(&id)["pid"].as_i64().unwrap());

    let mut runc = Runc::new(&b);
    let (rid, out) = runc.create(&b, "c");
    assert!(out.status.success(), "runc create: {}", stderr(&out));
    let theirs = devices_list(runc.pid(&rid));
    assert_eq!(ours, theirs, "berth's device cgroup differs from runc's");
    assert!(!ours.iter().any(|r| r.starts_with("c 10:229")), "{ours:?}");
}

// ------------------------------------------------------------- 17: spec

#[test]
fn spec_is_runcs_spec_but_for_the_hostname() {
    let b = Bundle::new("spec");
    for rootless in [false, true] {
        let flags: &[&str] = if rootless { &["--rootless"] } else { &[] };
        let ours = b.dir.join(format!("berth-spec-{rootless}"));
        let theirs = b.dir.join(format!("runc-spec-{rootless}"));
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::create_dir_all(&theirs).unwrap();
        let out = b.cmd(&[&["spec", "--bundle", ours.to_str().unwrap()], flags].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let out = Command::new("runc")
            .args([&["spec", "--bundle", theirs.to_str().unwrap()], flags].concat())
            .output()
            .expect("runc (hack/deps.sh installs it)");
        assert!(out.status.success(), "runc spec: {}", stderr(&out));
        let read = |d: &Path| -> Value {
            serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap()
        };
        let got = read(&ours);
        let mut want = read(&theirs);
        assert_eq!(want["hostname"], "runc");
        want["hostname"] = json!("berth");
        assert_eq!(got, want, "rootless={rootless}");
        // Field by field and in runc's order.
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            serde_json::to_string(&want).unwrap(),
            "rootless={rootless}: keys not in runc's order"
        );
    }
}

#[test]
fn a_container_from_the_default_spec_keeps_the_hosts_cgroup_namespace() {
    // runc's default config has no cgroup namespace: the container and what
    // is exec'd into it see their cgroups by the host's paths.
    let mut b = Bundle::new("specns");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let host = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let init = std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap();
    assert_eq!(init, host, "the default spec made a cgroup namespace");
    let out = b.cmd(&["exec", &id, "/bin/cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        stdout(&out),
        host_view,
        "exec'd process not in the init's cgroups"
    );
}

// --------------------------------------------------------- 19: poststop

#[test]
fn a_failing_poststop_hook_is_a_warning_and_the_next_one_still_runs() {
    let mut b = Bundle::new("poststop");
    let mark = b.dir.join("second-hook");
    b.config["hooks"] = json!({"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo first hook fails >&2; exit 3"]},
        {"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", mark.display())]}
    ]});
    b.args(&["/probe", "exit", "0"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["delete", &id]);
    let e = stderr(&out);
    assert!(out.status.success(), "delete failed: {e}");
    let st: Value = serde_json::from_slice(
        &std::fs::read(&mark).expect("the second poststop hook did not run"),
    )
    .unwrap();
    assert_eq!(
        (st["id"].as_str(), st["status"].as_str()),
        (Some(id.as_str()), Some("stopped"))
    );
    assert!(
        e.contains("level=warning")
            && e.contains("hooks.poststop[0]")
            && e.contains("status 3")
            && e.contains("first hook fails"),
        "no warning for the failed hook: {e}"
    );
    assert!(!b.root.join(&id).exists(), "state left behind");
}

// ---------------------------------------------------------- 21: unified

#[test]
fn unified_resources_on_cgroup_v1_are_an_invalid_configuration() {
    if unified() {
        return;
    }
    let mut b = Bundle::new("unified");
    b.config["linux"]["resources"]["unified"] = json!({"memory.high": "100000000"});
    let (id, out) = b.create("u");
    assert_eq!(out.status.code(), Some(1), "create succeeded");
    let e = stderr(&out);
    assert!(
        e.contains("invalid configuration") && e.contains("linux.resources.unified"),
        "{e}"
    );
    assert_nothing_left(&b, &id);

    // runc's wording.
    let mut runc = Runc::new(&b);
    let (_, out) = runc.create(&b, "u");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid configuration"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------- 22: update devices

#[test]
fn update_takes_device_rules_as_runc_does_and_leaves_the_device_cgroup_alone() {
    if unified() {
        return; // devices.list is cgroup v1's
    }
    let mut b = Bundle::new("upddev");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("u");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let mut runc = Runc::new(&b);
    let (rid, out) = runc.create(&b, "u");
    assert!(out.status.success(), "runc create: {}", stderr(&out));
    let rpid = runc.pid(&rid);
    let before = (devices_list(pid), devices_list(rpid));

    // What containerd sends: the container's whole list, without the
    // default rules; access strings of every form; a rule opening all.
    let mut updates: Vec<Value> = ["rwm", "rw", "m", "r", ""]
        .iter()
        .map(|a| {
            json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": a}
        ], "pids": {"limit": 1000}})
        })
        .collect();
    updates.push(json!({"devices": [{"allow": true, "access": "rwm"}]}));
    for (i, u) in updates.iter().enumerate() {
        let file = b.dir.join(format!("update-{i}.json"));
        std::fs::write(&file, u.to_string()).unwrap();
        let f = file.to_str().unwrap();
        let ours = b.cmd(&["update", "--resources", f, &id]);
        let theirs = runc.cmd(&["update", "--resources", f, &rid]);
        assert!(
            theirs.status.success(),
            "runc refused {u}: {}",
            stderr(&theirs)
        );
        assert!(
            ours.status.success(),
            "berth refused {u}: {}",
            stderr(&ours)
        );
        assert_eq!(
            (devices_list(pid), devices_list(rpid)),
            before,
            "the device cgroup changed with {u}"
        );
    }
    // The rest of an update still applies.
    let pids_max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{id}/pids.max"));
    assert_eq!(pids_max.unwrap().trim(), "1000");
    // The container's standard devices still work.
    let out = b.cmd(&["exec", &id, "/probe", "open", "/dev/null", "rw"]);
    assert_eq!(probe_result(&stdout(&out))["ok"], true, "{}", stderr(&out));
    // A rule that is not JSON runc understands is refused by both.
    let file = b.dir.join("update-bad.json");
    std::fs::write(&file, r#"{"devices": [{"allow": "yes", "access": "rwm"}]}"#).unwrap();
    let f = file.to_str().unwrap();
    assert!(!runc
        .cmd(&["update", "--resources", f, &rid])
        .status
        .success());
    assert!(!b.cmd(&["update", "--resources", f, &id]).status.success());
}

// --------------------------------------------------------------- 23: ps

#[test]
fn ps_of_a_stopped_container_prints_the_header_and_succeeds() {
    let mut b = Bundle::new("psstopped");
    b.args(&["/probe", "exit", "0"]);
    let (id, out) = b.create("s");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["ps", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = Command::new("ps").arg("-ef").output().unwrap();
    let header = stdout(&header).lines().next().unwrap().to_string();
    assert_eq!(stdout(&out), format!("{header}\n"));
    // runc prints Go's nil slice.
    let out = b.cmd(&["ps", "--format", "json", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "null\n");
}

#[test]
fn ps_passes_dash_options_after_the_id_to_ps() {
    let mut b = Bundle::new("psex");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("p");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let out = b.cmd(&["ps", &id, "-e", "-x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "TTY", "STAT", "TIME", "COMMAND"], "{text}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].trim_start().starts_with(&format!("{pid} ")) && rows[0].contains("/probe sleep 60"),
        "{text}"
    );
}

// ----------------------------------------------------------- 24: events

#[test]
fn events_lines_have_runcs_key_order() {
    let mut b = Bundle::new("events");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("e");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let out = b.cmd(&["events", "--stats", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let want = format!("{{\"type\":\"stats\",\"id\":{},\"data\":{{", json!(id));
    assert!(text.starts_with(&want), "{text}");
    assert_eq!(text.lines().count(), 1);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");
}

// ---------------------------------------------------------- 25: logging

/// A logrus text line: `time="<RFC 3339>" level=LEVEL msg=MSG` (MSG bare
/// or quoted). Returns (level, msg as written).
fn logrus_text(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("time=\"")?;
    let (time, rest) = rest.split_once('"')?;
    if !rfc3339_seconds(time) {
        return None;
    }
    let rest = rest.strip_prefix(" level=")?;
    let (level, msg) = rest.split_once(" msg=")?;
    if !["debug", "info", "warning", "error"].contains(&level) {
        return None;
    }
    let quoted = msg.len() >= 2 && msg.starts_with('"') && msg.ends_with('"');
    let bare = !msg.is_empty() && !msg.contains([' ', '"', '=']);
    (quoted || bare).then_some((level, msg))
}

/// `2026-01-02T03:04:05Z`, as logrus prints time.RFC3339 in UTC.
fn rfc3339_seconds(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn debug_lines_on_stderr_are_logrus_text_and_stdout_is_the_containers_alone() {
    let mut b = Bundle::new("dbgtext");
    b.args(&["/probe", "echo", "hello"]);
    let id = b.id("d");
    b.write_config();
    let out = b
        .berth()
        .args(["--debug", "run", "--bundle", b.dir.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello\n");
    let e = stderr(&out);
    assert!(!e.contains('\0'), "NUL on stderr: {e:?}");
    assert!(e.lines().count() >= 1, "no debug line");
    for l in e.lines() {
        let (level, msg) = logrus_text(l).unwrap_or_else(|| panic!("not logrus text: {l:?}"));
        assert_eq!(level, "debug", "{l}");
        assert!(msg.starts_with('"'), "{l}");
    }
    assert!(e.contains("msg=\"create phases: "), "{e}");
}

#[test]
fn the_log_file_is_made_by_every_command_and_holds_only_log_lines() {
    let mut b = Bundle::new("logfile");
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("l");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());

    // exec logs nothing, and still makes the file, as runc does.
    let log = b.dir.join("exec.log");
    let out = b.cmd(&[
        "--log",
        log.to_str().unwrap(),
        "exec",
        &id,
        "/probe",
        "echo",
        "hi",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(std::fs::read(&log).expect("exec made no log file"), b"");
    // So do state and list.
    for cmd in [vec!["state", id.as_str()], vec!["list"]] {
        let log = b.dir.join(format!("{}.log", cmd[0]));
        let mut args = vec!["--log", log.to_str().unwrap()];
        args.extend(&cmd);
        assert!(b.cmd(&args).status.success());
        assert!(log.exists(), "{} made no log file", cmd[0]);
    }

    // --debug with --log: the lines go to the file, nothing to stderr, and
    // the container's output is untouched; the file is appended to.
    let log = b.dir.join("debug.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let out = b.cmd(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "exec",
        &id,
        "/probe",
        "echo",
        "hi",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(stderr(&out), "");
    let rid = b.id("r");
    b.args(&["/probe", "echo", "run"]);
    b.write_config();
    let out = b
        .berth()
        .args(["--debug", "--log", log.to_str().unwrap()])
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &rid])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"run\n");
    assert_eq!(stderr(&out), "");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\0'), "NUL in the log: {text:?}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("earlier line"));
    let rest: Vec<&str> = lines.collect();
    assert!(!rest.is_empty());
    for l in &rest {
        assert!(logrus_text(l).is_some(), "not logrus text: {l:?}");
    }
    assert!(text.contains("create phases: "), "{text}");
}

#[test]
fn json_log_lines_are_runcs_objects_and_nothing_else() {
    let mut b = Bundle::new("logjson");
    b.args(&["/probe", "exit", "0"]);
    b.write_config();
    let log = b.dir.join("log.json");
    let l = log.to_str().unwrap();
    let id = b.id("j");
    let common = ["--debug", "--log", l, "--log-format", "json"];
    // detached: the container inherits berth's stdio.
    let out = b.detached(
        &[
            &common[..],
            &["create", "--bundle", b.dir.to_str().unwrap(), &id],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b
        .cmd(&[&common[..], &["start", &id]].concat())
        .status
        .success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    assert!(b
        .cmd(&[&common[..], &["delete", &id]].concat())
        .status
        .success());
    // An error lands there too.
    let out = b.cmd(&[&common[..], &["state", "no-such-container"]].concat());
    assert_eq!(out.status.code(), Some(1));

    let text = std::fs::read_to_string(&log).unwrap();
    let mut levels = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["level", "msg", "time"], "{line}");
        assert!(line.starts_with("{\"level\":\""), "{line}");
        assert!(rfc3339_seconds(v["time"].as_str().unwrap()), "{line}");
        levels.push(v["level"].as_str().unwrap().to_string());
    }
    assert!(levels.iter().any(|l| l == "debug"), "{text}");
    assert_eq!(levels.last().map(String::as_str), Some("error"), "{text}");
    assert!(text.ends_with('\n'));
}
