//! Effect tests on the real cgroup hierarchy of whatever host runs them
//! (v1/hybrid on the build host, pure v2 in the guest of
//! hack/cgroupv2-guest.sh). They need root; without it they are skipped.
//!
//! Every test works under its own parent, /berth-test-<pid>-<name>, and
//! removes it. The harness runs tests on threads, so forked children do
//! nothing but raw libc calls (no allocation after fork).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::{FreezerState, Layout, Manager};
use oci_spec::runtime::LinuxResources;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn parent(name: &str) -> String {
    format!("/berth-test-{}-{}", std::process::id(), name)
}

/// A Manager made and created under the test's own parent; destroyed on
/// drop, so a failed assertion leaves nothing behind.
struct Cg(Manager);

impl Cg {
    fn new(name: &str) -> Cg {
        let path = format!("{}/c", parent(name));
        let mut m = Manager::new(Some(&path), "unused", false).unwrap();
        m.create().unwrap();
        Cg(m)
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        if let Err(e) = self.0.destroy() {
            eprintln!("cleanup of {}: {e}", self.0.path());
        }
    }
}

impl std::ops::Deref for Cg {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.0
    }
}

/// Last-resort removal of a test's directories (recursively, children
/// first) when an assertion fails before the test's own teardown.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        fn rm(d: &Path) {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        rm(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        for d in &self.0 {
            rm(d);
        }
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// The container's directory carrying `controller` (v2: the only one).
fn dir_of(m: &Manager, controller: &str) -> PathBuf {
    match m {
        Manager::V1(v) => v.controller_dir(controller).unwrap(),
        Manager::V2(v) => v.dir(),
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

// ------------------------------------------------------------- children

/// A page shared with the children, for counters.
struct Shared(*mut u64);

impl Shared {
    fn new() -> Shared {
        // SAFETY: anonymous shared mapping, no fd, checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared(p as *mut u64)
    }
    fn get(&self) -> u64 {
        // SAFETY: the page is mapped for the life of self; volatile because
        // a child writes it.
        unsafe { std::ptr::read_volatile(self.0) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmaps the page mapped in new().
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

/// A forked child, blocked until `go`: it is first put in the cgroup.
struct Child {
    pid: i32,
    go_fd: i32,
    reaped: bool,
}

/// `body` runs in the child after `go`; its return is the exit code. It
/// must not allocate: only libc calls.
fn spawn(body: fn(*mut u64) -> i32, shared: *mut u64) -> Child {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes async-signal-safe libc calls and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain syscalls on our own fds, then _exit.
        unsafe {
            libc::close(fds[1]);
            let mut b = 0u8;
            libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(body(shared));
        }
    }
    // SAFETY: closing the read end, which the child owns now.
    unsafe { libc::close(fds[0]) };
    Child {
        pid,
        go_fd: fds[1],
        reaped: false,
    }
}

impl Child {
    fn go(&self) {
        let b = 1u8;
        // SAFETY: writes one byte from a live local to our pipe fd.
        assert_eq!(
            unsafe { libc::write(self.go_fd, &b as *const u8 as *const libc::c_void, 1) },
            1
        );
    }

    /// (exited, code or signal)
    fn wait(&mut self) -> (bool, i32) {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        assert_eq!(r, self.pid);
        self.reaped = true;
        if libc::WIFEXITED(status) {
            (true, libc::WEXITSTATUS(status))
        } else {
            (false, libc::WTERMSIG(status))
        }
    }

    fn wait_timeout(&mut self, limit: Duration) -> Option<(bool, i32)> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let mut status = 0;
            // SAFETY: non-blocking wait for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Some(if libc::WIFEXITED(status) {
                    (true, libc::WEXITSTATUS(status))
                } else {
                    (false, libc::WTERMSIG(status))
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: signals and reaps our own child; closes our fd.
        unsafe {
            libc::close(self.go_fd);
            if !self.reaped {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn child_fork_once(_: *mut u64) -> i32 {
    // SAFETY: raw fork/_exit/waitpid in a forked child.
    unsafe {
        let p = libc::fork();
        if p == 0 {
            libc::_exit(0);
        }
        if p > 0 {
            libc::waitpid(p, std::ptr::null_mut(), 0);
            return 1;
        }
        if errno() == libc::EAGAIN {
            0
        } else {
            2
        }
    }
}

fn child_touch_64m(_: *mut u64) -> i32 {
    let len = 64 << 20;
    // SAFETY: a private anonymous mapping, written page by page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        if p as *mut libc::c_void == libc::MAP_FAILED {
            return 3;
        }
        let mut off = 0;
        while off < len {
            std::ptr::write_volatile(p.add(off), 1);
            off += 4096;
        }
    }
    0
}

fn child_count(shared: *mut u64) -> i32 {
    loop {
        // SAFETY: the shared page outlives the child (it dies first).
        unsafe { std::ptr::write_volatile(shared, std::ptr::read_volatile(shared) + 1) };
    }
}

/// Charges 1 MiB to the cgroup, then counts.
fn child_touch_and_count(shared: *mut u64) -> i32 {
    // SAFETY: a private anonymous mapping, written page by page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            1 << 20,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        if p as *mut libc::c_void == libc::MAP_FAILED {
            return 3;
        }
        for off in (0..1 << 20).step_by(4096) {
            std::ptr::write_volatile(p.add(off), 1);
        }
    }
    child_count(shared)
}

fn child_sleep(_: *mut u64) -> i32 {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Exit 0: /dev/null opens and /dev/zero is refused with EPERM.
fn child_open_devices(_: *mut u64) -> i32 {
    // SAFETY: opens and closes fds on NUL-terminated literals.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd < 0 {
            return 10;
        }
        libc::close(fd);
        let fd = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd);
            return 11;
        }
        if errno() != libc::EPERM {
            return 12;
        }
    }
    0
}

// ---------------------------------------------------------------- tests

#[test]
fn layout_matches_mounts() {
    let layout = berth_cgroups::detect_layout().unwrap();
    let unified_root = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
    assert_eq!(layout == Layout::Unified, unified_root, "{layout:?}");
}

#[test]
fn pids_limit_makes_fork_fail() {
    need_root!();
    let cg = Cg::new("pids");
    cg.apply(&res(r#"{"pids":{"limit":1}}"#)).unwrap();
    assert_eq!(read(&dir_of(&cg, "pids").join("pids.max")), "1");
    let mut c = spawn(child_fork_once, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![c.pid]);
    c.go();
    assert_eq!(
        c.wait(),
        (true, 0),
        "fork in the child should fail with EAGAIN"
    );
    // the update path: lifting the limit
    cg.apply(&res(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(read(&dir_of(&cg, "pids").join("pids.max")), "max");
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    need_root!();
    let cg = Cg::new("oom");
    let limit = 32 << 20;
    cg.apply(&res(&format!(
        r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#
    )))
    .unwrap();
    let mut w = cg.oom_watcher().unwrap();
    assert_eq!(w.oom_kill_count().unwrap(), 0);
    assert!(!w.wait(Some(Duration::from_millis(10))).unwrap());
    let mut c = spawn(child_touch_64m, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    assert_eq!(
        c.wait(),
        (false, libc::SIGKILL),
        "the child should be OOM-killed"
    );
    assert!(
        w.wait(Some(Duration::from_secs(30))).unwrap(),
        "no OOM event"
    );
    assert!(w.oom_kill_count().unwrap() >= 1);
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.usage.limit, limit);
    // The peak reached the limit. (failcnt is not asserted: 6.x v1
    // kernels leave it at 0 even on OOM.)
    assert!(
        s.memory.usage.max + (1 << 20) >= limit || s.memory.usage.failcnt > 0,
        "{:?}",
        s.memory.usage
    );
}

#[test]
fn freeze_stops_and_thaw_resumes() {
    need_root!();
    let cg = Cg::new("freeze");
    let shared = Shared::new();
    let c = spawn(child_count, shared.0);
    cg.add_process(c.pid).unwrap();
    c.go();
    let start = Instant::now();
    while shared.get() == 0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(shared.get() > 0, "the child never ran");
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    let a = shared.get();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(shared.get(), a, "counter moved while frozen");
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    let start = Instant::now();
    while shared.get() == a && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(shared.get() > a, "counter did not resume after thaw");
}

#[test]
fn device_rules_allow_list() {
    need_root!();
    let cg = Cg::new("devallow");
    // what the runtime sends: deny all, then what the container may use
    let rules = res(r#"{"devices":[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":8,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":9,"access":"rwm"}]}"#);
    cg.apply(&rules).unwrap();
    if let Manager::V1(v) = &*cg {
        let list = read(&v.controller_dir("devices").unwrap().join("devices.list"));
        assert_eq!(list, "c 1:3 rwm\nc 1:8 rwm\nc 1:9 rwm");
    }
    // resending the same rules (an `update`) must not disturb anything
    cg.apply(&rules).unwrap();
    let mut c = spawn(child_open_devices, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    assert_eq!(c.wait(), (true, 0), "exit code says which open misbehaved");
}

#[test]
fn device_rules_deny_one() {
    need_root!();
    let cg = Cg::new("devdeny");
    cg.apply(&res(r#"{"devices":[{"allow":true,"access":"rwm"},
            {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"}]}"#))
        .unwrap();
    let mut c = spawn(child_open_devices, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    assert_eq!(c.wait(), (true, 0), "exit code says which open misbehaved");
}

/// Exit 0: both /dev/null and /dev/zero open.
fn child_open_both(_: *mut u64) -> i32 {
    // SAFETY: opens and closes fds on NUL-terminated literals.
    unsafe {
        for p in [c"/dev/null", c"/dev/zero"] {
            let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                return 20;
            }
            libc::close(fd);
        }
    }
    0
}

#[test]
fn device_rules_update_replaces_old_ones() {
    need_root!();
    let cg = Cg::new("devupdate");
    let base = r#"{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#;
    cg.apply(&res(&format!(r#"{{"devices":[{base}]}}"#)))
        .unwrap();
    let mut c = spawn(child_open_devices, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    assert_eq!(c.wait(), (true, 0));
    // /dev/zero allowed by an update: the old rules must be gone (v2: the
    // old program detached, as every attached program must allow)
    cg.apply(&res(&format!(
        r#"{{"devices":[{base},{{"allow":true,"type":"c","major":1,"minor":5,"access":"r"}}]}}"#
    )))
    .unwrap();
    let mut c = spawn(child_open_both, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    assert_eq!(c.wait(), (true, 0));
}

#[test]
fn block_io_settings_land_in_files() {
    need_root!();
    // any block device of the host will do for the throttle rule
    let Some(dev) = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .map(|s| s.trim().to_string())
        .next()
    else {
        eprintln!("skipped: no block device");
        return;
    };
    let (maj, min) = dev.split_once(':').unwrap();
    let cg = Cg::new("blkio");
    cg.apply(&res(&format!(
        r#"{{"blockIO":{{"throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}],
            "throttleWriteIOPSDevice":[{{"major":{maj},"minor":{min},"rate":100}}]}}}}"#
    )))
    .unwrap();
    match &*cg {
        Manager::V1(v) => {
            let d = v.controller_dir("blkio").unwrap();
            assert_eq!(
                read(&d.join("blkio.throttle.read_bps_device")),
                format!("{dev} 1048576")
            );
            assert_eq!(
                read(&d.join("blkio.throttle.write_iops_device")),
                format!("{dev} 100")
            );
        }
        Manager::V2(v) => {
            let max = read(&v.dir().join("io.max"));
            assert!(
                max.starts_with(&format!("{dev} rbps=1048576 wbps=max riops=max wiops=100")),
                "{max}"
            );
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
    // weight: BFQ's or io.weight, whichever the kernel has
    match cg.apply(&res(r#"{"blockIO":{"weight":500}}"#)) {
        Ok(()) => {}
        Err(e) => assert!(
            e.to_string().starts_with("linux.resources.blockIO.weight"),
            "{e}"
        ),
    }
}

#[test]
fn oom_watcher_sees_the_cgroup_go() {
    need_root!();
    let mut cg = Cg::new("oomgone");
    let mut w = cg.oom_watcher().unwrap();
    cg.0.destroy().unwrap();
    let start = Instant::now();
    let fired = w.wait(Some(Duration::from_secs(5))).unwrap();
    assert!(!fired);
    // v1 announces the removal on the eventfd; v2 through inotify's
    // IN_IGNORED. Either way the wait must not sit out its timeout.
    assert!(w.cgroup_removed(), "removal not noticed");
    assert!(start.elapsed() < Duration::from_secs(4));
    assert!(
        !w.wait(None).unwrap(),
        "a removed cgroup's watcher returns at once"
    );
    let _ = &mut cg;
}

#[test]
fn destroy_removes_what_it_created_and_kills_leftovers() {
    need_root!();
    let base = parent("destroy");
    let mut pre = Manager::new(Some(&base), "unused", false).unwrap();
    let _cleanup = Cleanup(pre.dirs());
    pre.create().unwrap();
    let mut m = Manager::new(Some(&format!("{base}/a/b")), "unused", false).unwrap();
    m.create().unwrap();
    let leaves = m.dirs();
    assert_eq!(m.created().len(), 2 * leaves.len(), "{:?}", m.created());
    for d in &leaves {
        assert!(m.created().contains(d));
        assert!(m.created().contains(&d.parent().unwrap().to_path_buf()));
        assert!(!m
            .created()
            .contains(&d.parent().unwrap().parent().unwrap().to_path_buf()));
    }
    if let Manager::V1(v) = &m {
        let cpus = read(&v.controller_dir("cpuset").unwrap().join("cpuset.cpus"));
        assert!(!cpus.is_empty(), "cpuset.cpus was not inherited");
    }
    // survives the state file
    let m: Manager = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    let mut c1 = spawn(child_sleep, std::ptr::null_mut());
    let mut c2 = spawn(child_sleep, std::ptr::null_mut());
    m.add_process(c1.pid).unwrap();
    c1.go();
    // a cgroup the container made for itself, with a process in it
    let mut nested = Manager::new(Some(&format!("{base}/a/b/nested")), "unused", false).unwrap();
    nested.create().unwrap();
    nested.add_process(c2.pid).unwrap();
    c2.go();
    let mut pids = m.pids().unwrap();
    pids.sort();
    let mut want = vec![c1.pid, c2.pid];
    want.sort();
    assert_eq!(pids, want);

    m.destroy().unwrap();
    assert_eq!(
        c1.wait_timeout(Duration::from_secs(20)),
        Some((false, libc::SIGKILL))
    );
    assert_eq!(
        c2.wait_timeout(Duration::from_secs(20)),
        Some((false, libc::SIGKILL))
    );
    for d in &leaves {
        assert!(!d.exists(), "{} left behind", d.display());
        assert!(!d.parent().unwrap().exists());
        assert!(
            d.parent().unwrap().parent().unwrap().exists(),
            "pre-existing parent removed"
        );
    }
    m.destroy().unwrap(); // idempotent
    pre.destroy().unwrap();
    for d in pre.dirs() {
        assert!(!d.exists());
    }
}

#[test]
fn existing_cgroup_is_joined_not_removed() {
    need_root!();
    let path = format!("{}/c", parent("joined"));
    // made by someone else
    let probe = Manager::new(Some(&path), "unused", false).unwrap();
    let _cleanup = Cleanup(
        probe
            .dirs()
            .iter()
            .map(|d| d.parent().unwrap().to_path_buf())
            .collect(),
    );
    for d in probe.dirs() {
        std::fs::create_dir_all(&d).unwrap();
    }
    let mut m = Manager::new(Some(&path), "unused", false).unwrap();
    m.create().unwrap();
    assert!(m.created().is_empty(), "{:?}", m.created());
    let mut c = spawn(child_sleep, std::ptr::null_mut());
    m.add_process(c.pid).unwrap();
    c.go();
    m.destroy().unwrap();
    assert_eq!(
        c.wait_timeout(Duration::from_millis(300)),
        None,
        "joined cgroup's process was killed"
    );
    for d in m.dirs() {
        assert!(d.exists(), "{} removed", d.display());
    }
    drop(c);
    for d in m.dirs() {
        let _ = std::fs::remove_dir(&d);
        let _ = std::fs::remove_dir(d.parent().unwrap());
    }
}

#[test]
fn signal_all_reaches_every_process() {
    need_root!();
    let cg = Cg::new("signal");
    let mut c1 = spawn(child_sleep, std::ptr::null_mut());
    let mut c2 = spawn(child_sleep, std::ptr::null_mut());
    for c in [&c1, &c2] {
        cg.add_process(c.pid).unwrap();
        c.go();
    }
    cg.signal_all(libc::SIGTERM).unwrap();
    assert_eq!(
        c1.wait_timeout(Duration::from_secs(20)),
        Some((false, libc::SIGTERM))
    );
    assert_eq!(
        c2.wait_timeout(Duration::from_secs(20)),
        Some((false, libc::SIGTERM))
    );
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
}

#[test]
fn paused_cgroup_stays_paused_under_signal_all_and_destroy_kills_it() {
    need_root!();
    let mut cg = Cg::new("paused");
    let mut c = spawn(child_sleep, std::ptr::null_mut());
    cg.add_process(c.pid).unwrap();
    c.go();
    cg.freeze().unwrap();
    cg.signal_all(libc::SIGKILL).unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    cg.0.destroy().unwrap();
    assert_eq!(
        c.wait_timeout(Duration::from_secs(20)),
        Some((false, libc::SIGKILL))
    );
    assert!(cg.dirs().iter().all(|d| !d.exists()));
    let _ = &mut cg;
}

#[test]
fn cpu_and_memory_settings_land_in_files() {
    need_root!();
    let cg = Cg::new("files");
    cg.apply(&res(
        r#"{"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"},
            "memory":{"limit":67108864,"reservation":33554432},
            "pids":{"limit":100}}"#,
    ))
    .unwrap();
    let f = |c: &str, name: &str| read(&dir_of(&cg, c).join(name));
    match &*cg {
        Manager::V1(_) => {
            assert_eq!(f("cpu", "cpu.shares"), "512");
            assert_eq!(f("cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(f("cpu", "cpu.cfs_period_us"), "100000");
            assert_eq!(f("cpuset", "cpuset.cpus"), "0");
            assert_eq!(f("memory", "memory.limit_in_bytes"), "67108864");
            assert_eq!(f("memory", "memory.soft_limit_in_bytes"), "33554432");
        }
        Manager::V2(_) => {
            assert_eq!(
                f("cpu", "cpu.weight"),
                berth_cgroups::resources::shares_to_weight(512).to_string()
            );
            assert_eq!(f("cpu", "cpu.max"), "50000 100000");
            assert_eq!(f("cpuset", "cpuset.cpus"), "0");
            assert_eq!(f("memory", "memory.max"), "67108864");
            assert_eq!(f("memory", "memory.low"), "33554432");
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
    // `update`: raise memory (and swap with it), drop the quota
    cg.apply(&res(
        r#"{"memory":{"limit":134217728,"swap":268435456},"cpu":{"quota":-1}}"#,
    ))
    .unwrap();
    match &*cg {
        Manager::V1(v) => {
            assert_eq!(f("memory", "memory.limit_in_bytes"), "134217728");
            let memsw = v
                .controller_dir("memory")
                .unwrap()
                .join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw), "268435456");
            }
            assert_eq!(f("cpu", "cpu.cfs_quota_us"), "-1");
        }
        Manager::V2(v) => {
            assert_eq!(f("memory", "memory.max"), "134217728");
            let swap = v.dir().join("memory.swap.max");
            if swap.exists() {
                assert_eq!(read(&swap), "134217728");
            }
            assert_eq!(f("cpu", "cpu.max"), "max 100000");
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
    // swap disabled (memory+swap == memory), then memory raised alone:
    // still no swap
    cg.apply(&res(r#"{"memory":{"limit":134217728,"swap":134217728}}"#))
        .unwrap();
    cg.apply(&res(r#"{"memory":{"limit":268435456}}"#)).unwrap();
    match &*cg {
        Manager::V1(v) => {
            let memsw = v
                .controller_dir("memory")
                .unwrap()
                .join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw), "268435456");
            }
        }
        Manager::V2(v) => {
            let swap = v.dir().join("memory.swap.max");
            if swap.exists() {
                assert_eq!(read(&swap), "0");
            }
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
    assert_eq!(
        cg.stats().unwrap().memory.usage.limit,
        268_435_456,
        "stats see the new limit"
    );
    // errors name the field
    let e = cg
        .apply(&res(r#"{"memory":{"limit":134217728,"swap":1}}"#))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("linux.resources.memory.swap"),
        "{e}"
    );
}

#[test]
fn second_tier_settings_land_in_files() {
    need_root!();
    let cg = Cg::new("tier2");
    cg.apply(&res(
        r#"{"cpu":{"quota":50000,"period":100000,"burst":10000,"idle":1},
            "memory":{"limit":67108864,"swappiness":10,"disableOOMKiller":true}}"#,
    ))
    .unwrap();
    let f = |c: &str, name: &str| read(&dir_of(&cg, c).join(name));
    match &*cg {
        Manager::V1(_) => {
            assert_eq!(f("cpu", "cpu.cfs_burst_us"), "10000");
            assert_eq!(f("cpu", "cpu.idle"), "1");
            assert_eq!(f("memory", "memory.swappiness"), "10");
            assert!(f("memory", "memory.oom_control").contains("oom_kill_disable 1"));
        }
        Manager::V2(_) => {
            assert_eq!(f("cpu", "cpu.max.burst"), "10000");
            assert_eq!(f("cpu", "cpu.idle"), "1");
            // swappiness and disableOOMKiller have no v2 file: dropped
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
    // huge pages: applied where a hugetlb controller is, dropped elsewhere
    let hp = res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
    let hugetlb_dir = match &*cg {
        Manager::V1(v) => v.controller_dir("hugetlb"),
        Manager::V2(v) => Some(v.dir()).filter(|d| d.join("hugetlb.2MB.max").exists()),
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    };
    cg.apply(&hp).unwrap();
    if let Some(d) = hugetlb_dir {
        let file = match &*cg {
            Manager::V1(_) => "hugetlb.2MB.limit_in_bytes",
            Manager::V2(_) => "hugetlb.2MB.max",
            Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
        };
        assert_eq!(read(&d.join(file)), "4194304");
        let e = cg
            .apply(&res(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}"#))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.hugepageLimits.pageSize"),
            "{e}"
        );
    }
}

#[test]
fn unified_settings_per_layout() {
    need_root!();
    let cg = Cg::new("unified");
    let r = res(r#"{"unified":{"pids.max":"7"}}"#);
    match &*cg {
        Manager::V1(_) => {
            let e = cg.validate(&r).unwrap_err();
            assert!(e.to_string().starts_with("linux.resources.unified"), "{e}");
            assert!(cg.apply(&r).is_err());
        }
        Manager::V2(v) => {
            cg.apply(&r).unwrap();
            assert_eq!(read(&v.dir().join("pids.max")), "7");
            let e = cg
                .apply(&res(r#"{"unified":{"nosuch.file":"1"}}"#))
                .unwrap_err();
            assert!(e.to_string().contains("linux.resources.unified"), "{e}");
        }
        Manager::Systemd(_) => unreachable!("cgroupfs managers only"),
    }
}

#[test]
fn stats_report_usage() {
    need_root!();
    let cg = Cg::new("stats");
    cg.apply(&res(
        r#"{"pids":{"limit":10},"memory":{"limit":268435456}}"#,
    ))
    .unwrap();
    let shared = Shared::new();
    let c = spawn(child_touch_and_count, shared.0);
    cg.add_process(c.pid).unwrap();
    c.go();
    let start = Instant::now();
    while shared.get() < 1_000_000 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = cg.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 10);
    assert!(s.cpu.usage.total > 0, "{:?}", s.cpu);
    assert!(s.memory.usage.usage > 0, "{:?}", s.memory.usage);
    assert_eq!(s.memory.usage.limit, 268_435_456);
    let j = serde_json::to_value(&s).unwrap();
    assert!(j["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
}

#[test]
fn validation_errors_before_anything_is_made() {
    let m = match Manager::new(Some("/berth-test-never-created"), "x", false) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let e = m.validate(&res(r#"{"cpu":{"cpus":"0-"}}"#)).unwrap_err();
    assert!(e.to_string().starts_with("linux.resources.cpu.cpus"), "{e}");
    assert!(m.dirs().iter().all(|d| !d.exists()));
    assert!(
        m.destroy().is_ok(),
        "destroy of a never-created cgroup is a no-op"
    );
}
