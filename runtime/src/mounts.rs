//! Turning a config.json mount's fstab-style options into what the kernel
//! takes: MS_* flags for mount(2), mount_setattr(2) attributes for
//! recursive options, a propagation type, and the data string.

use oci_spec::runtime::Mount;

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// MS_* flags to set.
    pub flags: libc::c_ulong,
    /// MS_* flags the options explicitly clear (rw, suid, exec, ...): needed
    /// when a bind mount is remounted on top of a source with those flags.
    pub cleared: libc::c_ulong,
    pub bind: bool,
    pub recursive_bind: bool,
    /// Propagation changes, applied in order after mounting.
    pub propagation: Vec<libc::c_ulong>,
    /// MOUNT_ATTR_* set and cleared on the whole tree (rro, rnosuid, ...).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Everything the kernel interprets per filesystem (size=, mode=, ...).
    pub data: Vec<String>,
    /// `tmpcopyup`: a tmpfs starts with a copy of the directory it covers.
    pub copy_up: bool,
    /// `idmap`/`ridmap`: an idmapped bind mount (recursive for `ridmap`).
    pub idmap: bool,
    pub idmap_recursive: bool,
}

impl Options {
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// (set, clear) for the plain options.
fn flag(name: &str) -> Option<(libc::c_ulong, libc::c_ulong)> {
    Some(match name {
        "defaults" => (0, 0),
        "ro" => (libc::MS_RDONLY, 0),
        "rw" => (0, libc::MS_RDONLY),
        "nosuid" => (libc::MS_NOSUID, 0),
        "suid" => (0, libc::MS_NOSUID),
        "nodev" => (libc::MS_NODEV, 0),
        "dev" => (0, libc::MS_NODEV),
        "noexec" => (libc::MS_NOEXEC, 0),
        "exec" => (0, libc::MS_NOEXEC),
        "sync" => (libc::MS_SYNCHRONOUS, 0),
        "async" => (0, libc::MS_SYNCHRONOUS),
        "dirsync" => (libc::MS_DIRSYNC, 0),
        "remount" => (libc::MS_REMOUNT, 0),
        "mand" => (libc::MS_MANDLOCK, 0),
        "nomand" => (0, libc::MS_MANDLOCK),
        "atime" => (0, libc::MS_NOATIME),
        "noatime" => (libc::MS_NOATIME, 0),
        "diratime" => (0, libc::MS_NODIRATIME),
        "nodiratime" => (libc::MS_NODIRATIME, 0),
        "relatime" => (libc::MS_RELATIME, 0),
        "norelatime" => (0, libc::MS_RELATIME),
        "strictatime" => (libc::MS_STRICTATIME, 0),
        "nostrictatime" => (0, libc::MS_STRICTATIME),
        "lazytime" => (libc::MS_LAZYTIME, 0),
        "nolazytime" => (0, libc::MS_LAZYTIME),
        "iversion" => (libc::MS_I_VERSION, 0),
        "noiversion" => (0, libc::MS_I_VERSION),
        "silent" => (libc::MS_SILENT, 0),
        "loud" => (0, libc::MS_SILENT),
        "nosymfollow" => (libc::MS_NOSYMFOLLOW, 0),
        "symfollow" => (0, libc::MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// (set, clear) of MOUNT_ATTR_* for the recursive `r*` options.
fn rec_attr(name: &str) -> Option<(u64, u64)> {
    const ATIME: u64 = libc::MOUNT_ATTR__ATIME;
    Some(match name {
        "rro" => (libc::MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => (libc::MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, libc::MOUNT_ATTR_NOSUID),
        "rnodev" => (libc::MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, libc::MOUNT_ATTR_NODEV),
        "rnoexec" => (libc::MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (libc::MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, libc::MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (libc::MOUNT_ATTR_RELATIME, ATIME),
        // The atime mode is one field of the mask: changing it clears the
        // whole of MOUNT_ATTR__ATIME (anything less is EINVAL).
        "rnorelatime" => (libc::MOUNT_ATTR_STRICTATIME, ATIME),
        "rnoatime" => (libc::MOUNT_ATTR_NOATIME, ATIME),
        "ratime" => (libc::MOUNT_ATTR_RELATIME, ATIME),
        "rstrictatime" => (libc::MOUNT_ATTR_STRICTATIME, ATIME),
        "rnosymfollow" => (libc::MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, libc::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

pub fn parse(options: &[String]) -> std::result::Result<Options, String> {
    let mut o = Options::default();
    for opt in options {
        let name = opt.as_str();
        if name == "bind" {
            o.bind = true;
        } else if name == "rbind" {
            o.bind = true;
            o.recursive_bind = true;
        } else if let Some((set, clear)) = flag(name) {
            o.flags = (o.flags & !clear) | set;
            o.cleared = (o.cleared & !set) | clear;
        } else if let Some(p) = propagation_flag(name) {
            o.propagation.push(p);
        } else if let Some((set, clear)) = rec_attr(name) {
            o.rec_set = (o.rec_set & !clear) | set;
            o.rec_clear = (o.rec_clear & !set) | clear;
        } else if name == "tmpcopyup" {
            o.copy_up = true;
        } else if name == "idmap" {
            o.idmap = true;
        } else if name == "ridmap" {
            o.idmap = true;
            o.idmap_recursive = true;
        } else if name.is_empty() {
            return Err("empty option".into());
        } else {
            o.data.push(opt.clone());
        }
    }
    Ok(o)
}

/// Is this a bind mount? runc treats `type: bind` and a bind option alike.
pub fn is_bind(m: &Mount, o: &Options) -> bool {
    o.bind || m.typ().as_deref() == Some("bind")
}

pub fn validate(i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return Err(Error::Config(format!("mounts[{i}].destination: empty")));
    }
    if dest
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::Config(format!(
            "mounts[{i}].destination: {} contains \"..\"",
            dest.display()
        )));
    }
    let opts = parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| Error::Config(format!("mounts[{i}].options: {e}")))?;
    let bind = is_bind(m, &opts);
    if opts.copy_up && (bind || m.typ().as_deref() != Some("tmpfs")) {
        return Err(Error::Config(format!(
            "mounts[{i}].options: tmpcopyup applies to tmpfs mounts only"
        )));
    }
    if !bind && m.typ().as_deref().unwrap_or("").is_empty() {
        return Err(Error::Config(format!(
            "mounts[{i}].type: missing for non-bind mount on {}",
            dest.display()
        )));
    }
    if bind {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::Config(format!("mounts[{i}].source: missing for bind mount")))?;
        if src.is_absolute() {
            std::fs::metadata(src).map_err(|e| {
                Error::Config(format!("mounts[{i}].source: {}: {e}", src.display()))
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Options {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = p(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rslave",
            "ro",
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_RDONLY);
        assert_eq!(o.data_string(), "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
    }

    #[test]
    fn later_option_wins() {
        let o = p(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_ne!(o.cleared & libc::MS_RDONLY, 0);
    }

    #[test]
    fn rbind_and_recursive_attrs() {
        let o = p(&["rbind", "rro", "rnosuid"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.rec_set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn recursive_atime_options_replace_the_whole_atime_mode() {
        for (opt, set) in [
            ("ratime", libc::MOUNT_ATTR_RELATIME),
            ("rnoatime", libc::MOUNT_ATTR_NOATIME),
            ("rstrictatime", libc::MOUNT_ATTR_STRICTATIME),
            ("rnorelatime", libc::MOUNT_ATTR_STRICTATIME),
        ] {
            let o = p(&[opt]);
            assert_eq!(o.rec_set, set, "{opt}");
            assert_eq!(o.rec_clear, libc::MOUNT_ATTR__ATIME, "{opt}");
        }
    }

    #[test]
    fn idmap_and_ridmap_are_options() {
        let o = p(&["rbind", "ridmap"]);
        assert!(o.idmap && o.idmap_recursive);
        let o = p(&["bind", "idmap"]);
        assert!(o.idmap && !o.idmap_recursive);
    }
}
