//! Protection of the berth binary from the container (the CVE-2019-5736
//! class).
//!
//! Every process that enters a container (the init of `create`/`run`, the
//! process of `exec`) must be started from a file the container cannot
//! write: while it runs inside the container, or if the container makes it
//! execute `/proc/self/exe` again, `/proc/PID/exe` is the container's way
//! to the binary, and an fd taken there stays usable after berth exits.
//!
//! First choice: a read-only bind mount of the binary over itself, made in
//! a private mount namespace of the berth process that spawns the init. The
//! init is exec'd through that mount, so its exe can only ever be reopened
//! read-only (EROFS); the mount lives in a namespace no container process is
//! in, so it cannot be remounted read-write, and it is gone when the last
//! process that uses it exits. It costs an unshare and two mounts, far less
//! than copying the binary (measured in docs/benchmarks.md).
//!
//! Fallback, where that is impossible (no CAP_SYS_ADMIN, the binary was
//! replaced on disk): a sealed memfd copy, which cannot be written
//! (F_SEAL_WRITE, F_SEAL_GROW/SHRINK) nor unsealed (F_SEAL_SEAL). Commands
//! that never enter a container (start, state, kill, delete) do neither.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Context, Result};
use crate::sys;

/// The binary to exec an init from.
pub enum Protected {
    /// berth's own path, bound read-only in this process's mount namespace.
    ReadOnlyBind(PathBuf),
    Memfd(OwnedFd),
}

impl Protected {
    pub fn exec_path(&self) -> PathBuf {
        match self {
            Protected::ReadOnlyBind(p) => p.clone(),
            Protected::Memfd(fd) => PathBuf::from(sys::proc_fd_path(fd.as_raw_fd())),
        }
    }
}

pub fn protected() -> Result<Protected> {
    static BOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let bound = BOUND.get_or_init(|| match readonly_bind() {
        Ok(p) => Some(p),
        Err(e) => {
            crate::logging::debug(&format!(
                "read-only bind of berth failed ({e}); using a sealed memfd"
            ));
            None
        }
    });
    match bound {
        Some(p) => Ok(Protected::ReadOnlyBind(p.clone())),
        None => sealed_copy().map(Protected::Memfd),
    }
}

fn readonly_bind() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    if !exe.is_absolute() || exe.to_string_lossy().ends_with(" (deleted)") || !exe.is_file() {
        return Err(std::io::Error::other(
            "berth's binary is not a plain file on disk",
        ));
    }
    sys::unshare(libc::CLONE_NEWNS)?;
    // Nothing done in this namespace may reach the host's.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )?;
    sys::mount(Some(&exe), &exe, None, libc::MS_BIND, None)?;
    sys::mount(
        None,
        &exe,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(exe)
}

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
