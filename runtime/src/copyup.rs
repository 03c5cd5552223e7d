//! `tmpcopyup`: a new tmpfs starts with a copy of the directory it covers
//! (podman's `--read-only`, `--tmpfs`, `--mount type=tmpfs` ask for it), so
//! an image's /tmp or /run keeps its contents, modes, owners and xattrs.
//!
//! Everything is done on directory fds with O_NOFOLLOW: a symlink in the
//! image is copied as a symlink, never followed, so nothing outside the
//! rootfs is read or written.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::sys;

/// How deep a tree is copied before it is refused: bounds the recursion
/// (and the fds it holds open) whatever the image holds.
const MAX_DEPTH: usize = 128;

/// Copies the contents of directory `src` into directory `dst` (the new
/// tmpfs's root), and the owner and mode of `src` onto `dst`.
pub fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    copy_dir(src, dst, 0)?;
    let st = sys::fstat(src)?;
    fchown(dst, st.st_uid, st.st_gid)?;
    fchmod(dst, st.st_mode & 0o7777)?;
    copy_xattrs(src, dst)
}

/// What a copied directory or file takes from its original once its
/// contents are in: owner, mode, xattrs and times.
fn copy_attributes(from: BorrowedFd<'_>, to: BorrowedFd<'_>, st: &libc::stat) -> io::Result<()> {
    fchown(to, st.st_uid, st.st_gid)?;
    fchmod(to, st.st_mode & 0o7777)?;
    copy_xattrs(from, to)?;
    set_times(to, st)
}

/// Re-owns the link or node `name` in `dir` itself (not what it points to).
fn chown_entry(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> io::Result<()> {
    // SAFETY: name is NUL-terminated; AT_SYMLINK_NOFOLLOW re-owns the entry.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.st_uid,
            st.st_gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    for name in list(src)? {
        let st = fstatat(src, &name)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                mkdirat(dst, &name, 0o700)?;
                let from = openat(src, &name, libc::O_RDONLY | libc::O_DIRECTORY)?;
                let to = openat(dst, &name, libc::O_RDONLY | libc::O_DIRECTORY)?;
                copy_dir(from.as_fd(), to.as_fd(), depth + 1)?;
                copy_attributes(from.as_fd(), to.as_fd(), &st)?;
            }
            libc::S_IFREG => {
                let from = openat(src, &name, libc::O_RDONLY)?;
                let to = openat_create(dst, &name, 0o600)?;
                copy_data(from.as_fd(), to.as_fd(), st.st_size as u64)?;
                copy_attributes(from.as_fd(), to.as_fd(), &st)?;
            }
            libc::S_IFLNK => {
                let target = readlinkat(src, &name)?;
                // SAFETY: both strings are NUL-terminated.
                check(unsafe { libc::symlinkat(target.as_ptr(), dst.as_raw_fd(), name.as_ptr()) })?;
                chown_entry(dst, &name, &st)?;
            }
            // Device nodes, fifos and sockets as nodes of the same kind;
            // mknod refused (a user namespace) leaves them out, as a
            // copy made without the privilege would.
            _ => {
                // SAFETY: name is NUL-terminated.
                let r = unsafe {
                    libc::mknodat(dst.as_raw_fd(), name.as_ptr(), st.st_mode, st.st_rdev)
                };
                if r == 0 {
                    chown_entry(dst, &name, &st)?;
                } else if io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
                    return Err(io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The names in directory `dir` (without . and ..).
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    // A directory stream of its own: fdopendir takes the fd it is given.
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
    // SAFETY: fdopendir takes ownership of a valid directory fd.
    let d = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut out = Vec::new();
    loop {
        // SAFETY: d is a valid DIR*; readdir's entry is valid until the next call.
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: closes the stream and its fd.
    unsafe { libc::closedir(d) };
    Ok(out)
}

fn fstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat filled by the kernel; name is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ))?;
        Ok(st)
    }
}

fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the result is a new fd or -1.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat_create(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: as openat; O_EXCL never reuses something already there.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })
}

fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
}

fn set_times(fd: BorrowedFd<'_>, st: &libc::stat) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: two valid timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
}

fn copy_data(from: BorrowedFd<'_>, to: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        // SAFETY: null offsets use and advance the files' own positions.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                left.min(1 << 30) as usize,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
            ) {
                return copy_by_read(from, to);
            }
            return Err(e);
        }
        if n == 0 {
            break; // the file shrank meanwhile
        }
        left -= n as u64;
    }
    Ok(())
}

fn copy_by_read(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sys::read_fd(from, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sys::write_all_fd(to, &buf[..n])?;
    }
}

/// Every extended attribute the kernel lets us read and the tmpfs take
/// (tmpfs keeps trusted.*, security.* and, since 6.6, user.*); one it
/// refuses to store is left out rather than failing the container.
fn copy_xattrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe {
        libc::flistxattr(
            from.as_raw_fd(),
            names.as_mut_ptr() as *mut libc::c_char,
            names.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(()),
            _ => Err(e),
        };
    }
    names.truncate(n as usize);
    let mut value = vec![0u8; 64 * 1024];
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        // SAFETY: the buffer is valid for its length.
        let len = unsafe {
            libc::fgetxattr(
                from.as_raw_fd(),
                cname.as_ptr(),
                value.as_mut_ptr() as *mut libc::c_void,
                value.len(),
            )
        };
        if len < 0 {
            continue;
        }
        // SAFETY: value holds len bytes.
        let r = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                cname.as_ptr(),
                value.as_ptr() as *const libc::c_void,
                len as usize,
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOTSUP | libc::EPERM | libc::EACCES)
            ) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("xattr {}: {e}", OsStr::from_bytes(name).to_string_lossy()),
                ));
            }
        }
    }
    Ok(())
}
