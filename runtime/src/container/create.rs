//! `create`: a new container from a bundle, its init waiting for `start`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec,
};

use super::*;
use crate::channel::Msg;
use crate::error::{Context, Error, Result};
use crate::init::{Bootstrap, Mode};
use crate::state::{self, Saved, Status, Store};
use crate::{hooks, spec, sys, util};

/// Everything `create` has made so far, undone on failure so a failed create
/// leaves no state directory, cgroup or process behind.
struct Undo<'a> {
    store: &'a Store,
    id: String,
    dir_made: bool,
    cgroup: Option<berth_cgroups::Manager>,
    /// pidfds, not pids: a process that was already reaped must never be
    /// confused with whatever reuses its pid.
    procs: Vec<(i32, OwnedFd)>,
    armed: bool,
}

impl Undo<'_> {
    fn track(&mut self, pid: i32) {
        if let Ok(fd) = sys::pidfd_open(pid) {
            self.procs.push((pid, fd));
        }
    }

    /// Reaps our child `pid` and forgets it.
    fn reaped(&mut self, pid: i32) {
        reap(pid);
        self.procs.retain(|(p, _)| *p != pid);
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for (pid, fd) in &self.procs {
            if sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL).is_ok() {
                let _ = sys::pidfd_wait_exit(fd.as_fd(), 5000);
                // Ours to reap when it is our child (CLONE_PARENT).
                // SAFETY: plain syscall.
                unsafe { libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        if self.dir_made {
            let _ = self.store.remove(&self.id);
        }
    }
}

impl Runtime {
    pub fn create(&self, o: &CreateOptions) -> Result<Created> {
        self.create_inner(o, None, None)
    }

    /// `create` with the init's stdio and terminal given by the caller.
    pub fn create_with_io(&self, o: &CreateOptions, io: ProcessIo) -> Result<Created> {
        self.create_inner(o, io.console, io.stdio)
    }

    /// `console_override`: for `run` with a terminal and no console socket,
    /// berth passes one end of its own socket pair.
    pub(super) fn create_inner(
        &self,
        o: &CreateOptions,
        console_override: Option<UnixStream>,
        stdio: Option<[OwnedFd; 3]>,
    ) -> Result<Created> {
        let mut phases = Phases::new("create");
        state::validate_id(&o.id)?;
        let bundle = std::fs::canonicalize(&o.bundle)
            .map_err(|e| Error::Config(format!("bundle {}: {e}", o.bundle.display())))?;
        let (spec, extras) = spec::load_ext(&bundle)?;
        let rootfs = spec::validate_for_create_ext(&spec, &extras, &bundle)?;
        let mut process = spec.process().clone().expect("validated");
        if o.listen_fds > 0 {
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={}", o.listen_fds));
            env.push("LISTEN_PID=1".into());
            process.set_env(Some(env));
        }
        let pass_fds = o
            .listen_fds
            .checked_add(o.preserve_fds)
            .filter(|n| *n < 65536)
            .ok_or_else(|| Error::Config("--preserve-fds: too many fds".into()))?;
        let terminal = process.terminal() == Some(true);
        if terminal && o.console_socket.is_none() && console_override.is_none() {
            return Err(Error::Config(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        let linux = spec.linux().as_ref().expect("validated");
        let cg_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let mut cgroup =
            berth_cgroups::Manager::new(cg_path.as_deref(), &o.id, self.systemd_cgroup)?;
        let resources = cgroup_resources(&spec);
        cgroup.validate(&resources)?;
        // Connect before anything is created: a bad socket path is bad input.
        let console = match (&console_override, &o.console_socket) {
            (Some(s), _) => Some(s.try_clone().map_err(|e| Error::sys("console socket", e))?),
            (None, Some(p)) if terminal => Some(
                UnixStream::connect(p)
                    .map_err(|e| Error::Config(format!("--console-socket {}: {e}", p.display())))?,
            ),
            _ => None,
        };

        phases.mark("validate");
        let lock = self.store.create(&o.id)?;
        let mut undo = Undo {
            store: &self.store,
            id: o.id.clone(),
            dir_made: true,
            cgroup: None,
            procs: Vec::new(),
            armed: true,
        };
        // Should this very process be killed from here on, `delete --force`
        // finds the cgroup through this record.
        self.store.save_pending(
            &o.id,
            &state::Pending {
                cgroup: cgroup.clone(),
            },
        )?;
        // Rootless where the user may make no cgroup (v1; v2 without a
        // delegated subtree): no cgroup at all, as with runc, and then no
        // limit can be kept either.
        let mut cgroup = match cgroup.create() {
            Ok(()) => Some(cgroup),
            Err(e) if crate::rootless::is_rootless() && crate::rootless::cgroup_refused(&e) => {
                if let Some(field) = crate::rootless::limits_asked(&spec) {
                    return Err(Error::Config(format!(
                        "{field}: rootless berth has no cgroup to set limits in on this host ({e})"
                    )));
                }
                crate::logging::debug(&format!("rootless: running without a cgroup ({e})"));
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(cg) = &cgroup {
            undo.cgroup = Some(cg.clone());
            cg.check_usable()?;
        }
        phases.mark("state-dir+cgroup");

        let listener = start_socket(&self.store.dir(&o.id))?;

        let mut join = Vec::new();
        let mut new = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            match ns.path() {
                Some(p) => join.push((ns.typ(), p.clone())),
                None => new.push(ns.typ()),
            }
        }
        // In a new user namespace the container's root may not reach a bind
        // source on the host: it is cloned here, while berth is still the
        // host's root, and attached from the init (runc does the same).
        let mount_sources = crate::rootfs::clone_bind_sources(
            &spec,
            &extras,
            &bundle,
            new.contains(&LinuxNamespaceType::User),
        )?;
        let boot = Bootstrap {
            mode: Mode::Create,
            id: o.id.clone(),
            spec: spec.clone(),
            process: process.clone(),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            join,
            new: new.clone(),
            start_fd: None,
            mount_fds: Vec::new(),
            console_fd: None,
            preserve_fds: pass_fds,
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            extras: extras.clone(),
        };
        let (mut ch, child) = spawn_init(
            boot,
            Handed {
                start: Some(listener.as_fd()),
                console: console.as_ref().map(|c| c.as_fd()),
                stdio: stdio.as_ref(),
                mount_sources: &mount_sources,
            },
            pass_fds,
            cgroup.as_ref().and_then(|c| c.unified_dir()).as_deref(),
            |pid| {
                undo.track(pid);
                let Some(cgroup) = cgroup.as_mut() else {
                    return Ok(());
                };
                let entered = cgroup.enter(pid, &resources);
                // What entering made (a systemd scope) is undone too, even
                // when it failed half-way.
                undo.cgroup = Some(cgroup.clone());
                Ok(entered?)
            },
        )?;
        drop(listener);
        drop(console);
        phases.mark("spawn-init");

        let mut init_pid = child;
        loop {
            let msg = ch
                .expect("the container to be set up")
                .map_err(|e| why_init_died(e, init_pid, &spec))?;
            match msg {
                Msg::UsernsReady => {
                    crate::rootless::write_id_maps(child, &spec)?;
                    ch.send(&Msg::Continue)?;
                }
                Msg::Pid { pid } => {
                    init_pid = pid;
                    if pid != child {
                        undo.track(pid);
                        undo.reaped(child);
                    }
                    // The init holds still until its pid is known here, so
                    // its later messages cannot overtake this one.
                    ch.send(&Msg::Continue)?;
                }
                Msg::RunHooks => {
                    let st = hook_state(&o.id, Status::Creating, Some(init_pid), &bundle, &spec);
                    hooks::run(spec.hooks().as_ref(), hooks::Kind::Prestart, &st)?;
                    hooks::run(spec.hooks().as_ref(), hooks::Kind::CreateRuntime, &st)?;
                    ch.send(&Msg::HooksDone {
                        state: String::from_utf8_lossy(&hook_state(
                            &o.id,
                            Status::Created,
                            Some(init_pid),
                            &bundle,
                            &spec,
                        ))
                        .into_owned(),
                    })?;
                }
                Msg::Ready => {
                    phases.mark("init-setup");
                    break;
                }
                other => {
                    return Err(Error::Init(format!(
                        "unexpected message from init: {other:?}"
                    )))
                }
            }
        }
        let (pid_start, _) =
            sys::proc_start_time(init_pid).ctx(|| format!("reading /proc/{init_pid}/stat"))?;
        let saved = Saved {
            id: o.id.clone(),
            pid: init_pid,
            pid_start,
            bundle,
            rootfs,
            created: util::rfc3339_now(),
            owner_uid: self.store.owner_of(&o.id),
            cgroup,
            config: spec,
            extras,
        };
        self.store.save(&saved)?;
        if let Some(p) = &o.pid_file {
            write_pid_file(p, init_pid)?;
        }
        // Recorded: only now may the init outlive us (it exits on its own
        // if we die before this).
        ch.send(&Msg::Continue)?;
        phases.mark("save-state");
        undo.armed = false;
        drop(lock);
        phases.report();
        Ok(Created {
            pid: init_pid,
            own_pid_ns: new.contains(&LinuxNamespaceType::Pid),
        })
    }
}

/// When the init vanished without a word: killed by a signal (the OOM
/// killer, under a memory limit too low to start it) is worth saying.
fn why_init_died(e: Error, pid: i32, spec: &Spec) -> Error {
    if !matches!(e, Error::Init(_) | Error::Sys { .. }) {
        return e;
    }
    let mut status = 0;
    // SAFETY: waitpid on our own child (CLONE_PARENT), without blocking.
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid
        || !libc::WIFSIGNALED(status)
    {
        return e;
    }
    let sig = libc::WTERMSIG(status);
    let limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0);
    match limit {
        Some(l) if sig == libc::SIGKILL => Error::Config(format!(
            "linux.resources.memory.limit: the container's init was killed (SIGKILL, the OOM \
             killer) while being set up: {l} bytes is too little to start it"
        )),
        _ => Error::Init(format!(
            "the container's init was killed by signal {sig} while being set up"
        )),
    }
}

/// The start socket, listening in the container's state directory, that
/// the init waits on for `start`. Bound through a /proc/self/fd path of
/// the directory so that a state root of any length fits sun_path.
fn start_socket(dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    let dirfd =
        sys::open(dir, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| Error::io(dir, e))?;
    let via = PathBuf::from(sys::proc_fd_path(dirfd.as_raw_fd())).join(state::START_SOCK);
    let l = std::os::unix::net::UnixListener::bind(&via)
        .map_err(|e| Error::io(dir.join(state::START_SOCK), e))?;
    // Only the owner may start the container.
    std::fs::set_permissions(&via, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::io(dir.join(state::START_SOCK), e))?;
    Ok(l)
}

/// Where the time of a command goes, logged at debug level (`--debug`):
/// the per-phase breakdown the benchmarks report, with the process's peak
/// RSS (VmHWM) at the end of each phase.
struct Phases {
    what: &'static str,
    last: std::time::Instant,
    marks: Vec<(&'static str, std::time::Duration, u64)>,
}

/// "kB" fields of /proc/self/status in KiB (one read), 0 where unknown.
fn status_kib<const N: usize>(fields: [&str; N]) -> [u64; N] {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    fields.map(|field| {
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    })
}

/// VmHWM (peak RSS) of this process in KiB, 0 if unknown.
fn peak_rss_kib() -> u64 {
    status_kib(["VmHWM"])[0]
}

impl Phases {
    fn new(what: &'static str) -> Self {
        Phases {
            what,
            last: std::time::Instant::now(),
            marks: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        fault_point(phase);
        let now = std::time::Instant::now();
        let hwm = if crate::logging::debug_enabled() {
            peak_rss_kib()
        } else {
            0
        };
        self.marks.push((phase, now - self.last, hwm));
        self.last = std::time::Instant::now();
    }

    fn report(&self) {
        if crate::logging::debug_enabled() {
            let parts: Vec<String> = self
                .marks
                .iter()
                .map(|(p, d, hwm)| format!("{p}={:.3}ms/{hwm}KiB", d.as_secs_f64() * 1000.0))
                .collect();
            // Which kind of memory the peak is made of: pages of berth's
            // own binary (file) or heap and stacks (anon).
            let [file, anon] = status_kib(["RssFile", "RssAnon"]);
            crate::logging::debug(&format!(
                "{} phases: {} (now: file {file}KiB anon {anon}KiB)",
                self.what,
                parts.join(" "),
            ));
        }
    }
}

/// (path, type, major, minor, access); `None` numbers are wildcards.
type DefaultDevice = (
    Option<&'static str>,
    LinuxDeviceType,
    Option<i64>,
    Option<i64>,
    &'static str,
);

/// The devices every container may use whatever its config says: runc
/// 1.1's `specconv.AllowedDevices`, in its order. Those with a path are
/// dropped when `linux.devices` lists a device at that path (runc's
/// "the spec one takes priority"): such a device is then governed by
/// `linux.resources.devices` alone.
const DEFAULT_ALLOWED_DEVICES: [DefaultDevice; 11] = {
    use LinuxDeviceType::{B, C};
    [
        // mknod of any device; using one takes a rule of its own
        (None, C, None, None, "m"),
        (None, B, None, None, "m"),
        (Some("/dev/null"), C, Some(1), Some(3), "rwm"),
        (Some("/dev/random"), C, Some(1), Some(8), "rwm"),
        (Some("/dev/full"), C, Some(1), Some(7), "rwm"),
        (Some("/dev/tty"), C, Some(5), Some(0), "rwm"),
        (Some("/dev/zero"), C, Some(1), Some(5), "rwm"),
        (Some("/dev/urandom"), C, Some(1), Some(9), "rwm"),
        // the container's ptys (/dev/console is one of them, bound)
        (None, C, Some(136), None, "rwm"),
        // /dev/ptmx
        (None, C, Some(5), Some(2), "rwm"),
        // tuntap
        (None, C, Some(10), Some(200), "rwm"),
    ]
};

/// The spec's resources with runc's default device rules appended: the
/// device cgroup says exactly what `linux.resources.devices` says, then
/// [`DEFAULT_ALLOWED_DEVICES`]. A device listed in `linux.devices` is made
/// in the container but gets no rule of its own: like runc, it stays
/// denied unless `linux.resources.devices` allows it.
pub fn cgroup_resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut r = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules: Vec<LinuxDeviceCgroup> = r.devices().clone().unwrap_or_default();
    let listed: Vec<&Path> = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().as_path())
        .collect();
    for (path, typ, major, minor, access) in DEFAULT_ALLOWED_DEVICES {
        if path.is_some_and(|p| listed.contains(&Path::new(p))) {
            continue;
        }
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        rules.push(d);
    }
    r.set_devices(Some(rules));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(config: serde_json::Value) -> Vec<String> {
        let spec: Spec = serde_json::from_value(config).unwrap();
        cgroup_resources(&spec)
            .devices()
            .clone()
            .unwrap()
            .iter()
            .map(|d| {
                let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
                format!(
                    "{} {} {}:{} {}",
                    if d.allow() { "allow" } else { "deny" },
                    d.typ().map_or("a".into(), |t| t.as_str().to_string()),
                    n(d.major()),
                    n(d.minor()),
                    d.access().clone().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn device_rules_are_the_specs_then_runcs_defaults() {
        let r = rules(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
            }
        }));
        assert_eq!(
            r,
            [
                "deny a *:* rwm",
                "allow c *:* m",
                "allow b *:* m",
                "allow c 1:3 rwm",
                "allow c 1:8 rwm",
                "allow c 1:7 rwm",
                "allow c 5:0 rwm",
                "allow c 1:5 rwm",
                "allow c 1:9 rwm",
                "allow c 136:* rwm",
                "allow c 5:2 rwm",
                "allow c 10:200 rwm",
            ]
        );
    }

    #[test]
    fn a_listed_device_at_a_default_path_loses_its_default_rule() {
        let r = rules(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {
                "devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
            }
        }));
        assert!(!r.iter().any(|l| l.contains(" 1:3 ")), "{r:?}");
        assert_eq!(r.len(), 10, "{r:?}");
    }
}
