//! berth's cgroup layer: one interface over cgroup v1 (legacy and hybrid
//! hosts) and cgroup v2 (unified hosts).
//!
//! The runtime talks only to [`Manager`]; which hierarchy sits underneath is
//! decided once, by [`detect_layout`], from what the host has mounted.
//!
//! Life of a container's cgroup:
//! `create`: [`Manager::new`] → [`Manager::validate`] → [`Manager::create`]
//! → (fork init) [`Manager::add_process`] → [`Manager::apply`] → store the
//! Manager (it carries what `create` made); `update`: [`Manager::apply`];
//! `pause`/`resume`: [`Manager::freeze`]/[`Manager::thaw`]; `kill --all`:
//! [`Manager::signal_all`]; `delete`: [`Manager::destroy`].
//!
//! Settings with no counterpart on a layout follow runc: on v2,
//! swappiness, disableOOMKiller, kernel, kernelTCP and blockIO.leafWeight
//! are dropped; hugepageLimits are dropped where no hugetlb controller is
//! available (Kubernetes sends them to every container). Hard limits that
//! cannot be enforced are errors naming the field: realtime CPU and
//! network on v2, `unified` on v1, any controller that is not mounted.

use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

mod dbus;
pub mod devices;
mod ebpf;
mod fs;
mod mountinfo;
mod oom;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

pub use oom::OomWatcher;
pub use stats::Stats;

/// How the host's cgroup hierarchies are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Pure cgroup2 at the cgroup root.
    Unified,
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`)
    /// that holds no controller berth needs.
    Hybrid,
    /// v1 controllers only.
    Legacy,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cgroupfs operation other than a value write failed.
    #[error("cgroup {}: {}", path.display(), errno(err))]
    Io { path: PathBuf, err: std::io::Error },
    /// The kernel refused a value.
    #[error("cgroup {}: writing {value:?}: {}", path.display(), errno(err))]
    Write {
        path: PathBuf,
        value: String,
        err: std::io::Error,
    },
    /// A cgroup file held something berth cannot read.
    #[error("cgroup {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// A value of the container's configuration is invalid; `field` is its
    /// place in config.json (e.g. `linux.resources.memory.limit`).
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: String },
    /// A setting this host (or berth) cannot apply.
    #[error("{0}")]
    Unsupported(String),
    #[error("no cgroup hierarchy found under {0}")]
    NoHierarchy(PathBuf),
    /// A bounded wait ran out (freezing, emptying a cgroup on teardown).
    #[error("{0}")]
    Timeout(String),
    /// systemd (the `--systemd-cgroup` driver) refused or failed a request,
    /// or could not be reached.
    #[error("{0}")]
    Systemd(String),
}

/// "ENOENT: No such file or directory" rather than "... (os error 2)":
/// the errno's name is what one searches for.
fn errno(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).to_string(),
        None => err.to_string(),
    }
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The errno behind the error, if one is.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { err, .. } | Error::Write { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

const MOUNTINFO: &str = "/proc/self/mountinfo";

fn hierarchies() -> Result<mountinfo::Hierarchies> {
    let text = fs::read(std::path::Path::new(MOUNTINFO))?;
    mountinfo::select(&mountinfo::parse(&text))
        .ok_or_else(|| Error::NoHierarchy(PathBuf::from("/sys/fs/cgroup")))
}

/// Reads the host's mounts and tells which layout berth is on.
pub fn detect_layout() -> Result<Layout> {
    Ok(hierarchies()?.layout)
}

/// The state of a cgroup's freezer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    Thawed,
    /// Frozen, or asked to freeze (a freeze that has not completed yet is
    /// reported as frozen: the container is on its way to `paused`).
    Frozen,
}

/// How long teardown waits for a killed cgroup to empty, and freeze/thaw for
/// the kernel to report the new state. Generous: a loaded host (or an
/// emulated guest) can take seconds.
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where berth puts relative `cgroupsPath`s and containers without one.
pub const DEFAULT_PARENT: &str = "/berth";

/// Turns `linux.cgroupsPath` into the absolute cgroup path berth uses below
/// every hierarchy root.
pub fn resolve_path(cgroups_path: Option<&str>, id: &str) -> Result<String> {
    const FIELD: &str = "linux.cgroupsPath";
    let raw = match cgroups_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
                return Err(Error::invalid(
                    "container id",
                    format!("{id:?} cannot name a cgroup"),
                ));
            }
            format!("{DEFAULT_PARENT}/{id}")
        }
    };
    if raw.contains('\0') {
        return Err(Error::invalid(FIELD, "contains a NUL byte"));
    }
    let mut parts: Vec<&str> = Vec::new();
    if !raw.starts_with('/') {
        parts.push(&DEFAULT_PARENT[1..]);
    }
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            // Refused rather than resolved: a path climbing out of where it
            // claims to be is a configuration error or an attack.
            ".." => {
                return Err(Error::invalid(
                    FIELD,
                    format!("{raw:?} must not contain \"..\""),
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid(
            FIELD,
            format!("{raw:?} names the root cgroup; a container needs a cgroup of its own"),
        ));
    }
    // The kernel's limits on a path name and its components.
    if parts.iter().any(|p| p.len() > 255) || raw.len() > 3072 {
        return Err(Error::invalid(
            FIELD,
            "too long (at most 255 bytes a component, 3072 in all)",
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Sends `sig` to each pid; one that already exited is not an error.
pub(crate) fn signal_each<'a>(
    pids: impl IntoIterator<Item = &'a i32>,
    sig: nix::sys::signal::Signal,
) {
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
    }
}

/// A sub-cgroup of a container's cgroup for `exec --cgroup`: `path`
/// relative to the container's cgroup, in the hierarchies of `controllers`
/// (every hierarchy without a more specific entry when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroup {
    pub controllers: Vec<String>,
    pub path: String,
}

impl std::str::FromStr for SubCgroup {
    type Err = String;
    /// runc's form: `path` or `controller[,controller]:path`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.split_once(':') {
            Some((c, p)) => SubCgroup {
                controllers: c
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
                path: p.to_string(),
            },
            None => SubCgroup {
                controllers: Vec::new(),
                path: s.to_string(),
            },
        })
    }
}

/// A container's cgroup, in whichever hierarchy the host has.
///
/// Serialisable so that `berth create` can hand it to later commands
/// (`delete`, `pause`, `update`) through the container's state file; it
/// remembers which directories berth created, so that teardown never
/// removes a cgroup someone else owns. Store it *after* [`Manager::create`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Manager {
    V1(v1::Manager),
    V2(v2::Manager),
    /// `--systemd-cgroup`: a systemd scope, worked on through the cgroupfs
    /// manager it carries where systemd has no say.
    Systemd(Box<systemd::Manager>),
}

macro_rules! dispatch {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            Manager::V1($m) => $e,
            Manager::V2($m) => $e,
            Manager::Systemd(s) => {
                let $m = &*s.fs;
                $e
            }
        }
    };
}

impl Manager {
    /// `cgroups_path` is `linux.cgroupsPath` (None/empty: `"/berth/<id>"`);
    /// absolute paths are used as they are below each hierarchy root,
    /// relative ones are placed under "/berth/". `systemd` selects the
    /// systemd driver (`--systemd-cgroup`), where the path is
    /// "slice:prefix:name". Reads the mount table; touches nothing.
    pub fn new(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Manager> {
        if systemd {
            return Ok(Manager::Systemd(Box::new(systemd::Manager::new(
                cgroups_path,
                id,
            )?)));
        }
        Manager::cgroupfs(resolve_path(cgroups_path, id)?)
    }

    /// The cgroupfs manager of an absolute cgroup path.
    pub(crate) fn cgroupfs(path: String) -> Result<Manager> {
        let h = hierarchies()?;
        Ok(match h.layout {
            Layout::Unified => Manager::V2(v2::Manager::new(path, h.v2.expect("unified has v2"))),
            Layout::Hybrid | Layout::Legacy => Manager::V1(v1::Manager::new(path, h.v1, h.v2)),
        })
    }

    /// Counts the cgroup's own directories as berth's to empty and remove
    /// at teardown, whoever makes them (systemd, for a scope).
    pub(crate) fn own_leaves(&mut self, keep: &dyn Fn(&std::path::Path) -> bool) {
        match self {
            Manager::V1(m) => m.own_leaves(keep),
            Manager::V2(m) => m.own_leaves(keep),
            Manager::Systemd(s) => s.fs.own_leaves(keep),
        }
    }

    /// Static checks of `resources` for this layout, before anything is
    /// created.
    pub fn validate(&self, resources: &LinuxResources) -> Result<()> {
        resources::validate_common(resources)?;
        dispatch!(self, m => m.validate(resources))
    }

    /// Makes the cgroup in every hierarchy (v2: enabling the controllers in
    /// the parents' `cgroup.subtree_control`), remembering which directories
    /// it made. A cgroup that already exists is joined.
    /// The systemd driver makes nothing here: systemd creates the scope
    /// when [`Manager::enter`] starts it with the init's pid.
    pub fn create(&mut self) -> Result<()> {
        match self {
            Manager::V1(m) => m.create(),
            Manager::V2(m) => m.create(),
            Manager::Systemd(_) => Ok(()),
        }
    }

    /// Moves `pid` (a whole process) into the cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        dispatch!(self, m => m.add_process(pid))
    }

    /// Where `exec --cgroup` puts a process: for each hierarchy, the
    /// container's cgroup, or the existing sub-cgroup a [`SubCgroup`] names
    /// for it (runc's `[controller[,controller]:]path`). A sub-cgroup must
    /// exist; a controller list is refused on cgroup v2, which has one
    /// hierarchy.
    pub fn exec_dirs(&self, subs: &[SubCgroup]) -> Result<Vec<PathBuf>> {
        const FIELD: &str = "exec --cgroup";
        for s in subs {
            let p = std::path::Path::new(&s.path);
            if s.path.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(Error::invalid(
                    FIELD,
                    format!(
                        "{:?} must be a relative path below the container's cgroup",
                        s.path
                    ),
                ));
            }
        }
        let pick = |controllers: &[String]| -> Option<&SubCgroup> {
            subs.iter()
                .find(|s| s.controllers.iter().any(|c| controllers.contains(c)))
                .or_else(|| subs.iter().find(|s| s.controllers.is_empty()))
        };
        let inner = match self {
            Manager::Systemd(s) => &*s.fs,
            m => m,
        };
        let dirs = match inner {
            Manager::V2(m) => {
                if subs.iter().any(|s| !s.controllers.is_empty()) {
                    return Err(Error::invalid(
                        FIELD,
                        "a controller list needs cgroup v1 (this host has one unified hierarchy)",
                    ));
                }
                match subs.first() {
                    Some(s) => vec![m.dir().join(&s.path)],
                    None => vec![m.dir()],
                }
            }
            Manager::V1(m) => {
                let mut dirs = Vec::new();
                for h in m.hierarchies() {
                    let base = h.mount.join(m.path().trim_start_matches('/'));
                    dirs.push(match pick(&h.controllers) {
                        Some(s) => base.join(&s.path),
                        None => base,
                    });
                }
                dirs
            }
            Manager::Systemd(_) => unreachable!("the systemd driver wraps a cgroupfs manager"),
        };
        for d in &dirs {
            if !d.is_dir() {
                return Err(Error::invalid(
                    FIELD,
                    format!("sub-cgroup {} does not exist", d.display()),
                ));
            }
        }
        Ok(dirs)
    }

    /// Moves `pid` into the directories [`Manager::exec_dirs`] chose.
    pub fn add_process_to(&self, pid: i32, dirs: &[PathBuf]) -> Result<()> {
        for d in dirs {
            fs::write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        // Hybrid: the container's own cgroup2 directory too, best effort,
        // as for any process of the container.
        let inner = match self {
            Manager::Systemd(s) => &*s.fs,
            m => m,
        };
        if let Manager::V1(m) = inner {
            if let Some(u) = m.unified_dir() {
                let _ = fs::write(&u.join("cgroup.procs"), &pid.to_string());
            }
        }
        Ok(())
    }

    /// Puts a new container's init, `pid`, into the cgroup and applies
    /// `resources` ([`Manager::add_process`] then [`Manager::apply`]; with
    /// the systemd driver, starting the scope).
    pub fn enter(&mut self, pid: i32, resources: &LinuxResources) -> Result<()> {
        self.validate(resources)?;
        match self {
            Manager::Systemd(s) => s.start(pid, resources),
            m => {
                m.add_process(pid)?;
                m.apply(resources)
            }
        }
    }

    /// Writes `resources`; also what `berth update` calls.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.validate(resources)?;
        match self {
            Manager::V1(m) => m.apply(resources),
            Manager::V2(m) => m.apply(resources),
            Manager::Systemd(s) => s.apply(resources),
        }
    }

    /// Freezes the cgroup and waits (bounded) until the kernel says it is.
    pub fn freeze(&self) -> Result<()> {
        dispatch!(self, m => m.freeze())
    }

    /// Thaws the cgroup and waits (bounded) until the kernel says it is.
    pub fn thaw(&self) -> Result<()> {
        dispatch!(self, m => m.thaw())
    }

    pub fn freezer_state(&self) -> Result<FreezerState> {
        dispatch!(self, m => m.freezer_state())
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>> {
        dispatch!(self, m => m.pids())
    }

    /// Freezes, sends `signal` to every process, thaws (runc's
    /// `kill --all`), so that nothing forks away from the signal. Without a
    /// freezer the processes are signalled as they are; a frozen (paused)
    /// cgroup is left frozen.
    pub fn signal_all(&self, signal: i32) -> Result<()> {
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| Error::invalid("signal", format!("{signal} is not a signal")))?;
        // A paused container stays paused: the signals are delivered when
        // it is resumed.
        let was_frozen = matches!(self.freezer_state(), Ok(FreezerState::Frozen));
        let frozen = !was_frozen && self.freeze().is_ok();
        let res = self.pids().map(|pids| signal_each(&pids, sig));
        if frozen {
            self.thaw()?;
        }
        res
    }

    /// Kills what remains (v2: `cgroup.kill`; v1: freeze, SIGKILL, thaw;
    /// a paused cgroup included), waits until the cgroup is empty, and
    /// removes the directories berth created (nested cgroups the container
    /// made first). A cgroup berth joined is neither emptied nor removed.
    /// Idempotent.
    pub fn destroy(&self) -> Result<()> {
        match self {
            Manager::V1(m) => m.destroy(),
            Manager::V2(m) => m.destroy(),
            Manager::Systemd(s) => s.destroy(),
        }
    }

    /// Removes the directories [`Manager::create`] made that are empty,
    /// killing nothing.
    pub(crate) fn remove_unused(&self) -> Result<()> {
        v1::remove_created(self.created(), &[])
    }

    /// Refuses a cgroup a new container must not be put into: one that is
    /// frozen (itself or through an ancestor: its init would never run, and
    /// `create` would wait for it for ever) or that already holds processes
    /// (runc: "container's cgroup is not empty"). Called once the cgroup
    /// exists; a cgroup not made yet (a systemd scope) passes.
    pub fn check_usable(&self) -> Result<()> {
        const FIELD: &str = "linux.cgroupsPath";
        // systemd makes the scope when the init is placed in it, and
        // refuses a unit name already taken with words of its own.
        if let Manager::Systemd(_) = self {
            return Ok(());
        }
        let frozen = match self {
            Manager::Systemd(_) => unreachable!("returned above"),
            Manager::V1(m) => matches!(m.freezer_state(), Ok(FreezerState::Frozen)),
            Manager::V2(m) => std::fs::read_to_string(m.dir().join("cgroup.events"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "frozen 1")),
        };
        if frozen {
            return Err(Error::invalid(
                FIELD,
                format!(
                    "cgroup {} is frozen: a container placed in it could never run (thaw it first)",
                    self.path()
                ),
            ));
        }
        // Every hierarchy, not just the one `pids` reads: a process put
        // into one controller's cgroup alone counts too.
        let mut pids = Vec::new();
        for d in self.dirs() {
            let _ = fs::procs_recursive(&d, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        if !pids.is_empty() {
            return Err(Error::invalid(
                FIELD,
                format!(
                    "container's cgroup is not empty: {} process(es) already in {}",
                    pids.len(),
                    self.path()
                ),
            ));
        }
        Ok(())
    }

    /// For a container whose `create` died before recording it (the
    /// recovery path of `delete --force`): counts the cgroup's own
    /// directories that exist as berth's, so that [`Manager::destroy`]
    /// kills what is left in them and removes them.
    pub fn reclaim(&mut self) {
        if let Manager::Systemd(s) = self {
            s.started = true;
            s.ino = None;
        }
        self.own_leaves(&|d| d.is_dir());
    }

    /// Usage counters, shaped like the `data` of runc's `events --stats`.
    pub fn stats(&self) -> Result<Stats> {
        dispatch!(self, m => m.stats())
    }

    /// The cgroup path, e.g. "/berth/abc".
    pub fn path(&self) -> &str {
        dispatch!(self, m => m.path())
    }

    pub fn layout(&self) -> Layout {
        dispatch!(self, m => m.layout())
    }

    /// The directories of this cgroup, one per hierarchy (for diagnostics
    /// and for the runtime's own checks).
    pub fn dirs(&self) -> Vec<PathBuf> {
        dispatch!(self, m => m.dirs())
    }

    /// On a unified (cgroup v2) host, the container's cgroup directory: a
    /// new process can be born in it (clone3 with CLONE_INTO_CGROUP).
    pub fn unified_dir(&self) -> Option<PathBuf> {
        match self {
            Manager::V2(m) => Some(m.dir()),
            Manager::V1(_) => None,
            // Before the scope is started its directory does not exist.
            Manager::Systemd(s) => s.started.then(|| s.fs.unified_dir()).flatten(),
        }
    }

    /// The directories [`Manager::create`] made (parents first).
    pub fn created(&self) -> &[PathBuf] {
        dispatch!(self, m => m.created())
    }

    /// Watches for OOM kills in the cgroup.
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        dispatch!(self, m => m.oom_watcher())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_resolution() {
        assert_eq!(resolve_path(None, "abc").unwrap(), "/berth/abc");
        assert_eq!(resolve_path(Some(""), "abc").unwrap(), "/berth/abc");
        assert_eq!(resolve_path(Some("/a/b"), "x").unwrap(), "/a/b");
        assert_eq!(resolve_path(Some("//a/./b/"), "x").unwrap(), "/a/b");
        assert_eq!(resolve_path(Some("pod/c1"), "x").unwrap(), "/berth/pod/c1");
        assert_eq!(
            resolve_path(Some("k8s.slice:cri:abc"), "x").unwrap(),
            "/berth/k8s.slice:cri:abc"
        );
        for bad in ["/a/../b", "..", "a/..", "/", "//", "/a\0b"] {
            let e = resolve_path(Some(bad), "x").unwrap_err();
            assert!(e.to_string().starts_with("linux.cgroupsPath"), "{bad}: {e}");
        }
        assert!(resolve_path(None, "a/b").is_err());
        assert!(resolve_path(None, "..").is_err());
    }

    #[test]
    fn systemd_driver_is_refused_clearly_without_systemd() {
        if std::path::Path::new("/run/systemd/system").is_dir() {
            return; // a systemd host: the driver is there to be used
        }
        let e = Manager::new(Some("system.slice:berth:x"), "x", true).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)));
        assert!(e.to_string().contains("--systemd-cgroup"), "{e}");
    }

    #[test]
    fn error_messages_name_errno() {
        let e = Error::Write {
            path: "/sys/fs/cgroup/x/pids.max".into(),
            value: "12".into(),
            err: std::io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "cgroup /sys/fs/cgroup/x/pids.max: writing \"12\": EINVAL: Invalid argument"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
