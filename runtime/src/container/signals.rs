//! `run` and `exec` in the foreground: signals sent to berth go to the
//! container's process, whose exit status becomes berth's.

const FORWARD: [i32; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// Blocks the signals `run`/`exec` forward (and SIGCHLD) in this thread,
/// before any other thread exists, so every later thread inherits the
/// mask and only `sigwaitinfo` ever takes them. The init resets its own
/// mask, so the container is unaffected.
pub(super) fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: building and installing a signal mask for this thread.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARD {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Forwards signals sent to berth to the container's process until it
/// exits; returns its exit status (128+N when killed by signal N).
pub(super) fn wait_forwarding_signals(pid: i32) -> i32 {
    let set = block_forwarded_signals();
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our child (CLONE_PARENT made it ours).
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        } else if r < 0 {
            return 255;
        }
        // Reap any orphan that reparented to us (we are a subreaper).
        // SAFETY: plain syscalls.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let s = libc::sigwaitinfo(&set, &mut info);
            if s > 0 && s != libc::SIGCHLD {
                libc::kill(pid, s);
            } else if s == libc::SIGCHLD {
                loop {
                    let mut st = 0;
                    let w = libc::waitpid(-1, &mut st, libc::WNOHANG);
                    if w <= 0 {
                        break;
                    }
                    if w == pid {
                        if libc::WIFEXITED(st) {
                            return libc::WEXITSTATUS(st);
                        }
                        if libc::WIFSIGNALED(st) {
                            return 128 + libc::WTERMSIG(st);
                        }
                    }
                }
            }
        }
    }
}
