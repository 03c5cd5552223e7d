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
