//! Loading and checking a bundle's config.json.
//!
//! Everything that can be checked without side effects is checked here, before
//! `create` makes a state directory, a cgroup or a process, so that bad input
//! fails fast and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::mounts;

/// Reads `<bundle>/config.json`. Syntax errors carry line and column, type
/// errors the JSON path of the offending field.
pub fn load(bundle: &Path) -> Result<Spec> {
    load_ext(bundle).map(|(s, _)| s)
}

/// What config.json can say that oci-spec's types cannot hold.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Extras {
    /// linux.seccomp.flags has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    /// (runtime-spec 1.2), which oci-spec 0.8's flag enum lacks.
    pub seccomp_wait_killable_recv: bool,
    /// mounts[].uidMappings/gidMappings (runtime-spec 1.1), which
    /// oci-spec 0.8's Mount lacks: by index in `mounts`.
    #[serde(default)]
    pub mount_id_maps: Vec<MountIdMap>,
}

/// One mount's own id mappings (see [`Extras::mount_id_maps`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MountIdMap {
    pub index: usize,
    pub uid: Option<Vec<oci_spec::runtime::LinuxIdMapping>>,
    pub gid: Option<Vec<oci_spec::runtime::LinuxIdMapping>>,
}

pub fn load_ext(bundle: &Path) -> Result<(Spec, Extras)> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    parse_ext(&data).map_err(|msg| Error::Config(format!("{}: {msg}", path.display())))
}

pub fn parse(data: &[u8]) -> std::result::Result<Spec, String> {
    parse_ext(data).map(|(s, _)| s)
}

const WAIT_KILLABLE: &str = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";

pub fn parse_ext(data: &[u8]) -> std::result::Result<(Spec, Extras), String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut extras = Extras::default();
    if let Some(flags) = v
        .pointer_mut("/linux/seccomp/flags")
        .and_then(|f| f.as_array_mut())
    {
        let before = flags.len();
        flags.retain(|f| f != WAIT_KILLABLE);
        extras.seccomp_wait_killable_recv = flags.len() != before;
    }
    if let Some(mounts) = v.pointer("/mounts").and_then(|m| m.as_array()) {
        for (index, m) in mounts.iter().enumerate() {
            let field = |k: &str| -> std::result::Result<_, String> {
                m.get(k)
                    .map(|x| {
                        serde_json::from_value::<Vec<oci_spec::runtime::LinuxIdMapping>>(x.clone())
                            .map_err(|e| format!("invalid field mounts[{index}].{k}: {e}"))
                    })
                    .transpose()
            };
            let (uid, gid) = (field("uidMappings")?, field("gidMappings")?);
            if uid.is_some() || gid.is_some() {
                extras.mount_id_maps.push(MountIdMap { index, uid, gid });
            }
        }
    }
    // runc: a namespace whose path is "" is one to create, not to join.
    if let Some(nss) = v
        .pointer_mut("/linux/namespaces")
        .and_then(|n| n.as_array_mut())
    {
        for ns in nss.iter_mut().filter_map(|n| n.as_object_mut()) {
            if ns.get("path").is_some_and(|p| p == "") {
                ns.remove("path");
            }
        }
    }
    serde_path_to_error::deserialize::<_, Spec>(v)
        .map(|s| (s, extras))
        .map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            crate::error::one_line(&if field.is_empty() || field == "." {
                format!("invalid JSON: {inner}")
            } else {
                format!("invalid field {field}: {inner}")
            })
        })
}

/// The ociVersion range berth implements: every 1.x release of the runtime
/// spec is backwards compatible, so any 1.x is accepted.
pub fn check_version(v: &str) -> Result<()> {
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("");
    if major == "1" && parts.next().is_some_and(|m| m.parse::<u32>().is_ok()) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "ociVersion: unsupported version {v:?} (berth supports 1.x)"
    )))
}

/// The container's rootfs as an absolute host path.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root: missing".into()))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(Error::Config("root.path: empty".into()));
    }
    let full = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    let full = std::fs::canonicalize(&full)
        .map_err(|e| Error::Config(format!("root.path {}: {e}", full.display())))?;
    if !full.is_dir() {
        return Err(Error::Config(format!(
            "root.path {}: not a directory",
            full.display()
        )));
    }
    Ok(full)
}

pub fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    namespace(spec, t).is_some()
}

pub fn namespace(spec: &Spec, t: LinuxNamespaceType) -> Option<&oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == t))
}

/// A namespace the container creates itself (listed without a path).
pub fn new_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    namespace(spec, t).is_some_and(|n| n.path().is_none())
}

/// Checks everything about the spec that `create` needs, naming the field at fault.
pub fn validate_for_create(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    validate_for_create_ext(spec, &Extras::default(), bundle)
}

/// [`validate_for_create`] with what config.json said beyond oci-spec's types.
pub fn validate_for_create_ext(spec: &Spec, extras: &Extras, bundle: &Path) -> Result<PathBuf> {
    check_version(spec.version())?;
    let rootfs = rootfs_path(spec, bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process: missing".into()))?;
    validate_process(process)?;

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Config("linux: missing".into()))?;
    crate::lsm::validate(None, None, linux.mount_label().as_deref())?;
    if let Some(p) = linux.memory_policy() {
        crate::sched::validate_memory_policy(p)?;
    }
    // What berth does not do is refused, never dropped.
    if linux.intel_rdt().is_some() {
        return Err(Error::Config(
            if std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
                "linux.intelRdt: not supported by berth".to_string()
            } else {
                "linux.intelRdt: Intel RDT is not available on this host (no resctrl at /sys/fs/resctrl)"
                    .to_string()
            },
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(Error::Config(
            "linux.netDevices: moving host network devices into the container is not supported by berth yet"
                .into(),
        ));
    }
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(Error::Config(format!(
                "linux.namespaces[{i}]: duplicate namespace type {}",
                ns.typ()
            )));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::Config(format!(
                    "linux.namespaces[{i}].path: {} is not absolute",
                    p.display()
                )));
            }
            if let Err(e) = std::fs::metadata(p) {
                return Err(Error::Config(format!(
                    "linux.namespaces[{i}].path: {}: {e}",
                    p.display()
                )));
            }
        }
    }

    // A uts namespace joined by path may be given a name: it is that
    // namespace's, as with runc. Only the host's own would be renamed.
    for (field, set) in [
        (
            "hostname",
            spec.hostname().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        (
            "domainname",
            spec.domainname().as_ref().is_some_and(|h| !h.is_empty()),
        ),
    ] {
        if !set {
            continue;
        }
        if !has_namespace(spec, LinuxNamespaceType::Uts) {
            return Err(Error::Config(format!(
                "{field}: unable to set {field} without a private uts namespace in linux.namespaces"
            )));
        }
        if joins_host_namespace(spec, LinuxNamespaceType::Uts) {
            return Err(Error::Config(format!(
                "{field}: the uts namespace joined by path is the host's; setting it would rename the host"
            )));
        }
    }
    let new_user = new_namespace(spec, LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        && linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_user && !has_maps {
        return Err(Error::Config(
            "linux.uidMappings/gidMappings: a new user namespace needs both mappings".into(),
        ));
    }
    if !new_user
        && (linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()))
    {
        return Err(Error::Config(
            "linux.uidMappings: mappings given without a new user namespace".into(),
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        if !new_namespace(spec, LinuxNamespaceType::Time) {
            return Err(Error::Config(
                "linux.timeOffsets: needs a new time namespace in linux.namespaces".into(),
            ));
        }
        for k in linux.time_offsets().as_ref().unwrap().keys() {
            if k != "monotonic" && k != "boottime" {
                return Err(Error::Config(format!(
                    "linux.timeOffsets.{k}: only monotonic and boottime can be offset"
                )));
            }
        }
    }
    for (k, _) in linux.sysctl().iter().flatten() {
        validate_sysctl(spec, k)?;
    }
    if let Some(p) = linux.rootfs_propagation() {
        mounts::propagation_flag(p).ok_or_else(|| {
            Error::Config(format!("linux.rootfsPropagation: unknown value {p:?}"))
        })?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mounts::validate(i, m)?;
        let opts = mounts::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| Error::Config(format!("mounts[{i}].options: {e}")))?;
        crate::idmap::validate(i, spec, extras, &opts, mounts::is_bind(m, &opts))?;
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(Error::Config(format!(
                "linux.devices[{i}].path: {} must be under /dev",
                d.path().display()
            )));
        }
    }
    for (field, list) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return Err(Error::Config(format!(
                    "{field}[{i}]: {p:?} is not an absolute path"
                )));
            }
        }
    }
    if let Some(s) = linux.seccomp() {
        compile_seccomp(s, &Extras::default())?;
    }
    if let Some(hooks) = spec.hooks() {
        crate::hooks::validate(hooks)?;
    }
    // Last, once the config is known good (a refused one gets one line).
    if !has_namespace(spec, LinuxNamespaceType::Mount) {
        // The runtime-spec allows it (runc runs such a container): it then
        // shares the host's filesystem, so what would change the host's
        // mounts is not done. Said out loud, never silently.
        let skipped: Vec<&str> = [
            (
                spec.mounts().as_ref().is_some_and(|m| !m.is_empty()),
                "mounts",
            ),
            (
                linux.masked_paths().as_ref().is_some_and(|m| !m.is_empty()),
                "linux.maskedPaths",
            ),
            (
                linux
                    .readonly_paths()
                    .as_ref()
                    .is_some_and(|m| !m.is_empty()),
                "linux.readonlyPaths",
            ),
            (
                linux.devices().as_ref().is_some_and(|m| !m.is_empty()),
                "linux.devices",
            ),
            (
                spec.root().as_ref().and_then(|r| r.readonly()) == Some(true),
                "root.readonly",
            ),
            (
                linux.rootfs_propagation().is_some(),
                "linux.rootfsPropagation",
            ),
        ]
        .into_iter()
        .filter_map(|(set, f)| set.then_some(f))
        .collect();
        crate::logging::warn(&format!(
            "linux.namespaces has no mount namespace: the container shares the host's \
             mounts (its root is root.path, by chroot){}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; not applied: {}", skipped.join(", "))
            }
        ));
    }
    Ok(rootfs)
}

pub fn compile_seccomp(
    s: &oci_spec::runtime::LinuxSeccomp,
    extras: &Extras,
) -> Result<berth_seccomp::Filter> {
    let opts = berth_seccomp::CompileOptions {
        wait_killable_recv: extras.seccomp_wait_killable_recv,
        ..Default::default()
    };
    Ok(berth_seccomp::compile_with(s, &opts)?)
}

pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    crate::lsm::validate(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        None,
    )?;
    let args = process.args().as_ref().filter(|a| !a.is_empty());
    match args {
        None => return Err(Error::Config("process.args: must not be empty".into())),
        Some(a) if a[0].is_empty() => {
            return Err(Error::Config(
                "process.args[0]: empty executable name".into(),
            ))
        }
        _ => {}
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd: {} is not an absolute path",
            process.cwd().display()
        )));
    }
    for (i, a) in process.args().iter().flatten().enumerate() {
        if a.contains('\0') {
            return Err(Error::Config(format!(
                "process.args[{i}]: {a:?} contains a NUL byte"
            )));
        }
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return Err(Error::Config(format!(
                "process.env[{i}]: {e:?} is not of the form KEY=VALUE"
            )));
        }
        if e.starts_with('=') {
            return Err(Error::Config(format!(
                "process.env[{i}]: {e:?} has an empty variable name"
            )));
        }
        if e.contains('\0') {
            return Err(Error::Config(format!(
                "process.env[{i}]: {e:?} contains a NUL byte"
            )));
        }
    }
    crate::process::validate_user(process.user())?;
    if let Some(s) = process.scheduler() {
        crate::sched::validate_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        crate::sched::validate_io_priority(p)?;
    }
    if let Some(a) = process.exec_cpu_affinity() {
        if let Some(l) = a.initial() {
            crate::sched::parse_list("process.execCPUAffinity.initial", l)?;
        }
        if let Some(l) = a.cpu_affinity_final() {
            crate::sched::parse_list("process.execCPUAffinity.final", l)?;
        }
    }
    if let Some(c) = process.capabilities() {
        // The kernel takes no effective capability outside permitted.
        let permitted = c.permitted().clone().unwrap_or_default();
        if let Some(extra) = c
            .effective()
            .iter()
            .flatten()
            .find(|cap| !permitted.contains(cap))
        {
            return Err(Error::Config(format!(
                "process.capabilities.effective: {extra} is not in process.capabilities.permitted"
            )));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if !seen.insert(crate::process::rlimit_resource(r.typ())) {
            return Err(Error::Config(format!(
                "process.rlimits[{i}]: duplicate limit {:?}",
                r.typ()
            )));
        }
        if r.soft() > r.hard() {
            return Err(Error::Config(format!(
                "process.rlimits[{i}]: soft limit {} is above hard limit {}",
                r.soft(),
                r.hard()
            )));
        }
    }
    Ok(())
}

/// runc's rule: a sysctl may only be set when the namespace it belongs to is
/// the container's own, otherwise it would change the host.
fn validate_sysctl(spec: &Spec, key: &str) -> Result<()> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let need = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    };
    match need {
        Some(t) if has_namespace(spec, t) && !joins_host_namespace(spec, t) => Ok(()),
        Some(t) if has_namespace(spec, t) => Err(Error::Config(format!(
            "linux.sysctl.{key}: the {t} namespace joined by path is the host's; setting it would change the host"
        ))),
        Some(t) => Err(Error::Config(format!(
            "linux.sysctl.{key}: needs a {t} namespace in linux.namespaces"
        ))),
        None => Err(Error::Config(format!(
            "linux.sysctl.{key}: not a namespaced sysctl; setting it would change the host"
        ))),
    }
}

/// Is the namespace of type `t` joined by a path that is in fact the host's
/// (the one berth itself runs in)? runc's isHostNetNS, for every type.
fn joins_host_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = namespace(spec, t).and_then(|n| n.path().as_ref()) else {
        return false;
    };
    let name = match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        _ => return false,
    };
    match (
        std::fs::metadata(path),
        std::fs::metadata(format!("/proc/self/ns/{name}")),
    ) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_reports_line_and_column() {
        let e = parse(b"{\n \"ociVersion\": \"1.0.2\",\n oops }").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("column"), "{e}");
    }

    #[test]
    fn type_error_names_the_field() {
        let e = parse(br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"bogus"}]}}"#)
            .unwrap_err();
        assert!(e.contains("linux.namespaces[0].type"), "{e}");
    }

    #[test]
    fn wait_killable_recv_flag_reaches_the_filter() {
        let (spec, extras) = parse_ext(
            br#"{"ociVersion":"1.2.0","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW",
                "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV","SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath":"/x","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}}}"#,
        )
        .unwrap();
        assert!(extras.seccomp_wait_killable_recv);
        let s = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        let f = compile_seccomp(s, &extras).unwrap();
        // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is 1 << 5.
        assert_ne!(f.flags() & (1 << 5), 0);
    }

    #[test]
    fn version_range() {
        assert!(check_version("1.0.2").is_ok());
        assert!(check_version("1.2.0").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("").is_err());
        assert!(check_version("0.9").is_err());
    }
}
