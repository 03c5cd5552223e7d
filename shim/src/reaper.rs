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
//! Every process the shim watches (an init, an exec'd process, a logger)
//! is a child of the worker thread that started it (an exec's second fork
//! uses CLONE_PARENT), which the shim never reaps with (2) while that
//! thread lives; so no watched exit can be reaped before its watcher is
//! registered. When a worker thread exits, its children go to the main
//! thread, and (2) finds their watchers.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

type OnExit = Box<dyn FnOnce(i32) + Send>;

#[derive(Default)]
struct Reaper {
    /// Held while a reaped exit is being recorded, and by Kill: a process
    /// is seen either alive or already marked exited, never reaped (its pid
    /// free for reuse) but not yet marked.
    marks: Mutex<()>,
    watched: Mutex<HashMap<i32, OnExit>>,
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

/// Calls `f` with the exit status (128+N for signal N) when `pid`, a
/// child of the calling thread, is reaped.
pub fn watch(pid: i32, f: impl FnOnce(i32) + Send + 'static) {
    lock(&reaper().watched).insert(pid, Box::new(f));
    // It may have exited already, and SIGCHLD woken the reaper before it
    // was watched: have it look again.
    // SAFETY: signalling ourselves.
    unsafe { libc::kill(libc::getpid(), libc::SIGCHLD) };
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
        // An orphan nobody watches is simply gone.
        if let Some(cb) = lock(&r.watched).remove(&pid) {
            cb(exit_code(status));
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
