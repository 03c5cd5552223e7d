//! Idmapped mounts: the `idmap` and `ridmap` mount options and
//! `mounts[].uidMappings/gidMappings`. The parent (still the host's root)
//! clones the source (open_tree), gives the clone an id mapping with
//! mount_setattr(MOUNT_ATTR_IDMAP) and a user namespace holding the
//! mapping, and the init attaches it in the container (as for any bind
//! source cloned by the parent): files keep their owners as the container
//! sees them, e.g. a volume owned by 0 shows as owned by the container's
//! root whatever host id that root is.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::{Error, Result};
use crate::mounts::Options;
use crate::spec::Extras;
use crate::sys;

/// The "containerID hostID size" lines of a mapping list, as uid_map and
/// gid_map take them.
pub(crate) fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether mount `m` asks for an id mapping, and which: its own
/// uidMappings/gidMappings, else the container's user namespace's.
pub fn mappings(
    spec: &Spec,
    extras: &Extras,
    index: usize,
    opts: &Options,
) -> Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let own = extras.mount_id_maps.iter().find(|m| m.index == index);
    if !opts.idmap && own.is_none() {
        return None;
    }
    let linux = spec.linux().as_ref();
    let uid = own
        .and_then(|m| m.uid.clone())
        .or_else(|| linux.and_then(|l| l.uid_mappings().clone()))
        .unwrap_or_default();
    let gid = own
        .and_then(|m| m.gid.clone())
        .or_else(|| linux.and_then(|l| l.gid_mappings().clone()))
        .unwrap_or_default();
    Some((uid, gid))
}

/// Checks, before anything is made, that an idmapped mount has mappings
/// and is a bind mount.
pub fn validate(i: usize, spec: &Spec, extras: &Extras, opts: &Options, bind: bool) -> Result<()> {
    let Some((uid, gid)) = mappings(spec, extras, i, opts) else {
        return Ok(());
    };
    if !bind {
        return Err(Error::Config(format!(
            "mounts[{i}].options: idmap applies to bind mounts only"
        )));
    }
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::Config(format!(
            "mounts[{i}].uidMappings/gidMappings: an idmapped mount needs both, its own or the container's user namespace's"
        )));
    }
    Ok(())
}

/// A user namespace holding the given mappings, as an fd: made by a child
/// that unshares one and waits until the maps are written, then exits.
pub fn userns_fd(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> std::io::Result<OwnedFd> {
    let (r, w) = sys::pipe()?;
    let (rr, wr) = (r.as_raw_fd(), w.as_raw_fd());
    let pid = sys::fork_with_flags(libc::CLONE_NEWUSER as libc::c_ulong)?;
    if pid == 0 {
        // The child only makes raw syscalls: the parent may have threads.
        // SAFETY: closing our copy of the write end, then blocking until
        // the parent closes its own, then leaving without running anything.
        unsafe {
            libc::close(wr);
            let mut b = 0u8;
            libc::read(rr, &mut b as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(0);
        }
    }
    drop(r);
    let res = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(uid))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(gid))?;
        sys::open(
            std::path::Path::new(&format!("/proc/{pid}/ns/user")),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
    })();
    drop(w);
    // SAFETY: reaping the child we just made.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    res
}

/// Gives the cloned tree `tree` the id mapping of user namespace `userns`
/// (recursively for `ridmap` and `rbind`).
pub fn apply(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> std::io::Result<()> {
    let mut attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `attr` is a valid mount_attr whose size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The parent's part of an idmapped bind mount: `tree` (a clone of the
/// source) mapped, or a clear error where the kernel or the filesystem
/// cannot idmap.
pub fn map_tree(
    i: usize,
    tree: &OwnedFd,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    recursive: bool,
) -> Result<()> {
    let ns = userns_fd(uid, gid)
        .map_err(|e| Error::Config(format!("mounts[{i}]: a user namespace for the idmap: {e}")))?;
    apply(tree, &ns, recursive).map_err(|e| {
        Error::Config(format!(
            "mounts[{i}]: idmapped mount: {e} (the kernel or the source's filesystem cannot idmap it)"
        ))
    })
}
