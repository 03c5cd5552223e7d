//! The container lifecycle as a library: what the `berth` CLI and the shim
//! both call.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec,
};

use crate::channel::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::init::{Bootstrap, Mode, SYNC_FD_ENV};
use crate::state::{self, OciState, Saved, StateOutput, Status, Store};
use crate::{hooks, selfexe, spec, sys, util};

pub const DEFAULT_ROOT: &str = "/run/berth";

pub struct Runtime {
    pub store: Store,
    pub systemd_cgroup: bool,
}

/// What `exec` runs and how.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: oci_spec::runtime::Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Socket-activation fds (LISTEN_FDS) handed to berth: they come first,
    /// at 3.., before the preserved ones, and the program gets LISTEN_FDS
    /// and LISTEN_PID=1 in its environment, as with runc.
    pub listen_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// Where a process's stdio goes when berth is used as a library (the
/// shim): its own fds for 0, 1 and 2 instead of the caller's, and for a
/// terminal, one end of a socket pair the pty master is sent over.
#[derive(Debug, Default)]
pub struct ProcessIo {
    pub stdio: Option<[OwnedFd; 3]>,
    pub console: Option<UnixStream>,
}

/// A created container whose init waits for `start`.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    /// The container has a pid namespace of its own: its other processes
    /// die with its init.
    pub own_pid_ns: bool,
}

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
    pub fn new(root: impl Into<PathBuf>, systemd_cgroup: bool) -> Self {
        Runtime {
            store: Store::new(root),
            systemd_cgroup,
        }
    }

    pub fn create(&self, o: &CreateOptions) -> Result<Created> {
        self.create_inner(o, None, None)
    }

    /// `create` with the init's stdio and terminal given by the caller.
    pub fn create_with_io(&self, o: &CreateOptions, io: ProcessIo) -> Result<Created> {
        self.create_inner(o, io.console, io.stdio)
    }

    /// `console_override`: for `run` with a terminal and no console socket,
    /// berth passes one end of its own socket pair.
    fn create_inner(
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
        let rootfs = spec::validate_for_create(&spec, &bundle)?;
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
        cgroup.create()?;
        undo.cgroup = Some(cgroup.clone());
        phases.mark("state-dir+cgroup");

        let dir = self.store.dir(&o.id);
        let fifo_path = dir.join(state::EXEC_FIFO);
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| Error::sys(format!("mkfifo {}", fifo_path.display()), e.into()))?;
        let fifo = sys::open(&fifo_path, libc::O_RDWR, 0).map_err(|e| Error::io(&fifo_path, e))?;

        let mut join = Vec::new();
        let mut new = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            match ns.path() {
                Some(p) => join.push((ns.typ(), p.clone())),
                None => new.push(ns.typ()),
            }
        }
        let boot = Bootstrap {
            mode: Mode::Create,
            id: o.id.clone(),
            spec: spec.clone(),
            process: process.clone(),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            join,
            new: new.clone(),
            fifo_fd: None,
            console_fd: None,
            preserve_fds: pass_fds,
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            extras,
        };
        let (mut ch, child) = spawn_init(
            boot,
            Some(fifo.as_fd()),
            console.as_ref().map(|c| c.as_fd()),
            stdio.as_ref(),
            pass_fds,
            cgroup.unified_dir().as_deref(),
            |pid| {
                undo.track(pid);
                let entered = cgroup.enter(pid, &resources);
                // What entering made (a systemd scope) is undone too, even
                // when it failed half-way.
                undo.cgroup = Some(cgroup.clone());
                Ok(entered?)
            },
        )?;
        drop(fifo);
        drop(console);
        phases.mark("spawn-init");

        let mut init_pid = child;
        loop {
            match ch.expect("the container to be set up")? {
                Msg::UsernsReady => {
                    write_id_maps(child, &spec)?;
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
                Msg::SeccompListener => {
                    forward_seccomp_listener(&mut ch, &spec, &o.id, init_pid, &bundle)?
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
            cgroup: Some(cgroup),
            config: spec,
            extras,
        };
        self.store.save(&saved)?;
        if let Some(p) = &o.pid_file {
            write_pid_file(p, init_pid)?;
        }
        phases.mark("save-state");
        undo.armed = false;
        drop(lock);
        phases.report();
        Ok(Created {
            pid: init_pid,
            own_pid_ns: new.contains(&LinuxNamespaceType::Pid),
        })
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let saved = self.store.load(id)?;
        match self.store.status(&saved) {
            Status::Created => {}
            Status::Stopped => {
                return Err(Error::State(format!(
                    "cannot start container {id}: it has stopped"
                )))
            }
            s => {
                return Err(Error::State(format!(
                    "cannot start container {id}: it is already {s}"
                )))
            }
        }
        let fifo_path = self.store.dir(id).join(state::EXEC_FIFO);
        let fifo = sys::open(&fifo_path, libc::O_WRONLY | libc::O_NONBLOCK, 0).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENXIO) {
                Error::State(format!(
                    "cannot start container {id}: its init process has exited"
                ))
            } else {
                Error::io(&fifo_path, e)
            }
        })?;
        sys::write_all_fd(fifo.as_fd(), b"0").map_err(|e| Error::io(&fifo_path, e))?;
        drop(fifo);
        std::fs::remove_file(&fifo_path).map_err(|e| Error::io(&fifo_path, e))?;
        let st = hook_state(
            id,
            Status::Running,
            Some(saved.pid),
            &saved.bundle,
            &saved.config,
        );
        if let Err(e) = hooks::run(saved.config.hooks().as_ref(), hooks::Kind::Poststart, &st) {
            // The spec: a failing poststart hook is a warning, not a failure.
            crate::logging::warn(&e.to_string());
        }
        Ok(())
    }

    pub fn state(&self, id: &str) -> Result<StateOutput> {
        let saved = self.store.load(id)?;
        Ok(state::state_output(&self.store, &saved))
    }

    pub fn list(&self) -> Result<Vec<StateOutput>> {
        let mut out = Vec::new();
        for id in self.store.list()? {
            if let Ok(s) = self.store.load(&id) {
                out.push(state::state_output(&self.store, &s));
            }
        }
        Ok(out)
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let saved = self.store.load(id)?;
        // --all reaches what is left in the cgroup even after the init
        // exited (a container without a pid namespace of its own), as
        // runc's does.
        if all {
            if let Some(cg) = &saved.cgroup {
                return cg.signal_all(signal).map_err(Error::from);
            }
        }
        let status = self.store.status(&saved);
        if status == Status::Stopped {
            return Err(Error::State(format!(
                "cannot kill container {id}: it is not running"
            )));
        }
        match sys::pidfd_open(saved.pid) {
            Ok(fd) => sys::pidfd_send_signal(fd.as_fd(), signal)
                .ctx(|| format!("signalling container {id}")),
            // Kernels before 5.3 (and valgrind) lack pidfds: the status
            // check above compared the pid's start time, so a plain kill
            // still reaches the container's init.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                sys::kill(saved.pid, signal).ctx(|| format!("signalling container {id}"))
            }
            Err(e) => Err(e).ctx(|| format!("container {id} init {}", saved.pid)),
        }
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let _lock = match self.store.lock(id) {
            Ok(l) => l,
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let saved = match self.store.load(id) {
            Ok(s) => s,
            // A create that died half-way: only --force clears it.
            Err(Error::NotFound(_)) if force => return self.store.remove(id),
            Err(e) => return Err(e),
        };
        let status = self.store.status(&saved);
        match status {
            Status::Stopped | Status::Created => {}
            _ if force => {}
            s => {
                return Err(Error::State(format!(
                    "cannot delete container {id} that is not stopped: {s}"
                )))
            }
        }
        if status != Status::Stopped {
            if let Ok(fd) = sys::pidfd_open(saved.pid) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                if status == Status::Paused {
                    if let Some(cg) = &saved.cgroup {
                        let _ = cg.thaw();
                    }
                }
                let _ = sys::pidfd_wait_exit(fd.as_fd(), 10_000);
            }
        }
        if let Some(cg) = &saved.cgroup {
            cg.destroy()?;
        }
        let st = hook_state(id, Status::Stopped, None, &saved.bundle, &saved.config);
        if let Err(e) = hooks::run(saved.config.hooks().as_ref(), hooks::Kind::Poststop, &st) {
            crate::logging::warn(&e.to_string());
        }
        self.store.remove(id)
    }

    fn running_cgroup(
        &self,
        id: &str,
        want: &[Status],
        op: &str,
    ) -> Result<(Saved, berth_cgroups::Manager)> {
        let saved = self.store.load(id)?;
        let status = self.store.status(&saved);
        if !want.contains(&status) {
            return Err(Error::State(format!(
                "cannot {op} container {id}: it is {status}"
            )));
        }
        let cg = saved
            .cgroup
            .clone()
            .ok_or_else(|| Error::State(format!("container {id} has no cgroup")))?;
        Ok((saved, cg))
    }

    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(id, &[Status::Running], "pause")?;
        cg.freeze().map_err(Error::from)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(id, &[Status::Paused], "resume")?;
        cg.thaw().map_err(Error::from)
    }

    /// Pids (host view) of every process in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (_, cg) = self.running_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "list processes of",
        )?;
        Ok(cg.pids()?)
    }

    pub fn stats(&self, id: &str) -> Result<berth_cgroups::stats::Stats> {
        let (_, cg) = self.running_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "read stats of",
        )?;
        Ok(cg.stats()?)
    }

    pub fn oom_watcher(&self, id: &str) -> Result<berth_cgroups::OomWatcher> {
        let (_, cg) = self.running_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "watch",
        )?;
        Ok(cg.oom_watcher()?)
    }

    /// Applies new resource limits to a live container; only the fields set
    /// in `resources` change.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "update",
        )?;
        cg.validate(resources)?;
        cg.apply(resources).map_err(Error::from)
    }

    /// Runs another process in a running container: it joins every
    /// namespace and the cgroup of the container's init, and gets its
    /// seccomp profile. Returns the exit status (0 with `detach`).
    pub fn exec(&self, o: &ExecOptions) -> Result<i32> {
        self.exec_inner(o, None).map(|(_, code)| code)
    }

    /// A detached `exec` with the process's stdio and terminal given by the
    /// caller; returns its pid (host view). The process is a child of a
    /// subreaper caller, who reaps it.
    pub fn exec_with_io(&self, o: &ExecOptions, io: ProcessIo) -> Result<i32> {
        let o = ExecOptions {
            detach: true,
            console_socket: None,
            ..o.clone()
        };
        self.exec_inner(&o, Some(io)).map(|(pid, _)| pid)
    }

    fn exec_inner(&self, o: &ExecOptions, io: Option<ProcessIo>) -> Result<(i32, i32)> {
        let (stdio, console_given) = match io {
            Some(io) => (io.stdio, io.console),
            None => (None, None),
        };
        let saved = self.store.load(&o.id)?;
        let status = self.store.status(&saved);
        match status {
            Status::Running | Status::Created => {}
            Status::Paused if o.ignore_paused => {}
            s => {
                return Err(Error::State(format!(
                    "cannot exec in container {}: it is {s}",
                    o.id
                )))
            }
        }
        crate::spec::validate_process(&o.process)?;
        let terminal = o.process.terminal() == Some(true);
        if terminal && o.console_socket.is_none() && console_given.is_none() && o.detach {
            return Err(Error::Config(
                "process.terminal is true: exec --detach needs --console-socket".into(),
            ));
        }
        let spec = &saved.config;
        if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            spec::compile_seccomp(s, saved.extras)?;
        }
        let mut console_pair = None;
        let console = match &o.console_socket {
            _ if terminal && console_given.is_some() => console_given,
            Some(p) if terminal => Some(
                UnixStream::connect(p)
                    .map_err(|e| Error::Config(format!("--console-socket {}: {e}", p.display())))?,
            ),
            None if terminal => {
                let (a, b) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
                console_pair = Some(a);
                Some(b)
            }
            _ => None,
        };
        // Every namespace the container has, taken from its init, user first.
        let mut join = Vec::new();
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let name = match ns.typ() {
                LinuxNamespaceType::Mount => "mnt",
                LinuxNamespaceType::Network => "net",
                t => match t {
                    LinuxNamespaceType::Cgroup => "cgroup",
                    LinuxNamespaceType::Uts => "uts",
                    LinuxNamespaceType::Ipc => "ipc",
                    LinuxNamespaceType::User => "user",
                    LinuxNamespaceType::Pid => "pid",
                    _ => "time",
                },
            };
            join.push((
                ns.typ(),
                PathBuf::from(format!("/proc/{}/ns/{name}", saved.pid)),
            ));
        }
        let boot = Bootstrap {
            mode: Mode::Exec,
            id: o.id.clone(),
            spec: spec.clone(),
            process: o.process.clone(),
            bundle: saved.bundle.clone(),
            rootfs: saved.rootfs.clone(),
            join,
            new: Vec::new(),
            fifo_fd: None,
            console_fd: None,
            preserve_fds: o.preserve_fds,
            no_pivot: false,
            no_new_keyring: true,
            extras: saved.extras,
        };
        // SAFETY: prctl with integer args.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if !o.detach {
            block_forwarded_signals();
        }
        let cg = saved.cgroup.clone();
        let mut procs: Vec<(i32, OwnedFd)> = Vec::new();
        let (mut ch, child) = spawn_init(
            boot,
            None,
            console.as_ref().map(|c| c.as_fd()),
            stdio.as_ref(),
            o.preserve_fds,
            cg.as_ref().and_then(|c| c.unified_dir()).as_deref(),
            |pid| {
                if let Ok(fd) = sys::pidfd_open(pid) {
                    procs.push((pid, fd));
                }
                if let Some(cg) = &cg {
                    cg.add_process(pid)?;
                }
                Ok(())
            },
        )?;
        drop(console);
        let mut pid = child;
        let result = (|| -> Result<()> {
            loop {
                match ch.expect("the exec'd process to be set up")? {
                    Msg::Pid { pid: p } => {
                        pid = p;
                        if p != child {
                            if let Ok(fd) = sys::pidfd_open(p) {
                                procs.push((p, fd));
                            }
                            reap(child);
                            procs.retain(|(q, _)| *q != child);
                        }
                        ch.send(&Msg::Continue)?;
                    }
                    Msg::SeccompListener => {
                        forward_seccomp_listener(&mut ch, spec, &o.id, pid, &saved.bundle)?
                    }
                    Msg::Ready => return Ok(()),
                    other => {
                        return Err(Error::Init(format!(
                            "unexpected message from init: {other:?}"
                        )))
                    }
                }
            }
        })();
        if let Err(e) = result {
            for (p, fd) in &procs {
                if sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL).is_ok() {
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(*p, std::ptr::null_mut(), 0) };
                }
            }
            return Err(e);
        }
        if let Some(p) = &o.pid_file {
            write_pid_file(p, pid)?;
        }
        let tty = relay_console(console_pair)?;
        if o.detach {
            return Ok((pid, 0));
        }
        let code = wait_forwarding_signals(pid);
        drop(tty);
        Ok((pid, code))
    }

    /// `run`: create, start, wait, delete. Returns the exit status to exit with.
    pub fn run(&self, o: &CreateOptions, detach: bool) -> Result<i32> {
        self.run_keep(o, detach, false)
    }

    /// `run`, keeping the stopped container (runc's `--keep`) when asked.
    pub fn run_keep(&self, o: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        let bundle_spec =
            spec::load(&std::fs::canonicalize(&o.bundle).unwrap_or(o.bundle.clone())).ok();
        let terminal = bundle_spec
            .as_ref()
            .and_then(|s| s.process().as_ref())
            .and_then(|p| p.terminal())
            == Some(true);
        let mut console_pair = None;
        let override_sock = if terminal && o.console_socket.is_none() {
            if detach {
                return Err(Error::Config(
                    "process.terminal is true: run --detach needs --console-socket".into(),
                ));
            }
            let (a, b) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
            console_pair = Some(a);
            Some(b)
        } else {
            None
        };
        // SAFETY: prctl with integer args.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if !detach {
            block_forwarded_signals();
        }
        let created = self.create_inner(o, override_sock, None)?;
        let tty = relay_console(console_pair)?;
        if let Err(e) = self.start(&o.id) {
            let _ = self.delete(&o.id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = wait_forwarding_signals(created.pid);
        drop(tty);
        if !keep {
            self.delete(&o.id, true)?;
        }
        Ok(code)
    }
}

/// For `run`/`exec` with a terminal and no console socket: receives the
/// pty master on berth's own end of the socket pair and relays it.
fn relay_console(pair: Option<UnixStream>) -> Result<Option<crate::tty::Proxy>> {
    let Some(sock) = pair else { return Ok(None) };
    let (_, master) = sys::recv_fd(sock.as_fd(), 4096).ctx(|| "receiving the pty master".into())?;
    master.map(crate::tty::Proxy::start).transpose()
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

/// Starts `berth init` from the sealed memfd with the channel, the fifo and
/// the console socket inherited at numbers above the preserved fds.
/// `placed` runs once the child exists and before it is told anything: the
/// place to put it into its cgroup.
pub(crate) fn spawn_init(
    boot: Bootstrap,
    fifo: Option<std::os::fd::BorrowedFd<'_>>,
    console: Option<std::os::fd::BorrowedFd<'_>>,
    stdio: Option<&[OwnedFd; 3]>,
    preserve_fds: u32,
    cgroup: Option<&Path>,
    placed: impl FnOnce(i32) -> Result<()>,
) -> Result<(Channel, i32)> {
    let mut boot = boot;
    let (mut ch, theirs) = Channel::pair()?;
    let min = 3 + preserve_fds as RawFd;
    let sock = sys::dup_at_least(theirs.as_fd(), min).ctx(|| "dup".into())?;
    drop(theirs);
    let fifo = fifo
        .map(|f| sys::dup_at_least(f, min))
        .transpose()
        .ctx(|| "dup".into())?;
    let console = console
        .map(|f| sys::dup_at_least(f, min))
        .transpose()
        .ctx(|| "dup".into())?;
    boot.fifo_fd = fifo.as_ref().map(|f| f.as_raw_fd());
    boot.console_fd = console.as_ref().map(|f| f.as_raw_fd());
    // Fds 3..3+N pass only if berth itself inherited them: anything berth
    // opened is close-on-exec, so an internal fd that happens to sit in that
    // range (the state lock, say) never reaches the container.
    let inherit: Vec<RawFd> = [Some(&sock), fifo.as_ref(), console.as_ref()]
        .into_iter()
        .flatten()
        .map(|f: &OwnedFd| f.as_raw_fd())
        .collect();
    let pid = loop {
        let exe = selfexe::protected()?;
        let bind = match &exe {
            selfexe::Protected::ReadOnlyBind(_, c) => Some(c.clone()),
            selfexe::Protected::Memfd(_) => None,
        };
        let plan = crate::spawn::Plan {
            exe: &exe.exec_path(),
            bind: bind.as_ref(),
            env: vec![(SYNC_FD_ENV.to_string(), sock.as_raw_fd().to_string())],
            stdio: stdio.map(|s| [s[0].as_raw_fd(), s[1].as_raw_fd(), s[2].as_raw_fd()]),
            inherit: &inherit,
            cgroup,
        };
        match crate::spawn::spawn_init(&plan) {
            Ok((pid, born_in_cgroup)) => {
                if born_in_cgroup {
                    crate::logging::debug("init started in its cgroup with CLONE_INTO_CGROUP");
                }
                break pid;
            }
            // The bind could not be made in the child: fall back to the
            // sealed copy and try again.
            Err(_) if bind.is_some() => selfexe::bind_failed(),
            Err(e) => return Err(Error::sys("starting berth init", e)),
        }
    };
    drop(sock);
    drop(fifo);
    drop(console);
    if let Err(e) = placed(pid) {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(e);
    }
    if let Err(e) = ch.send(&Msg::Bootstrap(Box::new(boot))) {
        // Nobody else would ever reap it (the shim reaps only its own).
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(e);
    }
    Ok((ch, pid))
}

/// Takes the listener fd that follows a `SeccompListener` message and
/// hands it to the agent.
fn forward_seccomp_listener(
    ch: &mut Channel,
    spec: &Spec,
    id: &str,
    pid: i32,
    bundle: &Path,
) -> Result<()> {
    let (_, fd) =
        sys::recv_fd(ch.socket().as_fd(), 1).ctx(|| "receiving the seccomp listener".into())?;
    let fd = fd.ok_or_else(|| Error::Init("no seccomp listener fd received".into()))?;
    send_seccomp_listener(spec, id, pid, bundle, fd.as_fd())
}

/// Hands a seccomp notify listener to the agent at linux.seccomp.listenerPath
/// with the runtime-spec's container process state.
pub(crate) fn send_seccomp_listener(
    spec: &Spec,
    id: &str,
    pid: i32,
    bundle: &Path,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    let sc = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let Some(path) = sc.and_then(|s| s.listener_path().as_ref()) else {
        return Err(Error::Config(
            "linux.seccomp.listenerPath: needed for SCMP_ACT_NOTIFY".into(),
        ));
    };
    let state: serde_json::Value =
        serde_json::from_slice(&hook_state(id, Status::Creating, Some(pid), bundle, spec))
            .expect("valid json");
    let msg = serde_json::json!({
        "ociVersion": spec.version(),
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": sc.and_then(|s| s.listener_metadata().clone()).unwrap_or_default(),
        "state": state,
    });
    berth_seccomp::send_listener(path, fd, &serde_json::to_vec(&msg).expect("json"))?;
    Ok(())
}

/// The spec's resources with berth's default device rules appended, as
/// runc does: whatever the spec denies, the container may still create
/// device nodes (m) and use the standard devices and the ones in
/// linux.devices.
pub fn cgroup_resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut r = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules: Vec<LinuxDeviceCgroup> = r.devices().clone().unwrap_or_default();
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    use LinuxDeviceType::{B, C};
    rules.push(rule(C, None, None, "m"));
    rules.push(rule(B, None, None, "m"));
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(rule(C, Some(maj), Some(min), "rwm"));
    }
    rules.push(rule(C, Some(136), None, "rwm"));
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if matches!(
            d.typ(),
            LinuxDeviceType::C | LinuxDeviceType::B | LinuxDeviceType::U
        ) {
            let t = if d.typ() == LinuxDeviceType::B { B } else { C };
            rules.push(rule(t, Some(d.major()), Some(d.minor()), "rwm"));
        }
    }
    r.set_devices(Some(rules));
    r
}

fn reap(pid: i32) {
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
}

fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().expect("validated");
    for (file, maps, field) in [
        ("uid_map", linux.uid_mappings(), "linux.uidMappings"),
        ("gid_map", linux.gid_mappings(), "linux.gidMappings"),
    ] {
        let text: String = maps
            .iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text)
            .map_err(|e| Error::Config(format!("{field}: writing {path}: {e}")))?;
    }
    Ok(())
}

pub fn hook_state(
    id: &str,
    status: Status,
    pid: Option<i32>,
    bundle: &Path,
    spec: &Spec,
) -> Vec<u8> {
    let st = OciState {
        oci_version: spec.version(),
        id,
        status,
        pid,
        bundle,
        annotations: spec
            .annotations()
            .as_ref()
            .filter(|a: &&HashMap<String, String>| !a.is_empty()),
    };
    serde_json::to_vec(&st).expect("state serialises")
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::sys("getcwd", e))?
            .join(path)
    };
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        abs.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    // O_EXCL|O_NOFOLLOW: a symlink planted at the temporary name must not
    // redirect a write made as root.
    let _ = std::fs::remove_file(&tmp);
    let fd = sys::open(
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o644,
    )
    .map_err(|e| Error::io(&tmp, e))?;
    sys::write_all_fd(fd.as_fd(), pid.to_string().as_bytes()).map_err(|e| Error::io(&tmp, e))?;
    drop(fd);
    std::fs::rename(&tmp, &abs).map_err(|e| Error::io(&abs, e))
}

const FORWARD: [i32; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// Blocks the signals `run`/`exec` forward (and SIGCHLD) in this thread,
/// before any other thread exists, so every later thread inherits the
/// mask and only `sigwaitinfo` ever takes them. The init resets its own
/// mask, so the container is unaffected.
fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: building and installing a signal mask for this thread.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARD {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Forwards signals sent to berth to the container's process until it
/// exits; returns its exit status (128+N when killed by signal N).
fn wait_forwarding_signals(pid: i32) -> i32 {
    let set = block_forwarded_signals();
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our child (CLONE_PARENT made it ours).
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        } else if r < 0 {
            return 255;
        }
        // Reap any orphan that reparented to us (we are a subreaper).
        // SAFETY: plain syscalls.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let s = libc::sigwaitinfo(&set, &mut info);
            if s > 0 && s != libc::SIGCHLD {
                libc::kill(pid, s);
            } else if s == libc::SIGCHLD {
                loop {
                    let mut st = 0;
                    let w = libc::waitpid(-1, &mut st, libc::WNOHANG);
                    if w <= 0 {
                        break;
                    }
                    if w == pid {
                        if libc::WIFEXITED(st) {
                            return libc::WEXITSTATUS(st);
                        }
                        if libc::WIFSIGNALED(st) {
                            return 128 + libc::WTERMSIG(st);
                        }
                    }
                }
            }
        }
    }
}
