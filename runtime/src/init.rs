//! The container's init: the process started (from the sealed memfd copy of
//! berth) by `create`, `run` and `exec`, that builds the container around
//! itself and finally becomes the user program.
//!
//! Stages, each reported to the parent over the channel:
//! 1. join namespaces given by path, create a user namespace and wait for the
//!    parent to write its id maps, unshare the rest;
//! 2. fork once more (CLONE_PARENT, so the parent can wait for it) when the
//!    pid or time namespace only applies to children; report that pid;
//! 3. build the rootfs, letting the parent run prestart/createRuntime hooks
//!    at the right moment, then pivot_root;
//! 4. set up the process (console, identity, capabilities, seccomp), report
//!    ready and hold until the parent has recorded the container (the
//!    channel closing first means the parent died: exit, never orphaned);
//! 5. for a new container, wait on the start socket for `start`, whose
//!    connection stays open until the user program is exec'd (the
//!    connection is close-on-exec) or carries the error that stopped it.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::{hooks, process, rootfs, sys};

pub const SYNC_FD_ENV: &str = "_BERTH_SYNC_FD";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A new container: build everything, wait for `start`.
    Create,
    /// A process joining a running container: namespaces come from the
    /// container's init, nothing is mounted.
    Exec,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Bootstrap {
    pub mode: Mode,
    pub id: String,
    pub spec: Spec,
    /// Replaces spec.process for exec.
    pub process: Process,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Namespaces to join (type name → path), for exec or spec paths.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Namespaces to create.
    pub new: Vec<LinuxNamespaceType>,
    /// The listening start socket `start` connects to (create only).
    pub start_fd: Option<RawFd>,
    /// Bind mount sources the parent cloned (open_tree) from the host
    /// before the container's user namespace existed: (index in `mounts`,
    /// fd). A source its mapped root could not reach still mounts.
    #[serde(default)]
    pub mount_fds: Vec<(usize, RawFd)>,
    pub console_fd: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub extras: crate::spec::Extras,
}

/// Entry point of `berth init`. Never returns.
pub fn main() -> ! {
    let fd: RawFd = match std::env::var(SYNC_FD_ENV).ok().and_then(|v| v.parse().ok()) {
        Some(fd) => fd,
        None => {
            eprintln!("berth init: not started by berth");
            std::process::exit(1);
        }
    };
    std::env::remove_var(SYNC_FD_ENV);
    // SAFETY: the parent passed us this fd and nothing else in this process owns it.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let mut ch = Channel::new(sock);
    let boot = match ch.recv() {
        Ok(Some(Msg::Bootstrap(b))) => b,
        _ => std::process::exit(1),
    };
    let err = match run(&mut ch, &boot) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&Msg::Error {
        msg: err.to_string(),
    });
    std::process::exit(1);
}

enum Never {}

/// Unblocks every signal and restores SIGPIPE's default: the Rust runtime
/// ignores SIGPIPE, and an ignored signal stays ignored across execve.
fn reset_signals() {
    // SAFETY: sigset manipulation and sigprocmask/signal on our own process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(ch: &mut Channel, b: &Bootstrap) -> Result<Never> {
    reset_signals();
    // Nothing in the container may ptrace us or open our /proc files while
    // we set it up; execve of the user program resets this.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).ctx(|| "PR_SET_DUMPABLE".into())?;
    for fd in [b.start_fd, b.console_fd]
        .into_iter()
        .flatten()
        .chain(b.mount_fds.iter().map(|(_, fd)| *fd))
    {
        sys::set_cloexec(fd, true).ctx(|| "marking internal fds close-on-exec".into())?;
    }
    sys::set_cloexec(ch.socket().as_raw_fd(), true).ctx(|| "cloexec".into())?;

    if b.mode == Mode::Create {
        rootfs::remember_host_cgroups();
    }
    let forked = namespaces(ch, b)?;
    if !forked {
        ch.send(&Msg::Pid {
            pid: std::process::id() as i32,
        })?;
    }
    // Hold still until the parent has our pid: otherwise our next messages
    // could reach it before the intermediate's report of that pid.
    expect_continue(ch, "the parent to take our pid")?;

    let in_userns = b.new.contains(&LinuxNamespaceType::User)
        || b.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let linux = b.spec.linux().as_ref();
    let mut console_slave: Option<OwnedFd> = None;
    let mut state_json = Vec::new();

    // Without a mount namespace (new or joined) the container shares the
    // host's mounts, as the runtime-spec allows: nothing is mounted, masked,
    // pivoted or made read-only (that would change the host's), and its
    // root is root.path by chroot. `create` has warned about what that
    // leaves out.
    let own_mounts = b.new.contains(&LinuxNamespaceType::Mount)
        || b.join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount);
    if b.mode == Mode::Create {
        let devnull = rootfs::open_devnull()?;
        // A mount namespace joined by path gets the full rootfs set-up too,
        // inside it (runc's behaviour): the container never runs on
        // whatever that namespace has at /.
        let fs = if own_mounts {
            let mut fs = rootfs::prepare(&b.spec, &b.rootfs, in_userns)?;
            for (i, fd) in &b.mount_fds {
                // SAFETY: the parent passed us this fd; nothing else owns it.
                fs.pre_opened
                    .insert(*i, unsafe { OwnedFd::from_raw_fd(*fd) });
            }
            fs.mount_all(&b.spec, &b.bundle)?;
            fs.setup_dev(&b.spec)?;
            fs.ensure_cwd(b.process.cwd())?;
            fs.finish_dev(&b.spec)?;
            Some(fs)
        } else {
            None
        };
        ch.send(&Msg::RunHooks)?;
        state_json = match ch.recv()? {
            Some(Msg::HooksDone { state }) => state.into_bytes(),
            Some(Msg::Error { msg }) => return Err(Error::Init(msg)),
            _ => return Err(Error::Init("parent went away while running hooks".into())),
        };
        std::env::set_current_dir(&b.rootfs).map_err(|e| Error::io(&b.rootfs, e))?;
        hooks::run(
            b.spec.hooks().as_ref(),
            hooks::Kind::CreateContainer,
            &state_json,
        )?;
        if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
            write_sysctls(sysctl)?;
        }
        if let Some(adj) = b.process.oom_score_adj() {
            write_oom_score_adj(adj)?;
        }
        if fs.is_none() {
            // No mount namespace: the host's mounts stay as they are, but
            // the container's root is still root.path (a chroot, as runc's).
            chroot_into(&b.rootfs)?;
        }
        if let Some(fs) = &fs {
            if let Some(m) = linux.and_then(|l| l.masked_paths().as_ref()) {
                fs.mask_paths(m, devnull.as_fd())?;
            }
            if let Some(r) = linux.and_then(|l| l.readonly_paths().as_ref()) {
                fs.readonly_paths(r)?;
            }
            fs.pivot(b.no_pivot)?;
            // The rootfs bind had to be private for pivot_root; now give the
            // container's / the propagation the config asks for.
            if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
                let flag = crate::mounts::propagation_flag(p).unwrap_or(0);
                sys::mount(None, Path::new("/"), None, flag, None)
                    .map_err(|e| Error::Config(format!("linux.rootfsPropagation {p}: {e}")))?;
            }
        }
        drop(devnull);
        if let Some(h) = b.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h)
                .map_err(|e| Error::Config(format!("hostname {h:?}: {e}")))?;
        }
        if let Some(d) = b.spec.domainname().as_deref().filter(|h| !h.is_empty()) {
            let c = CString::new(d).map_err(|_| Error::Config("domainname: NUL byte".into()))?;
            // SAFETY: pointer and length describe `c`.
            if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
                return Err(Error::Config(format!(
                    "domainname {d:?}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        if b.process.terminal() == Some(true) {
            // /dev/console is bound only in a mount namespace of our own.
            console_slave = Some(setup_console(b, own_mounts)?);
        }
        if own_mounts && b.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            rootfs::readonly_root()?;
        }
    } else {
        if !own_mounts {
            // The container's root is its rootfs by chroot (see create).
            chroot_into(&b.rootfs)?;
        }
        if let Some(adj) = b.process.oom_score_adj() {
            write_oom_score_adj(adj)?;
        }
        if b.process.terminal() == Some(true) {
            console_slave = Some(setup_console(b, false)?);
        }
    }

    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        let dom = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        // SAFETY: plain syscall.
        if unsafe { libc::personality(dom) } < 0 {
            return Err(Error::Config(format!(
                "linux.personality: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    if let Some(r) = b.process.rlimits() {
        process::set_rlimits(r)?;
    }
    // Scheduling, I/O priority and the NUMA memory policy, while still
    // privileged (a realtime policy takes CAP_SYS_NICE); all survive execve.
    if let Some(s) = b.process.scheduler() {
        crate::sched::apply_scheduler(s)?;
    }
    if let Some(p) = b.process.io_priority() {
        crate::sched::apply_io_priority(p)?;
    }
    if let Some(p) = linux.and_then(|l| l.memory_policy().as_ref()) {
        crate::sched::apply_memory_policy(p)?;
    }
    if !b.no_new_keyring && b.mode == Mode::Create {
        crate::lsm::set_keyring_label(b.process.selinux_label().as_deref())?;
        join_session_keyring(&b.id);
    }
    if let Some(slave) = &console_slave {
        attach_console(slave.as_fd())?;
    }
    drop(console_slave);

    // Only stdio, the preserved fds and our own close-on-exec fds survive.
    sys::cloexec_from(3 + b.preserve_fds).ctx(|| "close_range".into())?;

    let caps = process::plan_caps(b.process.capabilities().as_ref())?;
    let nnp = b.process.no_new_privileges() == Some(true);
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::spec::compile_seccomp(s, &b.extras)?),
        None => None,
    };
    // The seccomp filter goes in as the very last step before execve, so
    // that nothing berth itself does can be trapped by it (a notify action
    // on a syscall of berth's with nobody yet to answer would hang us).
    // Without no_new_privs loading it takes CAP_SYS_ADMIN: the identity
    // switch keeps that one capability effective until the filter is in,
    // and the final sets are applied right after.
    let hold = seccomp.is_some() && !nnp;
    process::drop_bounding(&caps)?;
    // The cwd is entered while still root (a cwd only root can reach, such
    // as /root for a non-root user, works), else after the switch (runc).
    let cwd_entered = process::enter_cwd(b.process.cwd()).is_ok();
    process::fix_stdio_owner(b.process.user().uid());
    let setgroups_ok = !in_userns || setgroups_allowed();
    process::set_identity(&b.process, setgroups_ok)?;
    if hold {
        process::apply_caps_holding_sys_admin(&caps)?;
    } else {
        process::apply_caps(&caps)?;
    }
    if !cwd_entered {
        process::enter_cwd(b.process.cwd())?;
    }
    let env = process::environment(&b.process);
    let args = b.process.args().clone().unwrap_or_default();
    let exe = process::find_executable(&args[0], &env).map_err(|e| match e {
        Error::Init(m) => Error::Init(format!("process.args[0]: {m}")),
        other => other,
    })?;

    ch.send(&Msg::Ready)?;
    // Until the parent has recorded the container it may die and leave us
    // known to nobody: its channel closing here ends us instead.
    expect_continue(ch, "the container to be recorded")?;
    let report = match b.start_fd {
        Some(fd) => Some(wait_for_start(fd)?),
        None => None,
    };
    let last = (|| -> Result<Never> {
        // The profile and label take effect at execve; written before the
        // seccomp filter exists, which could otherwise refuse the writes.
        crate::lsm::set_exec_labels(
            b.process.apparmor_profile().as_deref(),
            b.process.selinux_label().as_deref(),
        )?;
        // execCPUAffinity.final: the exec'd process's CPUs once it is in
        // the container's cgroup (its initial ones were set by the parent).
        if b.mode == Mode::Exec {
            if let Some(f) = b
                .process
                .exec_cpu_affinity()
                .as_ref()
                .and_then(|a| a.cpu_affinity_final().as_deref())
            {
                crate::sched::set_affinity(0, "process.execCPUAffinity.final", f)?;
            }
        }
        if nnp {
            sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).ctx(|| "PR_SET_NO_NEW_PRIVS".into())?;
        }
        if let Some(f) = &seccomp {
            if let Some(listener) = f.load()? {
                // To the agent through whoever waits on us now: `start`
                // (create) or the exec's parent.
                let to = match &report {
                    Some(conn) => conn.as_fd(),
                    None => {
                        ch.send(&Msg::SeccompListener)?;
                        ch.socket().as_fd()
                    }
                };
                sys::send_fds(to, b"L", &[listener.as_raw_fd()])
                    .ctx(|| "passing the seccomp listener".into())?;
            }
        }
        if hold {
            process::apply_caps(&caps)?;
        }
        // startContainer hooks run as runc runs them: with the container's
        // filter, identity and capabilities, and its environment when they
        // name none.
        if b.mode == Mode::Create {
            hooks::run_with_env(
                b.spec.hooks().as_ref(),
                hooks::Kind::StartContainer,
                &state_json,
                Some(&env),
            )?;
        }
        exec(&exe, &args, &env)
    })();
    let err = match last {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // `start` waits on this connection: it gets the reason (the parent of
    // a create is gone by now; an exec's parent reads it from the channel).
    if let Some(conn) = report {
        let _ = sys::send_nosignal(conn.as_fd(), err.to_string().as_bytes());
    }
    Err(err)
}

fn expect_continue(ch: &mut Channel, what: &str) -> Result<()> {
    match ch.recv()? {
        Some(Msg::Continue) => Ok(()),
        Some(Msg::Error { msg }) => Err(Error::Init(msg)),
        _ => Err(Error::Init(format!(
            "parent went away while waiting for {what}"
        ))),
    }
}

fn ns_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// Stage 1 and 2. Returns whether we forked (the caller is then the child
/// and the pid was already reported).
fn namespaces(ch: &mut Channel, b: &Bootstrap) -> Result<bool> {
    // Open every namespace first: once we join a mount namespace the paths
    // may no longer resolve.
    let mut joins: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    for (t, p) in &b.join {
        let fd = sys::open(p, libc::O_RDONLY, 0).map_err(|e| {
            Error::Config(format!("linux.namespaces: {t} path {}: {e}", p.display()))
        })?;
        joins.push((*t, fd));
    }
    let join = |joins: &[(LinuxNamespaceType, OwnedFd)],
                pred: &dyn Fn(LinuxNamespaceType) -> bool|
     -> Result<()> {
        for (t, fd) in joins.iter().filter(|(t, _)| pred(*t)) {
            sys::setns(fd.as_fd(), ns_flag(*t)).map_err(|e| {
                Error::Config(format!("linux.namespaces: joining {t} namespace: {e}"))
            })?;
        }
        Ok(())
    };
    // Every namespace given by path is joined before a new user namespace
    // is made: once inside it we no longer hold capabilities over
    // namespaces the host owns (a CNI-made netns, say). The mount namespace
    // comes last, after everything that still needs the host's /proc.
    join(&joins, &|t| t == LinuxNamespaceType::User)?;
    join(&joins, &|t| {
        t != LinuxNamespaceType::User && t != LinuxNamespaceType::Mount
    })?;
    if b.new.contains(&LinuxNamespaceType::User) {
        // An unprivileged parent may only write the maps (and setgroups)
        // of a process whose /proc files are its own: dumpable until then
        // (nothing else lives in the container yet).
        let rootless = crate::rootless::is_rootless();
        sys::unshare(libc::CLONE_NEWUSER).ctx(|| "creating the user namespace".into())?;
        if rootless {
            sys::prctl(libc::PR_SET_DUMPABLE, 1).ctx(|| "PR_SET_DUMPABLE".into())?;
        }
        ch.send(&Msg::UsernsReady)?;
        expect_continue(ch, "the id mappings")?;
        if rootless {
            sys::prctl(libc::PR_SET_DUMPABLE, 0).ctx(|| "PR_SET_DUMPABLE".into())?;
        }
    }
    if b.new.contains(&LinuxNamespaceType::User)
        || joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User)
    {
        // Become root of the namespace so the rest of setup is privileged there.
        // SAFETY: plain syscalls.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(Error::Config(format!(
                    "linux.uidMappings/gidMappings: root is not mapped in the user namespace: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    }
    let flags = b
        .new
        .iter()
        .filter(|t| **t != LinuxNamespaceType::User)
        .fold(0, |acc, t| acc | ns_flag(*t));
    if flags != 0 {
        sys::unshare(flags)
            .map_err(|e| Error::Config(format!("linux.namespaces: creating namespaces: {e}")))?;
    }
    if b.new.contains(&LinuxNamespaceType::Time) {
        if let Some(offsets) = b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
        {
            write_time_offsets(offsets)?;
        }
    }
    join(&joins, &|t| t == LinuxNamespaceType::Mount)?;
    let needs_fork = [LinuxNamespaceType::Pid, LinuxNamespaceType::Time]
        .iter()
        .any(|t| b.new.contains(t) || joins.iter().any(|(j, _)| j == t));
    if !needs_fork {
        return Ok(false);
    }
    let pid = sys::fork_with_flags(libc::CLONE_PARENT as libc::c_ulong)
        .ctx(|| "forking the container process".into())?;
    if pid > 0 {
        let _ = ch.send(&Msg::Pid { pid });
        // SAFETY: _exit skips destructors that would close the channel
        // the child still uses.
        unsafe { libc::_exit(0) };
    }
    Ok(true)
}

/// chroot(2) into `root` and go to its top.
fn chroot_into(root: &Path) -> Result<()> {
    std::env::set_current_dir(root).map_err(|e| Error::io(root, e))?;
    let dot = sys::cstring(".").expect("no NUL");
    // SAFETY: a valid C string.
    if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        return Err(Error::sys("chroot", std::io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(|e| Error::io("/", e))
}

fn write_time_offsets(offsets: &HashMap<String, oci_spec::runtime::LinuxTimeOffset>) -> Result<()> {
    let mut s = String::new();
    for (clock, off) in offsets {
        s.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    // A non-dumpable process's /proc files belong to the host's root, not
    // to the root of a user namespace we are in: dumpable for the write
    // (nothing else lives in the container yet).
    sys::prctl(libc::PR_SET_DUMPABLE, 1).ctx(|| "PR_SET_DUMPABLE".into())?;
    let r = std::fs::write("/proc/self/timens_offsets", s)
        .map_err(|e| Error::Config(format!("linux.timeOffsets: {e}")));
    sys::prctl(libc::PR_SET_DUMPABLE, 0).ctx(|| "PR_SET_DUMPABLE".into())?;
    r
}

fn write_sysctls(sysctl: &HashMap<String, String>) -> Result<()> {
    // The host's procfs is still mounted at /proc; writes to /proc/sys act on
    // the namespaces of the writing task, which are the container's.
    let proc = sys::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::io("/proc", e))?;
    if sys::fstatfs_magic(proc.as_fd()).unwrap_or(0) != libc::PROC_SUPER_MAGIC {
        return Err(Error::State("/proc is not procfs".into()));
    }
    for (k, v) in sysctl {
        let rel = PathBuf::from("sys").join(k.replace('.', "/"));
        let fd = sys::openat2(
            Some(proc.as_fd()),
            &rel,
            libc::O_WRONLY | libc::O_TRUNC,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV,
        )
        .map_err(|e| Error::Config(format!("linux.sysctl.{k}: {e}")))?;
        sys::write_all_fd(fd.as_fd(), v.as_bytes())
            .map_err(|e| Error::Config(format!("linux.sysctl.{k}={v}: {e}")))?;
    }
    Ok(())
}

fn write_oom_score_adj(adj: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .map_err(|e| Error::Config(format!("process.oomScoreAdj {adj}: {e}")))
}

fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

fn join_session_keyring(id: &str) {
    let name = CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: keyctl with a valid C string; failure (no keyring support,
    // quota) is not fatal, as for runc.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
        );
    }
}

/// Opens a pty pair from the container's devpts, sends the master to the
/// console socket, and (for a new container) binds the slave over
/// /dev/console. Returns the slave.
fn setup_console(b: &Bootstrap, bind_console: bool) -> Result<OwnedFd> {
    let sock = b.console_fd.ok_or_else(|| {
        Error::Config("process.terminal is set but no --console-socket was given".into())
    })?;
    let master = sys::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| Error::io("/dev/ptmx", e))?;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } != 0 {
        return Err(Error::sys(
            "unlocking the pty",
            std::io::Error::last_os_error(),
        ));
    }
    // TIOCGPTPEER opens the slave through the master, never through a path
    // the container could have replaced.
    // SAFETY: ioctl returns a new fd or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Error::sys(
            "opening the pty slave",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fresh fd from the kernel.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // runc's console: no output post-processing (ONLCR), so `run -t`
    // output does not end its lines in "\r\n".
    // SAFETY: termios read and written back on the slave we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave.as_raw_fd(), &mut t) == 0 {
            t.c_oflag &= !libc::ONLCR;
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
        }
    }
    if let Some(sz) = b.process.console_size() {
        let ws = libc::winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: valid winsize pointer.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    let name = format!("/dev/pts/{n}");
    if bind_console {
        let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| Error::io("/", e))?;
        let target = crate::safepath::ensure_file(root.as_fd(), Path::new("/dev/console"))
            .map_err(|e| Error::io("/dev/console", e))?;
        let tree = sys::open_tree(
            slave.as_raw_fd(),
            c"",
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
        )
        .ctx(|| "cloning the pty for /dev/console".into())?;
        sys::move_mount_fd(tree.as_fd(), target.as_fd()).ctx(|| "binding /dev/console".into())?;
    }
    // SAFETY: the console socket fd was passed to us by the parent.
    let sockfd = unsafe { BorrowedFd::borrow_raw(sock) };
    sys::send_fds(sockfd, name.as_bytes(), &[master.as_raw_fd()])
        .ctx(|| "sending the pty master to the console socket".into())?;
    Ok(slave)
}

fn attach_console(slave: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: plain syscalls on valid fds.
    unsafe {
        libc::setsid();
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(Error::sys("TIOCSCTTY", std::io::Error::last_os_error()));
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(Error::sys(
                    "dup2 of the console",
                    std::io::Error::last_os_error(),
                ));
            }
        }
    }
    Ok(())
}

/// Blocks until `berth start` connects to the start socket (the parent
/// made it listening; it stays so for as long as we live, so `start` sees
/// ECONNREFUSED once we are gone). Returns the connection, close-on-exec:
/// `start` reads end-of-file from it once the user program is exec'd.
fn wait_for_start(listener: RawFd) -> Result<UnixStream> {
    // SAFETY: the parent passed this fd; nothing else in this process owns it.
    let listener = unsafe { OwnedFd::from_raw_fd(listener) };
    let conn = loop {
        // SAFETY: accept4 on a listening socket we own; null address out.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh fd from the kernel.
            break unsafe { UnixStream::from_raw_fd(fd) };
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::sys("waiting for start on the start socket", e));
        }
    };
    // Nobody else may start us a second time.
    drop(listener);
    Ok(conn)
}

fn exec(exe: &Path, args: &[String], env: &[String]) -> Result<Never> {
    let path = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| Error::Init("exec: NUL in path".into()))?;
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let cenv: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    reset_signals();
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings
    // that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    // runc's (Go's) text: "exec /x: permission denied".
    Err(Error::Init(crate::error::for_clients(&format!(
        "exec {}: {}",
        exe.display(),
        std::io::Error::last_os_error()
    ))))
}
