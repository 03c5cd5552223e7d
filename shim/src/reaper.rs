//! Reaping. The shim is the child subreaper of every container process: it
//! reaps all of them and reports each exit once, to whoever watches the pid.
//!
//! berth's library, called from the ttrpc worker threads, also waits for
//! children of its own (hooks, an exec's intermediate process) by pid, so
//! the shim must never take their statuses. It never calls a plain
//! `waitpid(-1)`: the main thread reaps (1) the pids it was asked to watch,
//! by pid, and (2) with `__WNOTHREAD`, only its *own* children, which are
//! the orphans the kernel reparents to this subreaper (and the children of
//! a worker thread that exited). Children a worker thread forked and waits
//! for are never touched, so library calls need no lock against reaping,
//! and a slow hook in one container never delays another's exit.
//!
//! An exec'd process is an orphan (its intermediate parent exits) and can
//! be reaped by (2) before its watcher is registered: such exits are kept
//! for a moment and handed to the watcher when it comes, if they happened
//! after the process was started.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

type OnExit = Box<dyn FnOnce(i32) + Send>;

#[derive(Default)]
struct Reaper {
    /// Held while a reaped exit is being recorded, and by Kill: a process
    /// is seen either alive or already marked exited, never reaped (its pid
    /// free for reuse) but not yet marked.
    marks: Mutex<()>,
    watched: Mutex<HashMap<i32, OnExit>>,
    /// Exits of pids nobody watched (yet): pid → (status, when reaped).
    unclaimed: Mutex<HashMap<i32, (i32, Instant)>>,
}

fn reaper() -> &'static Reaper {
    static R: OnceLock<Reaper> = OnceLock::new();
    R.get_or_init(Reaper::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held by Kill around "is it still running? then signal it".
pub fn marks() -> MutexGuard<'static, ()> {
    lock(&reaper().marks)
}

/// Calls `f` with the exit status (128+N for signal N) when `pid` is
/// reaped. `since`: a moment before the process was started, to tell its
/// own early exit from an older process that had the same pid.
pub fn watch(pid: i32, since: Instant, f: impl FnOnce(i32) + Send + 'static) {
    let early = {
        let _m = marks();
        let early = lock(&reaper().unclaimed)
            .remove(&pid)
            .filter(|(_, at)| *at >= since);
        if early.is_none() {
            lock(&reaper().watched).insert(pid, Box::new(f));
            None
        } else {
            early.map(|(code, _)| (code, f))
        }
    };
    match early {
        Some((code, f)) => f(code),
        // It may have exited before it was watched, a child of a worker
        // thread that SIGCHLD already woke the reaper for: look again.
        // SAFETY: signalling ourselves.
        None => unsafe {
            libc::kill(libc::getpid(), libc::SIGCHLD);
        },
    }
}

pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Reaps what is the shim's to reap and runs the watchers of those that
/// had one. Watchers run on the reaper and must be quick.
pub fn reap_all() {
    let r = reaper();
    // (1) Watched pids, whichever thread's children they are.
    let pids: Vec<i32> = lock(&r.watched).keys().copied().collect();
    for pid in pids {
        let _m = marks();
        let mut status = 0;
        // SAFETY: waitpid on one pid; WNOHANG never blocks.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            if let Some(cb) = lock(&r.watched).remove(&pid) {
                cb(exit_code(status));
            }
        }
    }
    // (2) This thread's own children: orphans.
    loop {
        let _m = marks();
        let mut status = 0;
        // SAFETY: plain syscall; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WNOTHREAD) };
        if pid <= 0 {
            break;
        }
        let code = exit_code(status);
        match lock(&r.watched).remove(&pid) {
            Some(cb) => cb(code),
            None => {
                let mut u = lock(&r.unclaimed);
                u.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(60));
                u.insert(pid, (code, Instant::now()));
            }
        }
    }
}

/// The signals the main thread takes with `sigwaitinfo`; blocked in every
/// thread (set before the first thread starts, and inherited).
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: building and installing a signal mask for this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        set
    }
}

/// The main thread's loop: reaps on SIGCHLD, returns on SIGUSR1 (sent by
/// the Shutdown RPC). SIGTERM and SIGINT are ignored: containers outlive a
/// stray signal to their shim, as with containerd's own shims.
pub fn run(set: &libc::sigset_t) {
    loop {
        // SAFETY: sigwaitinfo with a valid set and out-pointer.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set, &mut info)
        };
        match sig {
            libc::SIGCHLD => reap_all(),
            libc::SIGUSR1 => {
                reap_all();
                return;
            }
            _ => {}
        }
    }
}
