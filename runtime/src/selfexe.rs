//! Protection of the berth binary from the container (the CVE-2019-5736
//! class).
//!
//! Every process that enters a container (the init of `create`/`run`, the
//! process of `exec`) is started from a sealed memfd copy of berth rather
//! than from the binary on disk. While it runs inside the container, and if
//! the container makes it execute `/proc/self/exe` again, the file the
//! container can reach is that memfd: it cannot be written (F_SEAL_WRITE,
//! F_SEAL_GROW/SHRINK) and the seals cannot be removed (F_SEAL_SEAL).
//!
//! Why a memfd copy and not runc's read-only overlay mount: berth is one
//! small static binary, so the copy costs a single in-kernel
//! copy_file_range of about a megabyte, needs no mount privileges (it also
//! works rootless), leaves nothing to clean up, and commands that never enter
//! a container (start, state, kill, delete) skip it entirely.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::{Context, Result};
use crate::sys;

pub fn sealed_copy() -> Result<OwnedFd> {
    let exe = File::open("/proc/self/exe").ctx(|| "opening /proc/self/exe".into())?;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC keeps the copy executable where vm.memfd_noexec would
    // otherwise forbid it; kernels before 6.3 do not know the flag.
    let memfd = sys::memfd_create(c"berth", base | libc::MFD_EXEC)
        .or_else(|_| sys::memfd_create(c"berth", base))
        .ctx(|| "memfd_create".into())?;
    // One in-kernel sendfile of the whole file into a memfd already sized
    // for it: far fewer syscalls and page faults than a buffered copy.
    let size = exe.metadata().ctx(|| "stat /proc/self/exe".into())?.len();
    // SAFETY: ftruncate on our own fd.
    if unsafe { libc::ftruncate(memfd.as_raw_fd(), size as libc::off_t) } != 0 {
        return Err(crate::error::Error::sys(
            "sizing the berth memfd",
            std::io::Error::last_os_error(),
        ));
    }
    let mut off: libc::off_t = 0;
    while (off as u64) < size {
        // SAFETY: both fds are valid; `off` is updated by the kernel.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                &mut off,
                (size - off as u64) as usize,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(crate::error::Error::sys("copying berth into a memfd", e));
        }
        if n == 0 {
            break;
        }
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own.
    let r = unsafe { libc::fcntl(memfd.as_fd().as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if r < 0 {
        return Err(crate::error::Error::sys(
            "sealing the berth memfd",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(memfd)
}
