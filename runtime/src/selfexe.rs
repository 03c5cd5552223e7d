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
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

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
    let mut src = exe;
    // SAFETY: we wrap our own fd in a File only for io::copy and release it
    // again with into_raw_fd, so ownership stays with `memfd`.
    let mut dst = unsafe { File::from_raw_fd(memfd.as_raw_fd()) };
    let r = std::io::copy(&mut src, &mut dst);
    let _ = std::os::fd::IntoRawFd::into_raw_fd(dst);
    r.ctx(|| "copying berth into a memfd".into())?;
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
