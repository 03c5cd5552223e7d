//! The container lifecycle as a library: what the `berth` CLI and the shim
//! both call.
//!
//! This file is the shared core (the `Runtime`, its options, spawning the
//! init, the state handed to hooks); each lifecycle operation has a file of
//! its own under `container/`: create, start, run, exec, kill, delete,
//! pause/resume, update, and the read-only queries.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::channel::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::init::{Bootstrap, SYNC_FD_ENV};
use crate::state::{OciState, Saved, Status, Store};
use crate::{selfexe, sys};

pub const DEFAULT_ROOT: &str = "/run/berth";

mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod query;
mod run;
mod signals;
mod start;
mod update;

pub use create::cgroup_resources;

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
    /// `exec --cgroup`: existing sub-cgroups of the container's cgroup to
    /// run the process in (none: the container's cgroup itself).
    pub cgroup: Vec<berth_cgroups::SubCgroup>,
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
    /// `run --no-subreaper`: berth does not become a child subreaper while
    /// it waits for the container.
    pub no_subreaper: bool,
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

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, systemd_cgroup: bool) -> Self {
        Runtime {
            store: Store::new(root),
            systemd_cgroup,
        }
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
        let cg = saved.cgroup.clone().ok_or_else(|| {
            Error::State(format!(
                "cannot {op} container {id}: it has no cgroup (rootless, on a host that \
                     gives its user none to make)"
            ))
        })?;
        Ok((saved, cg))
    }
}

/// For `run`/`exec` with a terminal and no console socket: receives the
/// pty master on berth's own end of the socket pair and relays it.
fn relay_console(pair: Option<UnixStream>) -> Result<Option<crate::tty::Proxy>> {
    let Some(sock) = pair else { return Ok(None) };
    let (_, master) = sys::recv_fd(sock.as_fd(), 4096).ctx(|| "receiving the pty master".into())?;
    master.map(crate::tty::Proxy::start).transpose()
}

/// Starts `berth init` from the sealed memfd with the channel, the start
/// socket and the console socket inherited at numbers above the preserved fds.
/// `placed` runs once the child exists and before it is told anything: the
/// place to put it into its cgroup.
/// What the init is handed besides its channel.
#[derive(Default)]
pub(crate) struct Handed<'a> {
    /// The listening start socket (create).
    pub start: Option<std::os::fd::BorrowedFd<'a>>,
    /// The console socket the pty master goes to.
    pub console: Option<std::os::fd::BorrowedFd<'a>>,
    /// The process's stdio, when the caller (the shim) gives it.
    pub stdio: Option<&'a [OwnedFd; 3]>,
    /// Bind sources cloned from the host, by index in `mounts`.
    pub mount_sources: &'a [(usize, OwnedFd)],
}

pub(crate) fn spawn_init(
    boot: Bootstrap,
    handed: Handed<'_>,
    preserve_fds: u32,
    cgroup: Option<&Path>,
    placed: impl FnOnce(i32) -> Result<()>,
) -> Result<(Channel, i32)> {
    let Handed {
        start,
        console,
        stdio,
        mount_sources,
    } = handed;
    let mut boot = boot;
    let (mut ch, theirs) = Channel::pair()?;
    let min = 3 + preserve_fds as RawFd;
    let sock = sys::dup_at_least(theirs.as_fd(), min).ctx(|| "dup".into())?;
    drop(theirs);
    let start = start
        .map(|f| sys::dup_at_least(f, min))
        .transpose()
        .ctx(|| "dup".into())?;
    let console = console
        .map(|f| sys::dup_at_least(f, min))
        .transpose()
        .ctx(|| "dup".into())?;
    boot.start_fd = start.as_ref().map(|f| f.as_raw_fd());
    boot.console_fd = console.as_ref().map(|f| f.as_raw_fd());
    let sources: Vec<(usize, OwnedFd)> = mount_sources
        .iter()
        .map(|(i, f)| sys::dup_at_least(f.as_fd(), min).map(|d| (*i, d)))
        .collect::<std::io::Result<_>>()
        .ctx(|| "dup".into())?;
    boot.mount_fds = sources.iter().map(|(i, f)| (*i, f.as_raw_fd())).collect();
    // Fds 3..3+N pass only if berth itself inherited them: anything berth
    // opened is close-on-exec, so an internal fd that happens to sit in that
    // range (the state lock, say) never reaches the container.
    let inherit: Vec<RawFd> = [Some(&sock), start.as_ref(), console.as_ref()]
        .into_iter()
        .flatten()
        .chain(sources.iter().map(|(_, f)| f))
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
    drop(start);
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

fn reap(pid: i32) {
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
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

/// The fault-injection suite's hook: with `_BERTH_FAULT=<point>` in its
/// environment, berth kills itself with SIGKILL when it reaches that point
/// (the phases of create, and points in start, exec and delete), so that a
/// test can kill it exactly between two steps and check what is left. Not
/// set, it costs one environment lookup per process.
pub(crate) fn fault_point(point: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if FAULT
        .get_or_init(|| std::env::var("_BERTH_FAULT").ok())
        .as_deref()
        == Some(point)
    {
        // SAFETY: plain syscall.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}
