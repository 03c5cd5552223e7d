//! Reaping. The shim is the child subreaper of every container process: it
//! reaps all of them and reports each exit once, to whoever watches the pid.
//!
//! berth's library also waits for children of its own (hooks, the
//! intermediate process of an exec), by pid. A `waitpid(-1)` here could
//! take such a status first, so every call into the library that may fork
//! holds [`guard`], and reaping happens only while nobody does. Pids to
//! report are registered under that same guard, before it is released, so
//! an exit can never be reaped before its watcher exists.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

type OnExit = Box<dyn FnOnce(i32) + Send>;

#[derive(Default)]
struct Reaper {
    lock: Mutex<()>,
    watched: Mutex<HashMap<i32, OnExit>>,
}

fn reaper() -> &'static Reaper {
    static R: OnceLock<Reaper> = OnceLock::new();
    R.get_or_init(Reaper::default)
}

/// Held around library calls that fork and wait for their own children.
pub fn guard() -> MutexGuard<'static, ()> {
    reaper().lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls `f` with the exit status (128+N for signal N) when `pid` is
/// reaped. Register while holding [`guard`].
pub fn watch(pid: i32, f: impl FnOnce(i32) + Send + 'static) {
    reaper()
        .watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, Box::new(f));
}

/// Stops watching `pid` (a process that was never started).
pub fn unwatch(pid: i32) {
    reaper()
        .watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
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

/// Reaps every exited child and runs the watchers of those that had one,
/// still under the guard: whoever holds it (Kill, say) sees a process
/// either alive or already marked exited, never reaped but unmarked, when
/// its pid could already be reused. Watchers must be quick and must not
/// take the guard.
pub fn reap_all() {
    let _g = guard();
    loop {
        let mut status = 0;
        // SAFETY: plain syscall; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        let cb = reaper()
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        if let Some(cb) = cb {
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
