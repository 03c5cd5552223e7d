//! `start`: lets a created container's init run the user program.

use std::os::fd::{AsFd, AsRawFd};

use super::*;
use crate::error::{Error, Result};
use crate::state::{self, Status};
use crate::{hooks, sys};

impl Runtime {
    pub fn start(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let saved = self.store.load(id)?;
        match self.store.status(&saved) {
            Status::Created => {}
            Status::Stopped => {
                return Err(Error::State(format!(
                    "cannot start container {id}: cannot start a container that has stopped"
                )))
            }
            s => {
                return Err(Error::State(format!(
                    "cannot start container {id}: cannot start an already {s} container"
                )))
            }
        }
        let sock_path = self.store.dir(id).join(state::START_SOCK);
        let report = connect_start(&sock_path).map_err(|e| {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                Error::State(format!(
                    "cannot start container {id}: its init process has exited: container not running"
                ))
            } else {
                Error::io(&sock_path, e)
            }
        })?;
        // The init holds the connection open (close-on-exec) until the user
        // program is exec'd, or writes why it could not be: this returns
        // when the program runs, so a signal sent right after `start`
        // reaches the program, not berth's init. Bounded by the init's life.
        // Connected, the container is no longer "created", whether or not
        // this process lives to see the exec.
        let _ = std::fs::remove_file(&sock_path);
        fault_point("start-connected");
        // The init may first hand over its seccomp notify listener (loaded
        // as the last step before execve), for the agent.
        let mut why = Vec::new();
        loop {
            match sys::recv_fd(report.as_fd(), 4096) {
                Ok((_, Some(listener))) => send_seccomp_listener(
                    &saved.config,
                    id,
                    saved.pid,
                    &saved.bundle,
                    listener.as_fd(),
                )?,
                Ok((data, None)) if !data.is_empty() => why.extend_from_slice(&data),
                _ => break,
            }
        }
        drop(report);
        if !why.is_empty() {
            return Err(Error::Init(String::from_utf8_lossy(&why).into_owned()));
        }
        let st = hook_state(
            id,
            Status::Running,
            Some(saved.pid),
            &saved.bundle,
            &saved.config,
        );
        // The spec: a failing poststart hook is a warning, not a failure,
        // and the remaining poststart hooks still run.
        hooks::run_warn(saved.config.hooks().as_ref(), hooks::Kind::Poststart, &st);
        Ok(())
    }
}

/// Connects to the start socket through an O_PATH handle of it, so that a
/// state root of any length fits sun_path.
fn connect_start(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    let fd = sys::open(path, libc::O_PATH, 0)?;
    std::os::unix::net::UnixStream::connect(sys::proc_fd_path(fd.as_raw_fd()))
}
