//! Test support: bundles built on the fly (busybox-static plus the probe),
//! the real `berth` binary run against a private state root, and cleanup.

#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn berth_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_BIN") {
        return PathBuf::from(p);
    }
    // target/<triple>/debug/deps/<test> → target/<triple>/debug/berth
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("berth");
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

pub fn probe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-probe"))
}

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "mount", "hostname", "env", "touch",
    "mkdir", "ps", "grep", "head", "readlink", "stat", "kill", "wc",
];

/// A bundle in a fresh directory, removed (with any container left in it)
/// on drop.
pub struct Bundle {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub config: Value,
    pub ids: Vec<String>,
}

impl Bundle {
    pub fn new(tag: &str) -> Bundle {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = PathBuf::from(format!("/tmp/berth-tests/{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let rootfs = base.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static at /bin/busybox");
        for a in APPLETS {
            symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::copy(probe_bin(), rootfs.join("probe")).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ntester:x:1000:1000::/home/tester:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        let out = Command::new(berth_bin())
            .args(["spec", "--bundle"])
            .arg(&base)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["/probe", "report"]);
        config["hostname"] = json!(format!("berth-{tag}"));
        Bundle {
            root: base.join("state"),
            dir: base,
            config,
            ids: Vec::new(),
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    pub fn write_config(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// A container id unique to this bundle, remembered for cleanup.
    pub fn id(&mut self, name: &str) -> String {
        let id = format!("{}-{name}", self.dir.file_name().unwrap().to_string_lossy());
        self.ids.push(id.clone());
        id
    }

    pub fn berth(&self) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c
    }

    /// `berth run` of the current config; returns (status, stdout, stderr).
    pub fn run(&mut self, name: &str) -> (i32, String, String) {
        let id = self.id(name);
        self.write_config();
        let out = self
            .berth()
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(&id)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the probe as configured and parses its JSON report.
    pub fn report(&mut self) -> Value {
        let (code, out, err) = self.run("report");
        assert_eq!(code, 0, "berth run failed: {err}\n{out}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("bad probe output {e}: {out:?} {err}"))
    }

    pub fn create(&mut self, name: &str) -> (String, Output) {
        let id = self.id(name);
        self.write_config();
        let out = self.detached(&["create", "--bundle", self.dir.to_str().unwrap(), &id]);
        (id, out)
    }

    /// Runs a berth command whose container may outlive it: the container
    /// inherits berth's stdio, so pipes would never reach EOF. Output goes
    /// through files instead.
    pub fn detached(&self, args: &[&str]) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out_path = self.dir.join(format!("out.{n}"));
        let err_path = self.dir.join(format!("err.{n}"));
        let status = self
            .berth()
            .args(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.berth().args(args).output().unwrap()
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.cmd(&["state", id]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.berth().args(["delete", "--force", id]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failed command left nothing behind: no state dir, no cgroup,
/// no process whose root is the bundle's rootfs.
pub fn assert_nothing_left(b: &Bundle, id: &str) {
    assert!(!b.root.join(id).exists(), "state dir for {id} left behind");
    for ctrl in ["pids", "memory", "cpu", "freezer", "devices"] {
        let p = Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("berth")
            .join(id);
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
    let v2 = Path::new("/sys/fs/cgroup/berth").join(id);
    assert!(!v2.exists(), "cgroup {} left behind", v2.display());
    assert!(
        processes_in(&b.rootfs()).is_empty(),
        "processes left in {}",
        b.rootfs().display()
    );
}

/// Pids of live processes whose root directory is `rootfs`. Compared by
/// device and inode through /proc/PID/root: after pivot_root in another
/// mount namespace the link's text is just "/", whatever the root is.
pub fn processes_in(rootfs: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let Ok(want) = std::fs::metadata(rootfs) else {
        return out;
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/root")) {
            if m.dev() == want.dev() && m.ino() == want.ino() {
                out.push(pid);
            }
        }
    }
    out
}

pub fn caps_mask(names: &[u32]) -> u64 {
    names.iter().fold(0, |m, c| m | (1u64 << c))
}

pub fn mount<'a>(report: &'a Value, point: &str) -> Option<&'a Value> {
    report["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["mount_point"] == point)
}

pub fn has_opt(m: &Value, opt: &str) -> bool {
    m["options"].as_array().unwrap().iter().any(|o| o == opt)
}

/// Waits until `f` holds, up to about 5 s, times BERTH_TEST_WAIT_SCALE
/// (set by hack/cgroupv2-guest.sh: programs run ~40x slower under TCG).
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let scale: u32 = std::env::var("BERTH_TEST_WAIT_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    for _ in 0..500 * scale {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Receives one message with an fd attached (SCM_RIGHTS), as berth sends
/// the pty master and the seccomp listener: (payload, fd).
pub fn recv_with_fd(conn: &std::os::unix::net::UnixStream) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = vec![0u8; 65536];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: zeroed msghdr pointed at live buffers; the fd comes from the
    // control message the kernel filled in.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, 0);
        assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no fd sent");
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
        buf.truncate(n as usize);
        (buf, std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

/// Makes `file` the child's fd 3, inheritable, as a caller of
/// `--preserve-fds` or socket activation would pass it.
pub fn pass_as_fd3(cmd: &mut Command, file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = file.as_raw_fd();
    // SAFETY: only fcntl/dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec set.
            if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The fd numbers in a probe report.
pub fn fd_numbers(report: &Value) -> Vec<u64> {
    report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_u64().unwrap())
        .collect()
}

/// The host ids a user-namespaced test container's root and users map to.
pub const USERNS_BASE: u32 = 100000;

/// Gives the bundle a new user namespace mapping 0..65536 to
/// USERNS_BASE.., and makes the bundle and rootfs its root's.
pub fn with_userns(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": USERNS_BASE, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
    for p in [b.dir.clone(), b.rootfs()] {
        std::os::unix::fs::chown(&p, Some(USERNS_BASE), Some(USERNS_BASE)).unwrap();
    }
}

/// Everything a pty master yields until the container's side closes (EIO).
pub fn read_master(master: std::os::fd::OwnedFd) -> String {
    use std::io::Read;
    let mut f = std::fs::File::from(master);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// A console socket at `path`, and a thread that takes the one pty master
/// sent to it.
pub fn console_socket(path: &Path) -> std::thread::JoinHandle<(String, std::os::fd::OwnedFd)> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (name, fd) = recv_with_fd(&conn);
        (String::from_utf8_lossy(&name).into_owned(), fd)
    })
}
