//! The container's root filesystem: containerd passes the snapshot's mounts
//! (an overlay, or a bind) in the Create request and the shim mounts them
//! on `<bundle>/rootfs`, and unmounts them on delete.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use containerd_shim_protos::types::mount::Mount;

pub fn mount_all(mounts: &[Mount], rootfs: &Path) -> Result<(), String> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(rootfs).map_err(|e| format!("mkdir {}: {e}", rootfs.display()))?;
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, rootfs) {
            unmount(rootfs);
            return Err(format!(
                "rootfs[{i}] ({} on {}): {e}",
                m.type_,
                rootfs.display()
            ));
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, rootfs: &Path) -> Result<(), String> {
    let o = berth::mounts::parse(&m.options)?;
    // A target inside the image (rare: containerd mounts onto the rootfs
    // itself) is resolved inside the rootfs, so a symlink in an
    // already-mounted layer cannot lead the mount onto the host.
    let _held;
    let target = if m.target.is_empty() {
        rootfs.to_path_buf()
    } else {
        let root = berth::sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| e.to_string())?;
        let fd = berth::sys::openat2(
            Some(root.as_fd()),
            Path::new(m.target.trim_start_matches('/')),
            libc::O_PATH,
            0,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| format!("target {}: {e}", m.target))?;
        let p = PathBuf::from(berth::sys::proc_fd_path(fd.as_raw_fd()));
        _held = fd;
        p
    };
    let mut flags = o.flags;
    if o.bind {
        flags |= libc::MS_BIND;
        if o.recursive_bind {
            flags |= libc::MS_REC;
        }
    }
    let data = o.data_string();
    let fstype = (!m.type_.is_empty() && !o.bind).then_some(m.type_.as_str());
    // A bind ignores MS_RDONLY on the first mount: it takes a remount.
    let first = if o.bind {
        flags & !libc::MS_RDONLY
    } else {
        flags
    };
    berth::sys::mount(
        Some(Path::new(&m.source)),
        &target,
        fstype,
        first,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| e.to_string())?;
    if flags & libc::MS_RDONLY != 0 && o.bind {
        berth::sys::mount(
            None,
            &target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
        .map_err(|e| format!("remount read-only: {e}"))?;
    }
    for p in &o.propagation {
        berth::sys::mount(None, &target, None, *p, None).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Unmounts everything on `rootfs`, innermost first; a path with nothing
/// mounted is left alone.
pub fn unmount(rootfs: &Path) {
    for _ in 0..64 {
        if berth::sys::umount2(rootfs, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW).is_err() {
            break;
        }
    }
}
