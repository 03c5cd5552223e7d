//! Starting `berth init`: a small fork-exec of berth's own, because std's
//! Command can neither pass a cgroup to clone nor leave the signal mask
//! empty. On cgroup v2 the child is born in the container's cgroup (clone3
//! with CLONE_INTO_CGROUP), so it is accounted and limited from its first
//! instruction, with no window in the caller's cgroup and no write to
//! cgroup.procs; where the kernel refuses that (no clone3, v1), a plain
//! fork, and the caller moves it. Between fork and exec the child makes
//! only raw async-signal-safe syscalls: the caller may be multi-threaded.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The kernel's `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub struct Plan<'a> {
    pub exe: &'a Path,
    /// Bind `exe` read-only over itself first (see `selfexe`).
    pub bind: Option<&'a CString>,
    pub env: Vec<(String, String)>,
    pub stdio: Option<[RawFd; 3]>,
    /// Fds to keep across exec (their close-on-exec flag is cleared).
    pub inherit: &'a [RawFd],
    /// cgroup v2: the directory to be born in.
    pub cgroup: Option<&'a Path>,
}

/// Set once the kernel refused clone3 with CLONE_INTO_CGROUP: later
/// spawns fork, and the caller moves the child.
static CLONE_INTO_CGROUP_REFUSED: AtomicBool = AtomicBool::new(false);

/// Forks and execs `exe init`; returns its pid and whether it was born in
/// `plan.cgroup`. Errors from the child before exec (the bind, execve)
/// come back as the error.
pub fn spawn_init(plan: &Plan<'_>) -> std::io::Result<(i32, bool)> {
    let exe = crate::sys::cstring(plan.exe)?;
    let argv0 = c"berth";
    let argv1 = c"init";
    let argv: [*const libc::c_char; 3] = [argv0.as_ptr(), argv1.as_ptr(), std::ptr::null()];
    let mut env: Vec<CString> = Vec::new();
    let overridden: Vec<&str> = plan.env.iter().map(|(k, _)| k.as_str()).collect();
    for (k, v) in std::env::vars_os() {
        if overridden.iter().any(|o| o.as_bytes() == k.as_bytes()) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    for (k, v) in &plan.env {
        env.push(CString::new(format!("{k}={v}")).map_err(std::io::Error::other)?);
    }
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (err_r, err_w) = crate::sys::pipe()?;

    let mut pid = -1;
    let mut born_in_cgroup = false;
    if let Some(dir) = plan
        .cgroup
        .filter(|_| !CLONE_INTO_CGROUP_REFUSED.load(Ordering::Relaxed))
    {
        let cg = crate::sys::open(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: clone3 with no new stack behaves as fork: the child runs
        // on a copy of this stack and, below, makes only raw
        // async-signal-safe syscalls before execve or _exit.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        } as i32;
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(
                    libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EOPNOTSUPP | libc::EPERM,
                ) => {
                    crate::logging::debug("CLONE_INTO_CGROUP refused; moving the init instead");
                    CLONE_INTO_CGROUP_REFUSED.store(true, Ordering::Relaxed);
                }
                _ => return Err(e),
            }
        } else {
            born_in_cgroup = true;
        }
    }
    if pid < 0 {
        // SAFETY: as for clone3 above.
        pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe { child(plan, &exe, &argv, &envp, err_w.as_raw_fd()) }
    }
    drop(err_w);
    let mut buf = [0u8; 4];
    let n = loop {
        // SAFETY: read into a local buffer.
        let n = unsafe { libc::read(err_r.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n == 0 {
        return Ok((pid, born_in_cgroup));
    }
    // The child failed before exec: it reported errno and exits.
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
}

/// The child between fork (or clone3) and execve.
unsafe fn child(
    plan: &Plan<'_>,
    exe: &CStr,
    argv: &[*const libc::c_char; 3],
    envp: &[*const libc::c_char],
    err: RawFd,
) -> ! {
    let fail = |e: i32| -> ! {
        let b = e.to_ne_bytes();
        libc::write(err, b.as_ptr().cast(), 4);
        libc::_exit(127)
    };
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    if let Some(stdio) = plan.stdio {
        for (target, fd) in stdio.iter().enumerate() {
            let target = target as RawFd;
            let r = if *fd == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(*fd, target)
            };
            if r < 0 {
                fail(errno());
            }
        }
    }
    for &fd in plan.inherit {
        let fl = libc::fcntl(fd, libc::F_GETFD);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
            fail(errno());
        }
    }
    if let Some(b) = plan.bind {
        if let Err(e) = crate::selfexe::bind_in_child(b) {
            fail(e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
    libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(errno())
}
