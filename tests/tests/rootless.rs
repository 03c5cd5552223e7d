//! berth run by an unprivileged user, created by the test with a subuid
//! and subgid range: the rootless spec, the lifecycle under
//! $XDG_RUNTIME_DIR/berth, one mapping written directly and several through
//! newuidmap/newgidmap, no cgroup on this v1 host (so limits are refused),
//! and nothing left behind.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{json, Value};

const USER: &str = "berth-rl-test";
/// The range added when useradd gave the user none.
const SUB_START: u32 = 400000;

/// The start of the user's subordinate range in `file` (/etc/subuid or
/// /etc/subgid): useradd may have given it one of its own.
fn sub_start(file: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .and_then(|r| r.split(':').next()?.parse().ok())
        .unwrap_or(SUB_START)
}

/// The test user's uid and gid, made (with subuid/subgid ranges) if missing.
fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", USER])
            .status()
            .unwrap();
        assert!(st.success(), "useradd");
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let mut t = text;
            t.push_str(&format!("{USER}:{SUB_START}:65536\n"));
            std::fs::write(f, t).unwrap();
        }
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// berth as the test user, in `dir`, with its own XDG_RUNTIME_DIR and no
/// --root; stdio it owns (files in `dir`).
fn as_user(dir: &Path, xdg: &Path, uid: u32, gid: u32, args: &[&str]) -> Output {
    let out_path = dir.join("out.log");
    let err_path = dir.join("err.log");
    let (o, e) = (
        std::fs::File::create(&out_path).unwrap(),
        std::fs::File::create(&err_path).unwrap(),
    );
    for p in [&out_path, &err_path] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let status = Command::new(berth_bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("XDG_RUNTIME_DIR", xdg)
        .stdin(Stdio::null())
        .stdout(o)
        .stderr(e)
        .uid(uid)
        .gid(gid)
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

struct Setup {
    dir: PathBuf,
    xdg: PathBuf,
    uid: u32,
    gid: u32,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let (uid, gid) = test_user();
        let b = Bundle::new(tag);
        let dir = b.dir.clone();
        std::mem::forget(b); // the test removes the directory itself
        let _ = std::fs::remove_file(dir.join("config.json"));
        let xdg = dir.join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        chown_tree(&dir, uid, gid);
        // /tmp/berth-tests itself must let the user through.
        let s = Setup { dir, xdg, uid, gid };
        let out = s.berth(&["--rootless", "true", "spec"]);
        assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
        s
    }

    fn berth(&self, args: &[&str]) -> Output {
        as_user(&self.dir, &self.xdg, self.uid, self.gid, args)
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("config.json")).unwrap()).unwrap()
    }

    fn set_config(&self, v: &Value) {
        let p = self.dir.join("config.json");
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        std::os::unix::fs::chown(&p, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for id in ["rl-run", "rl-life", "rl-multi", "rl-limit"] {
            let _ = self.berth(&["delete", "--force", id]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_unprivileged_user_runs_the_whole_lifecycle() {
    let s = Setup::new("rootless");
    let mut c = s.config();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], s.uid);
    assert_eq!(c["linux"]["uidMappings"][0]["containerID"], 0);
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["/bin/sh", "-c", "id -u; cat /proc/self/uid_map"]);
    s.set_config(&c);
    let out = s.berth(&["run", "rl-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &s.uid.to_string(), "1"]);

    // create, start, exec, list, ps, kill, delete under $XDG_RUNTIME_DIR.
    c["process"]["args"] = json!(["/bin/sleep", "600"]);
    s.set_config(&c);
    let out = s.berth(&["create", "rl-life"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.xdg.join("berth/rl-life/state.json").exists());
    assert!(s.berth(&["start", "rl-life"]).status.success());
    let out = s.berth(&["exec", "rl-life", "/bin/id", "-u"]);
    assert_eq!(stdout(&out).trim(), "0", "{}", stderr(&out));
    assert!(stdout(&s.berth(&["list", "-q"])).contains("rl-life"));
    let out = s.berth(&["ps", "--format", "json", "rl-life"]);
    let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(!pids.is_empty(), "{}", stderr(&out));
    // No cgroup here (v1): pause says why instead of pretending.
    let out = s.berth(&["pause", "rl-life"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no cgroup"), "{}", stderr(&out));
    assert!(s.berth(&["kill", "rl-life", "KILL"]).status.success());
    assert!(wait_until(|| {
        let out = s.berth(&["state", "rl-life"]);
        stdout(&out).contains("\"stopped\"")
    }));
    assert!(s.berth(&["delete", "rl-life"]).status.success());
    assert!(!s.xdg.join("berth/rl-life").exists());
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists() || {
                let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                st.contains(") Z")
            }
        );
    }
}

#[test]
fn several_mappings_go_through_newuidmap_and_limits_are_refused() {
    let s = Setup::new("rootless-multi");
    let mut c = s.config();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["/bin/cat", "/proc/self/uid_map", "/proc/self/gid_map"]);
    let (su, sg) = (sub_start("/etc/subuid"), sub_start("/etc/subgid"));
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": s.uid, "size": 1},
        {"containerID": 1, "hostID": su, "size": 65535}
    ]);
    c["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": s.gid, "size": 1},
        {"containerID": 1, "hostID": sg, "size": 65535}
    ]);
    s.set_config(&c);
    let out = s.berth(&["run", "rl-multi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[1], ["1", &su.to_string(), "65535"]);

    // A limit needs a cgroup this user cannot have here: refused by name.
    c["linux"]["resources"] = json!({"pids": {"limit": 10}});
    s.set_config(&c);
    let out = s.berth(&["run", "rl-limit"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("linux.resources.pids"),
        "{}",
        stderr(&out)
    );
    assert!(!s.xdg.join("berth/rl-limit").exists());
}
