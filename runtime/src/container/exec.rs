//! `exec`: another process in a running container.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::LinuxNamespaceType;

use super::signals::{block_forwarded_signals, wait_forwarding_signals};
use super::*;
use crate::channel::Msg;
use crate::error::{Error, Result};
use crate::init::{Bootstrap, Mode};
use crate::state::Status;
use crate::{spec, sys};

impl Runtime {
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
                // runc's words (clients look for "container not running").
                let why = match s {
                    Status::Paused => {
                        "cannot exec in a paused container (use --ignore-paused to override)"
                    }
                    Status::Stopped => "cannot exec in a stopped container: container not running",
                    _ => "container not running",
                };
                return Err(Error::State(format!("{}: {why}", o.id)));
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
            spec::compile_seccomp(s, &saved.extras)?;
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
            start_fd: None,
            mount_fds: Vec::new(),
            console_fd: None,
            preserve_fds: o.preserve_fds,
            no_pivot: false,
            no_new_keyring: true,
            extras: saved.extras.clone(),
        };
        // SAFETY: prctl with integer args.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if !o.detach {
            block_forwarded_signals();
        }
        let cg = saved.cgroup.clone();
        // Where the process goes: the container's cgroup, or the
        // sub-cgroups `--cgroup` names (checked before anything starts).
        let sub_dirs = match (&cg, o.cgroup.is_empty()) {
            (_, true) => None,
            (Some(cg), false) => Some(cg.exec_dirs(&o.cgroup)?),
            (None, false) => {
                return Err(Error::State(format!(
                    "exec --cgroup: container {} has no cgroup",
                    o.id
                )))
            }
        };
        let born_in = match (&sub_dirs, cg.as_ref().and_then(|c| c.unified_dir())) {
            (Some(d), Some(_)) => d.first().cloned(),
            (None, u) => u,
            (Some(_), None) => None,
        };
        let mut procs: Vec<(i32, OwnedFd)> = Vec::new();
        let (mut ch, child) = spawn_init(
            boot,
            Handed {
                console: console.as_ref().map(|c| c.as_fd()),
                stdio: stdio.as_ref(),
                ..Default::default()
            },
            o.preserve_fds,
            born_in.as_deref(),
            |pid| {
                if let Ok(fd) = sys::pidfd_open(pid) {
                    procs.push((pid, fd));
                }
                // execCPUAffinity.initial: before the process joins the
                // container's cgroup (and its cpuset).
                if let Some(i) = o
                    .process
                    .exec_cpu_affinity()
                    .as_ref()
                    .and_then(|a| a.initial().as_deref())
                {
                    crate::sched::set_affinity(pid, "process.execCPUAffinity.initial", i)?;
                }
                match (&cg, &sub_dirs) {
                    (Some(cg), Some(dirs)) => cg.add_process_to(pid, dirs)?,
                    (Some(cg), None) => cg.add_process(pid)?,
                    (None, _) => {}
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
                    Msg::Ready => {
                        // Go, then wait until the program is exec'd (the
                        // channel closes on exec) or its error arrives:
                        // bounded by the process's life.
                        fault_point("exec-ready");
                        ch.send(&Msg::Continue)?;
                        loop {
                            match ch.recv()? {
                                None => return Ok(()),
                                // Loaded as the last step before execve.
                                Some(Msg::SeccompListener) => forward_seccomp_listener(
                                    &mut ch,
                                    spec,
                                    &o.id,
                                    pid,
                                    &saved.bundle,
                                )?,
                                Some(Msg::Error { msg }) => return Err(Error::Init(msg)),
                                Some(other) => {
                                    return Err(Error::Init(format!(
                                        "unexpected message from init: {other:?}"
                                    )))
                                }
                            }
                        }
                    }
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
}
