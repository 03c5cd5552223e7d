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

/// Walks `path` inside `root` one component at a time, resolving symlinks
/// as if `root` were `/` (an absolute target restarts at `root`, `..` stops
/// at it) and creating what is missing: directories on the way, and a
/// directory or an empty file at the end. Single-component lookups with
/// O_NOFOLLOW leave nothing for a concurrent rename to exploit. Returns an
/// O_PATH fd of the final object.
fn walk_create(root: BorrowedFd<'_>, path: &Path, last_is_dir: bool) -> io::Result<OwnedFd> {
    let mut todo: Vec<std::ffi::OsString> = relative(path)?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let reopen_root = || {
        sys::openat2(
            Some(root),
            Path::new("."),
            O_PATH_DIR,
            0,
            libc::RESOLVE_BENEATH,
        )
    };
    let mut stack: Vec<OwnedFd> = vec![reopen_root()?];
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        if comp == "." || comp.is_empty() {
            continue;
        }
        let last = todo.is_empty();
        let cur = stack.last().expect("root stays on the stack").as_fd();
        let name = Path::new(&comp);
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        let fd = match sys::openat2(Some(cur), name, flags, 0, resolve) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if last && !last_is_dir {
                    let dir = sys::openat2(
                        Some(cur),
                        Path::new("."),
                        libc::O_RDONLY | libc::O_DIRECTORY,
                        0,
                        libc::RESOLVE_BENEATH,
                    )?;
                    match sys::openat2(
                        Some(dir.as_fd()),
                        name,
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                        0o644,
                        resolve,
                    ) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                } else {
                    match sys::mkdirat(cur, name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                sys::openat2(Some(cur), name, flags, 0, resolve)?
            }
            Err(e) => return Err(e),
        };
        let st = sys::fstat(fd.as_fd())?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            links += 1;
            if links > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = readlink_fd(fd.as_fd())?;
            if target.is_absolute() {
                stack.truncate(1);
            }
            for c in target.components().rev() {
                match c {
                    Component::RootDir | Component::CurDir => {}
                    other => todo.push(other.as_os_str().to_os_string()),
                }
            }
            continue;
        }
        if !last && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        stack.push(fd);
    }
    Ok(stack.pop().expect("at least the root"))
}

fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat with an empty path reads the link `fd` refers to;
    // the buffer is valid for its length.
    let n = unsafe {
        libc::readlinkat(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            c"".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
    ))
}

/// Like `mkdir -p` inside `root`; returns an O_PATH fd of the directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, _mode: u32) -> io::Result<OwnedFd> {
    walk_create(root, path, true)
}

/// Makes sure something exists at `path` inside `root` to mount a file
/// on, creating an empty file if needed; returns an O_PATH fd to it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    walk_create(root, path, false)
}

/// Is the fd a directory?
pub fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(sys::fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}
