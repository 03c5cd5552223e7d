//! berth run by an unprivileged user: its state under `$XDG_RUNTIME_DIR`,
//! the container's user namespace mapped by the kernel's rules for
//! unprivileged users (one mapping of the caller, written directly) or by
//! `newuidmap`/`newgidmap` from /etc/subuid and /etc/subgid, and no cgroup
//! where the user has none to make one in (cgroup v1, or v2 without a
//! delegated subtree), as runc does: then resource limits, which would
//! need one, are refused.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::{Error, Result};

/// Not running as the host's root.
pub fn is_rootless() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// The state root when `--root` is not given: /run/berth for root;
/// `$XDG_RUNTIME_DIR/berth` for anyone else (runc: `$XDG_RUNTIME_DIR/runc`),
/// /run/user/UID/berth without it.
pub fn default_root() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from(crate::DEFAULT_ROOT);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("berth"),
        // SAFETY: geteuid cannot fail.
        None => PathBuf::from(format!("/run/user/{}/berth", unsafe { libc::geteuid() })),
    }
}

/// The first resource limit the config asks for, if any (device rules
/// aside: a rootless container reaches only the device nodes bound into
/// it, and can make none).
pub fn limits_asked(spec: &Spec) -> Option<&'static str> {
    let r = spec.linux().as_ref()?.resources().as_ref()?;
    [
        (r.memory().is_some(), "linux.resources.memory"),
        (r.cpu().is_some(), "linux.resources.cpu"),
        (r.pids().is_some(), "linux.resources.pids"),
        (r.block_io().is_some(), "linux.resources.blockIO"),
        (
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
            "linux.resources.hugepageLimits",
        ),
        (r.network().is_some(), "linux.resources.network"),
        (r.rdma().is_some(), "linux.resources.rdma"),
        (
            r.unified().as_ref().is_some_and(|u| !u.is_empty()),
            "linux.resources.unified",
        ),
    ]
    .into_iter()
    .find_map(|(set, f)| set.then_some(f))
}

/// Whether a cgroup error is the host refusing an unprivileged user.
pub fn cgroup_refused(e: &berth_cgroups::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

/// Writes the id maps of the init's new user namespace. Root writes them
/// directly; an unprivileged user may write one mapping of its own ids
/// (after denying setgroups, as the kernel requires), and hands anything
/// else to the setuid helpers newuidmap/newgidmap, which check it against
/// /etc/subuid and /etc/subgid.
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().expect("validated");
    let uid = linux.uid_mappings().clone().unwrap_or_default();
    let gid = linux.gid_mappings().clone().unwrap_or_default();
    if !is_rootless() {
        return write_direct(pid, &uid, &gid);
    }
    // SAFETY: getuid/getgid cannot fail.
    let (me, my_gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let own = |maps: &[LinuxIdMapping], id: u32| {
        maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == id
    };
    if own(&uid, me) && own(&gid, my_gid) {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny")
            .map_err(|e| Error::Config(format!("linux.gidMappings: writing {path}: {e}")))?;
        return write_direct(pid, &uid, &gid);
    }
    for (tool, maps, field) in [
        ("newuidmap", &uid, "linux.uidMappings"),
        ("newgidmap", &gid, "linux.gidMappings"),
    ] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg(pid.to_string());
        for m in maps.iter() {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        // SAFETY: the closure only calls sigprocmask (async-signal-safe).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, crate::sys::reset_signal_mask)
        };
        let out = cmd.output().map_err(|e| {
            Error::Config(format!(
                "{field}: running {tool} (Debian's uidmap package): {e}"
            ))
        })?;
        if !out.status.success() {
            return Err(Error::Config(format!(
                "{field}: {tool} refused the mapping (check /etc/subuid and /etc/subgid): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

fn write_direct(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    for (file, maps, field) in [
        ("uid_map", uid, "linux.uidMappings"),
        ("gid_map", gid, "linux.gidMappings"),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, crate::idmap::map_text(maps))
            .map_err(|e| Error::Config(format!("{field}: writing {path}: {e}")))?;
    }
    Ok(())
}
