//! The syscall edge: loading filters, handing the listener over, probing the kernel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::plan::{
    FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_WAIT_KILLABLE_RECV, RET_ALLOW, RET_ERRNO,
    RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG, RET_TRACE, RET_TRAP, RET_USER_NOTIF,
};
use crate::{Error, Filter};

const FLAG_TSYNC: u32 = 1 << 0;

fn seccomp(op: libc::c_uint, flags: u32, args: *const libc::c_void) -> io::Result<libc::c_long> {
    // SAFETY: seccomp(2) only reads `args` for the operations used here
    // (a sock_fprog for SET_MODE_FILTER, a u32 for GET_ACTION_AVAIL); callers
    // pass a pointer to such a live value, or NULL where the point is to make
    // the kernel stop at EFAULT after checking the flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(op),
            libc::c_ulong::from(flags),
            args,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub(crate) fn load(filter: &Filter) -> Result<Option<OwnedFd>, Error> {
    let prog = libc::sock_fprog {
        // compile() refuses programs longer than BPF_MAXINSNS (4096).
        len: filter.program.len() as libc::c_ushort,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    let mut flags = filter.flags;
    let rc = loop {
        match seccomp(
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            (&prog as *const libc::sock_fprog).cast(),
        ) {
            Ok(rc) => break rc,
            // Kernels before 4.17 lack SPEC_ALLOW; runc only asks for it when
            // the kernel has it, so quietly do without it.
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    && filter.implicit_spec_allow
                    && flags & FLAG_SPEC_ALLOW != 0 =>
            {
                flags &= !FLAG_SPEC_ALLOW;
            }
            Err(source) => return Err(Error::Load { flags, source }),
        }
    };
    if flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    let fd = RawFd::try_from(rc).map_err(|_| Error::Load {
        flags,
        source: io::Error::other("kernel returned an out-of-range listener fd"),
    })?;
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the return value is a new
    // file descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Connects to the seccomp agent at `listener_path` (a unix stream socket) and
/// sends `process_state_json` (the runtime-spec "container process state":
/// `{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state": {...}}`)
/// with the listener fd attached as `SCM_RIGHTS`, in one message, the way
/// runc does.
pub fn send_listener(
    listener_path: &Path,
    listener: BorrowedFd<'_>,
    process_state_json: &[u8],
) -> Result<(), Error> {
    let err = |source| Error::SendListener {
        path: listener_path.to_path_buf(),
        source,
    };
    if process_state_json.is_empty() {
        // A zero-length stream write carries no ancillary data.
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the container process state must not be empty",
        )));
    }
    let stream = UnixStream::connect(listener_path).map_err(err)?;
    send_with_fd(&stream, process_state_json, listener).map_err(err)
}

fn send_with_fd(stream: &UnixStream, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd_len = std::mem::size_of::<RawFd>() as libc::c_uint;
    // u64 elements keep the buffer aligned for struct cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
    assert!(space <= std::mem::size_of_val(&control));

    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` writable, aligned bytes, enough
    // for one cmsghdr carrying one fd, so CMSG_FIRSTHDR is non-null and
    // CMSG_DATA stays inside the buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
    }
    // SAFETY: msg and everything it points to (iov, data, control) outlive the call.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The fd went with the first byte; a short write only leaves plain bytes.
    let mut rest = &data[sent as usize..];
    while !rest.is_empty() {
        // SAFETY: `rest` is a live byte slice.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

const ACTIONS: [(&str, u32); 9] = [
    ("SCMP_ACT_KILL", RET_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS),
    ("SCMP_ACT_KILL_THREAD", RET_KILL_THREAD),
    ("SCMP_ACT_TRAP", RET_TRAP),
    ("SCMP_ACT_ERRNO", RET_ERRNO),
    ("SCMP_ACT_TRACE", RET_TRACE),
    ("SCMP_ACT_ALLOW", RET_ALLOW),
    ("SCMP_ACT_LOG", RET_LOG),
    ("SCMP_ACT_NOTIFY", RET_USER_NOTIF),
];

fn action_available(action: u32) -> bool {
    let value = action;
    seccomp(
        libc::SECCOMP_GET_ACTION_AVAIL,
        0,
        (&value as *const u32).cast(),
    )
    .is_ok()
}

/// Actions (profile names) the running kernel can carry out.
pub fn supported_actions() -> Vec<&'static str> {
    // SECCOMP_GET_ACTION_AVAIL itself appeared in 4.14, with LOG; older
    // kernels have exactly the original actions.
    if !action_available(RET_ALLOW) {
        return ACTIONS
            .iter()
            .filter(|(_, a)| {
                matches!(
                    *a,
                    RET_KILL_THREAD | RET_TRAP | RET_ERRNO | RET_TRACE | RET_ALLOW
                )
            })
            .map(|(n, _)| *n)
            .collect();
    }
    ACTIONS
        .iter()
        .filter(|(_, a)| action_available(*a))
        .map(|(n, _)| *n)
        .collect()
}

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER. The kernel
/// checks flags before reading the program, so a NULL program yields EFAULT
/// for known flags and EINVAL for unknown ones, and installs nothing.
fn kernel_accepts(flags: u32) -> bool {
    matches!(
        seccomp(libc::SECCOMP_SET_MODE_FILTER, flags, std::ptr::null()),
        Err(e) if e.raw_os_error() == Some(libc::EFAULT)
    )
}

/// Profile flags (`linux.seccomp.flags`) the running kernel supports.
///
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is left out even where the kernel
/// has it: the OCI types this crate reads profiles through cannot carry it,
/// so advertising it would invite configs that fail to parse.
pub fn supported_flags() -> Vec<&'static str> {
    [
        ("SECCOMP_FILTER_FLAG_TSYNC", FLAG_TSYNC),
        ("SECCOMP_FILTER_FLAG_LOG", FLAG_LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", FLAG_SPEC_ALLOW),
    ]
    .into_iter()
    .filter(|&(_, f)| kernel_accepts(f))
    .map(|(n, _)| n)
    .collect()
}

/// Whether this kernel accepts SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19+).
pub fn kernel_has_wait_killable_recv() -> bool {
    kernel_accepts(FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV)
}
