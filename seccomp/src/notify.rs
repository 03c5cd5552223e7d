//! Minimal seccomp user-notification agent side: receive a notification from
//! a listener fd and answer it. Enough for tests and simple agents.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A syscall stopped by `SCMP_ACT_NOTIFY`, waiting for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Cookie to pass back to [`respond`].
    pub id: u64,
    /// The calling thread, in the listener's pid namespace (0 if not visible there).
    pub pid: u32,
    /// `seccomp_data.nr`.
    pub nr: i32,
    /// `seccomp_data.arch`.
    pub arch: u32,
    /// `seccomp_data.instruction_pointer`.
    pub instruction_pointer: u64,
    /// `seccomp_data.args`.
    pub args: [u64; 6],
}

/// How the stopped syscall should finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Let the kernel run the syscall (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    Continue,
    /// Fail with this (positive) errno.
    Errno(i32),
    /// Succeed without running, returning this value.
    Return(i64),
}

/// Blocks until a notification arrives on `listener`. Retries on EINTR.
/// `ENOENT` means the caller went away before it could be read.
pub fn recv(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    loop {
        // The kernel insists on a zeroed buffer.
        // SAFETY: seccomp_notif is plain data; all-zero is valid.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `n` is a live, correctly sized seccomp_notif the ioctl fills in.
        let rc = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut n as *mut libc::seccomp_notif,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(Notification {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            arch: n.data.arch,
            instruction_pointer: n.data.instruction_pointer,
            args: n.data.args,
        });
    }
}

/// Answers notification `id`. `ENOENT` means the caller is gone (or the
/// syscall was interrupted); there is nothing left to answer then.
pub fn respond(listener: BorrowedFd<'_>, id: u64, response: Response) -> io::Result<()> {
    let (val, error, flags) = match response {
        Response::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Response::Errno(e) => (0, -e.abs(), 0),
        Response::Return(v) => (v, 0, 0),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: `resp` is a live, correctly sized seccomp_notif_resp the ioctl reads.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether notification `id` is still pending (its caller alive and waiting).
/// Agents that read the caller's memory check this afterwards to rule out pid reuse.
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from a live value.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        )
    };
    rc == 0
}
