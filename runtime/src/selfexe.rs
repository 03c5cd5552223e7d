//! Protection of the berth binary from the container (the CVE-2019-5736
//! class).
//!
//! Every process that enters a container (the init of `create`/`run`, the
//! process of `exec`) must be started from a file the container cannot
//! write: while it runs inside the container, or if the container makes it
//! execute `/proc/self/exe` again, `/proc/PID/exe` is the container's way
//! to the binary, and an fd taken there stays usable after berth exits.
//!
//! First choice: a read-only bind mount of the binary over itself, made by
//! the spawned child (after fork, before exec) in a private mount namespace
//! of its own. The init is exec'd through that mount, so its exe can only
//! ever be reopened read-only (EROFS); the mount lives in a namespace no
//! container process can reach, so it cannot be remounted read-write, and it
//! is gone when the last process that uses it exits. It costs an unshare and
//! two mounts, far less than copying the binary (measured in
//! docs/benchmarks.md). Doing it in the child, not in the caller, leaves the
//! caller's mount namespace alone and works from a multi-threaded caller
//! (the shim), where unshare(CLONE_NEWNS) is refused.
//!
//! Fallback, where that is impossible (no CAP_SYS_ADMIN, the binary was
//! replaced on disk): a sealed memfd copy, which cannot be written
//! (F_SEAL_WRITE, F_SEAL_GROW/SHRINK) nor unsealed (F_SEAL_SEAL). Commands
//! that never enter a container (start, state, kill, delete) do neither.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Context, Result};
use crate::sys;

/// The binary to exec an init from.
pub enum Protected {
    /// berth's own path, to be bound read-only over itself by the child
    /// (see [`bind_in_child`]) before it execs that path.
    ReadOnlyBind(PathBuf, CString),
    Memfd(OwnedFd),
}

impl Protected {
    pub fn exec_path(&self) -> PathBuf {
        match self {
            Protected::ReadOnlyBind(p, _) => p.clone(),
            Protected::Memfd(fd) => PathBuf::from(sys::proc_fd_path(fd.as_raw_fd())),
        }
    }
}

/// Set once a child failed to make the bind: later spawns go straight to
/// the memfd.
static BIND_FAILED: AtomicBool = AtomicBool::new(false);

pub fn protected() -> Result<Protected> {
    if !BIND_FAILED.load(Ordering::Relaxed) {
        match bindable_exe() {
            Ok(p) => {
                let c = CString::new(p.as_os_str().as_bytes()).expect("no NUL in a path");
                return Ok(Protected::ReadOnlyBind(p, c));
            }
            Err(e) => {
                crate::logging::debug(&format!(
                    "no read-only bind of berth ({e}); using a sealed memfd"
                ));
                BIND_FAILED.store(true, Ordering::Relaxed);
            }
        }
    }
    sealed_copy().map(Protected::Memfd)
}

/// Records that the child could not make the bind, so the caller retries
/// with a memfd.
pub fn bind_failed() {
    crate::logging::debug("read-only bind of berth failed in the child; using a sealed memfd");
    BIND_FAILED.store(true, Ordering::Relaxed);
}

fn bindable_exe() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    if !exe.is_absolute() || exe.to_string_lossy().ends_with(" (deleted)") || !exe.is_file() {
        return Err(std::io::Error::other(
            "berth's binary is not a plain file on disk",
        ));
    }
    Ok(exe)
}

/// Runs in the forked child, before exec: a private mount namespace, every
/// mount a slave so nothing reaches the host's, and `exe` bound read-only
/// over itself. Only raw syscalls: this runs between fork and exec.
pub fn bind_in_child(exe: &CString) -> std::io::Result<()> {
    let root = c"/";
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            || libc::mount(
                exe.as_ptr(),
                exe.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            || libc::mount(
                std::ptr::null(),
                exe.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                std::ptr::null(),
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
