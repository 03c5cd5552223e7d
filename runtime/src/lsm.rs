//! AppArmor and SELinux: the process's profile or label, set so that it
//! takes effect at the user program's execve (after everything berth itself
//! must still do), the SELinux label of the session keyring, and the
//! `context=` of the mounts that take one.
//!
//! On a host without the LSM a config naming a profile or label is refused
//! (AppArmor's "unconfined" excepted: it asks for nothing): running such a
//! container unconfined would silently drop what it asked for.

use std::path::Path;

use crate::error::{Error, Result};

const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
const APPARMOR_PROFILES: &str = "/sys/kernel/security/apparmor/profiles";
const SELINUXFS: &str = "/sys/fs/selinux";

/// AppArmor is on in this kernel (runc's test).
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string(APPARMOR_ENABLED).is_ok_and(|s| s.trim() == "Y")
}

/// SELinux is on: its filesystem is mounted (policy loaded or not).
pub fn selinux_enabled() -> bool {
    Path::new(SELINUXFS).join("enforce").exists()
}

/// What `create` and `exec` check before anything is made: the profile is
/// loaded, the labels are valid, the LSM is there at all.
pub fn validate(
    profile: Option<&str>,
    label: Option<&str>,
    mount_label: Option<&str>,
) -> Result<()> {
    if let Some(p) = profile.filter(|p| !p.is_empty() && *p != "unconfined") {
        if !apparmor_enabled() {
            return Err(Error::Config(format!(
                "process.apparmorProfile: AppArmor is not enabled on this host, but profile {p:?} was asked for"
            )));
        }
        // securityfs lists the loaded profiles ("name (mode)"); where it
        // cannot be read (not mounted) the write at exec reports instead.
        if let Ok(list) = std::fs::read_to_string(APPARMOR_PROFILES) {
            let loaded = list
                .lines()
                .any(|l| l.rsplit_once(" (").is_some_and(|(name, _)| name == p));
            if !loaded {
                return Err(Error::Config(format!(
                    "process.apparmorProfile: profile {p:?} is not loaded (apparmor_parser -r it first)"
                )));
            }
        }
    }
    for (field, l) in [
        ("process.selinuxLabel", label),
        ("linux.mountLabel", mount_label),
    ] {
        let Some(l) = l.filter(|l| !l.is_empty()) else {
            continue;
        };
        if !selinux_enabled() {
            return Err(Error::Config(format!(
                "{field}: SELinux is not enabled on this host, but label {l:?} was asked for"
            )));
        }
        check_context(l).map_err(|e| Error::Config(format!("{field}: label {l:?}: {e}")))?;
    }
    Ok(())
}

/// The kernel's own check of a security context (what libselinux's
/// security_check_context does): writing it to selinuxfs' `context`.
fn check_context(label: &str) -> std::io::Result<()> {
    let mut data = label.as_bytes().to_vec();
    data.push(0);
    std::fs::write(Path::new(SELINUXFS).join("context"), data).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            std::io::Error::new(e.kind(), "not a valid context in the loaded policy")
        } else {
            e
        }
    })
}

/// Sets the labels the user program gets at its execve: the AppArmor
/// profile (the exec transition) and the SELinux process label. Called by
/// the init as late as it can, before the seccomp filter, so that the
/// filter never sees these writes. The container's own /proc is at /proc.
pub fn set_exec_labels(profile: Option<&str>, label: Option<&str>) -> Result<()> {
    if let Some(p) = profile.filter(|p| !p.is_empty()) {
        if p != "unconfined" || apparmor_enabled() {
            write_attr(
                &[
                    "/proc/thread-self/attr/apparmor/exec",
                    "/proc/self/attr/exec",
                ],
                format!("exec {p}").as_bytes(),
            )
            .map_err(|e| Error::Config(format!("process.apparmorProfile {p:?}: {e}")))?;
        }
    }
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        write_attr(
            &["/proc/thread-self/attr/exec", "/proc/self/attr/exec"],
            l.as_bytes(),
        )
        .map_err(|e| Error::Config(format!("process.selinuxLabel {l:?}: {e}")))?;
    }
    Ok(())
}

/// The SELinux label of keyrings this process creates from now on (the
/// session keyring `create` joins), as runc sets it.
pub fn set_keyring_label(label: Option<&str>) -> Result<()> {
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        write_attr(
            &[
                "/proc/thread-self/attr/keycreate",
                "/proc/self/attr/keycreate",
            ],
            l.as_bytes(),
        )
        .map_err(|e| Error::Config(format!("process.selinuxLabel {l:?} (keyring): {e}")))?;
    }
    Ok(())
}

/// The first of `paths` that exists takes `value` (newer kernels have the
/// per-LSM and per-thread files).
fn write_attr(paths: &[&str], value: &[u8]) -> std::io::Result<()> {
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for p in paths {
        match std::fs::OpenOptions::new().write(true).open(p) {
            Ok(mut f) => {
                return std::io::Write::write_all(&mut f, value)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{p}: {e}")));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => last = e,
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{p}: {e}"))),
        }
    }
    Err(last)
}

/// The mount data with linux.mountLabel as its `context=`, for the
/// filesystems runc labels that way (tmpfs, devpts and the like; not proc,
/// sysfs, cgroup, mqueue or binds).
pub fn mount_data(fstype: &str, data: &str, mount_label: Option<&str>) -> String {
    let Some(l) = mount_label.filter(|l| !l.is_empty()) else {
        return data.to_string();
    };
    if matches!(
        fstype,
        "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue" | "bind"
    ) || data.contains("context=")
    {
        return data.to_string();
    }
    let ctx = format!("context=\"{l}\"");
    if data.is_empty() {
        ctx
    } else {
        format!("{data},{ctx}")
    }
}

/// mqueue takes no context= option: its root is labelled instead (runc),
/// where the filesystem keeps labels.
pub fn label_mount_root(path: &Path, mount_label: Option<&str>) -> Result<()> {
    let Some(l) = mount_label.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Config("linux.mountLabel: NUL in path".into()))?;
    // SAFETY: valid strings and a value buffer of its length.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            c"security.selinux".as_ptr(),
            l.as_ptr() as *const libc::c_void,
            l.len(),
            0,
        )
    };
    // A filesystem that keeps no labels of its own (mqueue on many
    // kernels: the policy's genfscon labels it) is left as it is.
    if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(Error::Config(format!(
            "linux.mountLabel {l:?} on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_label_goes_into_the_data_of_the_filesystems_that_take_it() {
        let l = Some("system_u:object_r:tmpfs_t:s0:c1,c2");
        assert_eq!(
            mount_data("tmpfs", "mode=755", l),
            "mode=755,context=\"system_u:object_r:tmpfs_t:s0:c1,c2\""
        );
        assert_eq!(
            mount_data("devpts", "", l),
            "context=\"system_u:object_r:tmpfs_t:s0:c1,c2\""
        );
        assert_eq!(mount_data("proc", "", l), "");
        assert_eq!(mount_data("mqueue", "x", l), "x");
        assert_eq!(mount_data("tmpfs", "mode=755", None), "mode=755");
    }
}
