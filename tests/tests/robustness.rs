//! Robustness: no process runs as root by accident, a joined mount
//! namespace still gets the rootfs, and whatever point berth is killed at,
//! nothing is orphaned, leaked or hung. Each test runs real containers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

/// A pure cgroup v2 host (the v2 guest runs the cgroup tests here too).
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup directories berth makes by default for `id`.
fn default_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    if unified() {
        return vec![Path::new("/sys/fs/cgroup/berth").join(id)];
    }
    ["pids", "memory", "cpu", "freezer", "devices"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("berth").join(id))
        .filter(|d| {
            d.parent()
                .is_some_and(|p| p.parent().is_some_and(Path::exists))
        })
        .collect()
}

/// The default cgroup of `id` in the hierarchy of `controller` (v1), or
/// the unified one.
fn default_cgroup(controller: &str, id: &str) -> PathBuf {
    if unified() {
        Path::new("/sys/fs/cgroup/berth").join(id)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("berth")
            .join(id)
    }
}

/// A process of the test's own, in the background, that the test ends.
struct Bg(std::process::Child);

impl Bg {
    fn spawn(cmd: &mut Command) -> Bg {
        Bg(cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap())
    }
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------- security

#[test]
fn ids_above_2147483647_are_refused_naming_the_field() {
    let mut b = Bundle::new("bigid");
    for (field, set) in [
        ("process.user.uid", json!({"uid": 4294967295u32, "gid": 0})),
        ("process.user.gid", json!({"uid": 0, "gid": 4294967295u32})),
        ("process.user.uid", json!({"uid": 2147483648u32, "gid": 0})),
        (
            "process.user.additionalGids[1]",
            json!({"uid": 0, "gid": 0, "additionalGids": [1, 4294967295u32]}),
        ),
    ] {
        b.config["process"]["user"] = set;
        b.args(&["/probe", "report"]);
        let (code, out, err) = b.run("u");
        assert_ne!(code, 0, "ran as {out}");
        assert!(err.contains(field), "{field}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let id = b.ids.last().unwrap().clone();
        assert_nothing_left(&b, &id);
    }

    // exec --user and exec --process of a running container.
    b.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    b.args(&["/probe", "sleep", "60"]);
    let (id, out) = b.create("x");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    for user in ["4294967295", "0:4294967295", "2147483648:0"] {
        let out = b.cmd(&["exec", "--user", user, &id, "/probe", "report"]);
        assert!(!out.status.success(), "exec --user {user} ran");
        assert!(stderr(&out).contains("--user"), "{}", stderr(&out));
    }
    let out = b.cmd(&["exec", "-g", "4294967295", &id, "/probe", "report"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("additionalGids"), "{}", stderr(&out));
    let pfile = b.dir.join("p.json");
    std::fs::write(
        &pfile,
        json!({"args": ["/probe", "report"], "cwd": "/", "user": {"uid": 4294967295u32, "gid": 0}})
            .to_string(),
    )
    .unwrap();
    let out = b.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(!out.status.success(), "exec --process ran");
    assert!(
        stderr(&out).contains("process.user.uid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_mount_namespace_joined_by_path_still_gets_the_rootfs() {
    // A mount namespace of the test's own, held by a sleeping process.
    let holder = Bg::spawn(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sleep",
        "60",
    ]));
    let ns = format!("/proc/{}/ns/mnt", holder.pid());
    assert!(wait_until(|| {
        std::fs::read_link(&ns).ok() != std::fs::read_link("/proc/self/ns/mnt").ok()
    }));
    let mut b = Bundle::new("joinmnt");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "mount" {
            n["path"] = json!(ns);
        }
    }
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore", "/proc/keys"]);
    let r = b.report();
    // The container's / is its rootfs (the probe is there), with the
    // mounts, /dev and masked paths of a normal container.
    assert_eq!(r["hostname"], "berth-joinmnt");
    assert!(mount(&r, "/proc").is_some(), "no /proc: {}", r["mounts"]);
    assert!(mount(&r, "/dev").is_some(), "no /dev: {}", r["mounts"]);
    assert!(mount(&r, "/proc/keys").is_some(), "keys not masked");
    assert!(
        mount(&r, "/").is_some_and(|m| m["root"] != "/"),
        "/ is not the rootfs: {}",
        r["mounts"]
    );
}

#[test]
fn a_uts_namespace_joined_by_path_takes_the_hostname() {
    let holder = Bg::spawn(Command::new("unshare").args(["--uts", "sleep", "60"]));
    let ns = format!("/proc/{}/ns/uts", holder.pid());
    assert!(wait_until(|| {
        std::fs::read_link(&ns).ok() != std::fs::read_link("/proc/self/ns/uts").ok()
    }));
    let mut b = Bundle::new("joinuts");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "uts" {
            n["path"] = json!(ns);
        }
    }
    b.config["hostname"] = json!("joined-uts");
    let r = b.report();
    assert_eq!(r["hostname"], "joined-uts");
    // It is the joined namespace's name now, not the host's.
    let out = Command::new("nsenter")
        .args(["-t", &holder.pid().to_string(), "-u", "hostname"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "joined-uts");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "joined-uts"
    );

    // No uts entry at all: refused, naming the field.
    let mut b = Bundle::new("nouts");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "uts");
    let (code, _, err) = b.run("n");
    assert_ne!(code, 0);
    assert!(err.contains("hostname") && err.contains("uts"), "{err}");
}

// ------------------------------------------------------- killed mid-way

/// Every point `_BERTH_FAULT` can kill `create` at, in order.
const CREATE_POINTS: &[&str] = &[
    "validate",
    "state-dir+cgroup",
    "spawn-init",
    "init-setup",
    "save-state",
];

#[test]
fn a_create_killed_at_any_point_leaves_no_orphan_and_delete_force_cleans_up() {
    let mut b = Bundle::new("killcreate");
    b.args(&["/probe", "sleep", "60"]);
    for point in CREATE_POINTS {
        let id = b.id(&format!("k-{}", point.replace('+', "-")));
        b.write_config();
        let status = b
            .berth()
            .env("_BERTH_FAULT", point)
            .args(["create", "--bundle", b.dir.to_str().unwrap(), &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{point}: create was not killed there"
        );
        let recorded = b.root.join(&id).join("state.json").exists();
        if !recorded {
            // Not recorded: the init must end by itself, not wait for a
            // start nobody can send.
            assert!(
                wait_until(|| processes_in(&b.rootfs()).is_empty()),
                "{point}: orphan init left: {:?}",
                processes_in(&b.rootfs())
            );
            assert!(
                !stdout(&b.cmd(&["list", "-q"])).contains(&id),
                "{point}: listed"
            );
        }
        let out = b.cmd(&["delete", "--force", &id]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert!(
            wait_until(|| processes_in(&b.rootfs()).is_empty()),
            "{point}: processes left"
        );
        assert_nothing_left(&b, &id);
    }
}

/// A small deterministic pseudo-random sequence (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn creates_killed_at_random_moments_leave_nothing_after_delete_force() {
    let mut b = Bundle::new("killrand");
    b.args(&["/probe", "sleep", "60"]);
    let mut rng = Lcg(std::process::id() as u64);
    for i in 0..20 {
        let id = b.id(&format!("r{i}"));
        b.write_config();
        let mut child = b
            .berth()
            .args(["create", "--bundle", b.dir.to_str().unwrap(), &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(rng.below(25_000)));
        let _ = child.kill();
        let _ = child.wait();
        let out = b.cmd(&["delete", "--force", &id]);
        assert!(out.status.success(), "{i}: {}", stderr(&out));
        assert!(
            wait_until(|| processes_in(&b.rootfs()).is_empty()),
            "{i}: processes left"
        );
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn a_killed_start_exec_or_delete_leaves_nothing_after_delete_force() {
    let mut b = Bundle::new("killops");
    b.config["root"]["readonly"] = json!(false);
    b.args(&["/probe", "sleep", "60"]);

    // start killed once connected: the container runs all the same.
    let (id, out) = b.create("s");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = b
        .berth()
        .env("_BERTH_FAULT", "start-connected")
        .args(["start", &id])
        .status()
        .unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    assert!(wait_until(|| b.status(&id) == "running"));

    // exec killed before its process is let go: the process never runs
    // the program and does not stay behind.
    let marker = b.rootfs().join("tmp/exec-ran");
    let st = b
        .berth()
        .env("_BERTH_FAULT", "exec-ready")
        .args(["exec", &id, "/bin/touch", "/tmp/exec-ran"])
        .status()
        .unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    assert!(wait_until(|| processes_in(&b.rootfs()).len() == 1));
    assert!(!marker.exists(), "the killed exec's program ran");

    // delete killed after the init died, and after the cgroup went.
    for point in ["delete-killed", "delete-cgroup-gone"] {
        let st = b
            .berth()
            .env("_BERTH_FAULT", point)
            .args(["delete", "--force", &id])
            .status()
            .unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    }
    let out = b.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);

    // The init killed between create and start.
    let (id, out) = b.create("i");
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill of the container's init this test created.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_until(|| b.status(&id) == "stopped"));
    let out = b.cmd(&["start", &id]);
    assert!(!out.status.success());
    let out = b.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn delete_force_of_an_id_without_state_removes_its_default_cgroup_and_processes() {
    let b = Bundle::new("nostate");
    let id = format!("{}-orphan", b.dir.file_name().unwrap().to_string_lossy());
    let dirs = default_cgroup_dirs(&id);
    assert!(!dirs.is_empty());
    let sleeper = Bg::spawn(Command::new("sleep").arg("60"));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let procs = default_cgroup("pids", &id).join("cgroup.procs");
    std::fs::write(procs, sleeper.pid().to_string()).unwrap();
    let out = b.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    for d in &dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(
        wait_until(|| !alive(sleeper.pid())),
        "process in it survived"
    );
}

#[test]
fn a_cgroup_already_holding_processes_is_refused() {
    let mut b = Bundle::new("busycg");
    let id = b.id("c");
    let dir = default_cgroup("pids", &id);
    std::fs::create_dir_all(&dir).unwrap();
    let sleeper = Bg::spawn(Command::new("sleep").arg("60"));
    std::fs::write(dir.join("cgroup.procs"), sleeper.pid().to_string()).unwrap();
    b.write_config();
    let out = b.detached(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(!out.status.success(), "joined a busy cgroup");
    let e = stderr(&out);
    assert!(e.contains("container's cgroup is not empty"), "{e}");
    assert!(e.contains("linux.cgroupsPath"), "{e}");
    assert!(alive(sleeper.pid()), "the other process was touched");
    assert!(!b.root.join(&id).exists());
    drop(sleeper);
    assert!(wait_until(
        || std::fs::remove_dir(&dir).is_ok() || !dir.exists()
    ));
    for d in default_cgroup_dirs(&id) {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn a_frozen_cgroup_is_refused_instead_of_hanging() {
    let mut b = Bundle::new("frozen");
    let id = b.id("f");
    let dir = default_cgroup("freezer", &id);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, frozen, thawed) = if unified() {
        ("cgroup.freeze", "1", "0")
    } else {
        ("freezer.state", "FROZEN", "THAWED")
    };
    std::fs::write(dir.join(file), frozen).unwrap();
    b.write_config();
    let mut child = b
        .berth()
        .args(["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let finished = wait_until(|| {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::write(dir.join(file), thawed);
    assert!(finished, "run -d into a frozen cgroup hung");
    let mut e = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut e).unwrap();
    assert_ne!(status.unwrap().code(), Some(0));
    assert!(e.contains("frozen"), "{e}");
    assert!(!b.root.join(&id).exists());
    let _ = std::fs::remove_dir(&dir);
    for d in default_cgroup_dirs(&id) {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn sigkill_ends_a_paused_container() {
    let mut b = Bundle::new("killpaused");
    b.args(&["/probe", "sleep", "60"]);
    for all in [false, true] {
        let (id, out) = b.create(if all { "a" } else { "k" });
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(b.cmd(&["start", &id]).status.success());
        assert!(b.cmd(&["pause", &id]).status.success());
        assert_eq!(b.status(&id), "paused");
        let args: &[&str] = if all {
            &["kill", "--all", &id, "KILL"]
        } else {
            &["kill", &id, "KILL"]
        };
        let out = b.cmd(args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            wait_until(|| b.status(&id) == "stopped"),
            "still {} after kill (all={all})",
            b.status(&id)
        );
        assert!(b.cmd(&["delete", &id]).status.success());
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn a_timed_out_hook_is_killed_with_its_children() {
    let mut b = Bundle::new("hookkids");
    let pidfile = b.dir.join("child.pid");
    let script = format!(
        "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {}; wait",
        pidfile.display()
    );
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1}]});
    let (id, out) = b.create("h");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = wait_until(|| !alive(pid));
    if !gone {
        // SAFETY: kill of the sleep this test's hook started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(gone, "the hook's child outlived its timeout");
    assert_nothing_left(&b, &id);
}

#[test]
fn start_returns_once_the_user_program_runs() {
    // A startContainer hook that takes a while: start must not return
    // before it is done and the program is exec'd.
    let mut b = Bundle::new("startexec");
    b.config["hooks"] =
        json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.3"]}]});
    b.args(&["/probe", "wait-signal"]);
    let (id, out) = b.create("s");
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let out = b.cmd(&["start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Right after start: the process is the user program, not berth's init.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(argv, ["/probe", "wait-signal"]);
    assert!(b.cmd(&["kill", &id, "KILL"]).status.success());
    assert!(wait_until(|| b.status(&id) == "stopped"));
    assert!(b.cmd(&["delete", &id]).status.success());

    // What stops the program from running is start's error.
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no-go >&2; exit 7"]}]});
    let (id, out) = b.create("f");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.cmd(&["start", &id]);
    assert!(!out.status.success(), "start of a failing hook succeeded");
    let e = stderr(&out);
    assert!(
        e.contains("hooks.startContainer[0]") && e.contains("no-go"),
        "{e}"
    );
    assert!(wait_until(|| b.status(&id) == "stopped"));
    assert!(b.cmd(&["delete", &id]).status.success());
    assert_nothing_left(&b, &id);
}

// --------------------------------------------------------------- mounts, env

#[test]
fn two_cgroup_mounts_work_and_mount_errors_name_index_and_destination() {
    let mut b = Bundle::new("twocg");
    // The default config mounts the cgroups at /sys/fs/cgroup already.
    assert!(b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["type"] == "cgroup" && m["destination"] == "/sys/fs/cgroup"));
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp/cg2", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}));
    b.config["root"]["readonly"] = json!(false);
    let r = b.report();
    let second = if unified() {
        "/tmp/cg2"
    } else {
        "/tmp/cg2/pids"
    };
    assert!(mount(&r, second).is_some(), "{}", r["mounts"]);

    let n = b.config["mounts"].as_array().unwrap().len();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}));
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("mounts[{n}]")) && err.contains("/mnt/x"),
        "{err}"
    );
}

#[test]
fn env_entries_with_an_empty_name_or_a_nul_byte_are_refused() {
    let mut b = Bundle::new("badenv");
    for (entry, why) in [("=value", "empty variable name"), ("A=b\u{0}c", "NUL")] {
        b.config["process"]["env"] = json!(["PATH=/bin", entry]);
        let (code, _, err) = b.run("e");
        assert_ne!(code, 0, "{entry:?} accepted");
        assert!(err.contains("process.env[1]") && err.contains(why), "{err}");
        let id = b.ids.last().unwrap().clone();
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn dev_core_exists_only_where_the_kernel_has_kcore() {
    let mut b = Bundle::new("devcore");
    b.args(&["/bin/readlink", "/dev/core"]);
    let (code, out, _) = b.run("c");
    if Path::new("/proc/kcore").exists() {
        assert_eq!(code, 0);
        assert_eq!(out.trim(), "/proc/kcore");
    } else {
        assert_ne!(code, 0, "/dev/core made without /proc/kcore: {out}");
    }
}

// --------------------------------------------------------------- no hang

/// The short version of the hang test (`hack/hang-test` runs thousands):
/// sequential runs, each under a deadline; a run past it is a hang.
#[test]
fn sequential_runs_never_hang() {
    let mut b = Bundle::new("hang");
    b.args(&["/bin/true"]);
    b.write_config();
    let mut hangs = 0;
    for i in 0..100 {
        let id = b.id(&format!("h{i}"));
        let mut child = b
            .berth()
            .args(["run", "--bundle", b.dir.to_str().unwrap(), &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut status = None;
        if !wait_until(|| {
            status = child.try_wait().unwrap();
            status.is_some()
        }) {
            hangs += 1;
            let _ = child.kill();
            let _ = child.wait();
            let _ = b.cmd(&["delete", "--force", &id]);
            continue;
        }
        assert_eq!(status.unwrap().code(), Some(0), "run {i} failed");
    }
    assert_eq!(hangs, 0, "{hangs} of 100 runs hung");
}
