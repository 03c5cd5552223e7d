//! Resolving and creating paths inside the container's rootfs without ever
//! leaving it.
//!
//! Every lookup goes through openat2(2) with RESOLVE_IN_ROOT, so a symlink in
//! the rootfs (`/etc -> /host/etc`, `../../..`) is resolved as if the rootfs
//! were `/`, exactly as it will be once the container runs. Mounts then
//! target the returned O_PATH fd (through `/proc/self/fd/N` of the host's
//! procfs, or move_mount(2)), so swapping a path component after it was
//! checked cannot redirect a mount (the runc CVE-2021-30465 and 2025
//! maskedPaths/console classes).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;

const O_PATH_DIR: i32 = libc::O_PATH | libc::O_DIRECTORY;

/// Strips the leading `/` and refuses `..`, so the path is a plain relative
/// walk from the root.
pub fn relative(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} contains \"..\"", path.display()),
                ))
            }
        }
    }
    Ok(out)
}

/// Opens `path` (O_PATH) inside `root`. With `no_symlinks`, any symlink on
/// the way is an error (ELOOP) instead of being resolved in the root.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, no_symlinks: bool) -> io::Result<OwnedFd> {
    let rel = relative(path)?;
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let mut resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    if no_symlinks {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    sys::openat2(Some(root), &rel, libc::O_PATH, 0, resolve)
}

/// Like `mkdir -p` inside `root`; returns an O_PATH fd of the directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let rel = relative(path)?;
    let mut cur = PathBuf::new();
    let mut fd = sys::openat2(
        Some(root),
        Path::new("."),
        O_PATH_DIR,
        0,
        libc::RESOLVE_IN_ROOT,
    )?;
    for comp in rel.components() {
        cur.push(comp);
        let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        match sys::openat2(Some(root), &cur, O_PATH_DIR, 0, resolve) {
            Ok(f) => fd = f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // `fd` is the already resolved parent: creating relative to it
                // cannot escape, and mkdirat never follows a final symlink.
                match sys::mkdirat(fd.as_fd(), Path::new(comp.as_os_str()), mode) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                fd = sys::openat2(Some(root), &cur, O_PATH_DIR, 0, resolve).map_err(|e| {
                    if e.raw_os_error() == Some(libc::ENOENT) {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{} is a dangling symlink", cur.display()),
                        )
                    } else {
                        e
                    }
                })?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fd)
}

/// Makes sure a non-directory exists at `path` inside `root` (for bind
/// mounts of files and device nodes) and returns an O_PATH fd to it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    let rel = relative(path)?;
    if let Ok(fd) = open_in_root(root, &rel, false) {
        return Ok(fd);
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
    let pfd = mkdir_all(root, parent, 0o755)?;
    // Reopen the parent as a real directory fd: openat needs one to create in.
    let dir = sys::openat2(
        Some(pfd.as_fd()),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_BENEATH,
    )?;
    let _created = sys::openat2(
        Some(dir.as_fd()),
        Path::new(name),
        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o644,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    );
    if let Err(e) = _created {
        // A device node or fifo already there cannot be opened for writing,
        // which is fine: we only need something to mount on.
        if e.raw_os_error() != Some(libc::EEXIST)
            && e.raw_os_error() != Some(libc::ENXIO)
            && e.raw_os_error() != Some(libc::EACCES)
        {
            return Err(e);
        }
    }
    open_in_root(root, &rel, false)
}

/// Is the fd a directory?
pub fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(sys::fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}
