//! `kill`: a signal to the container's init, or to all of its processes.

use std::os::fd::AsFd;

use super::*;
use crate::error::{Context, Error, Result};
use crate::state::Status;
use crate::sys;

impl Runtime {
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let saved = self.store.load(id)?;
        // --all reaches what is left in the cgroup even after the init
        // exited (a container without a pid namespace of its own), as
        // runc's does.
        if all {
            if let Some(cg) = &saved.cgroup {
                cg.signal_all(signal)?;
                thaw_if_killed(cg, signal);
                return Ok(());
            }
        }
        let status = self.store.status(&saved);
        if status == Status::Stopped {
            return Err(Error::State(format!(
                "cannot kill container {id}: container not running"
            )));
        }
        match sys::pidfd_open(saved.pid) {
            Ok(fd) => sys::pidfd_send_signal(fd.as_fd(), signal)
                .ctx(|| format!("signalling container {id}"))?,
            // Kernels before 5.3 (and valgrind) lack pidfds: the status
            // check above compared the pid's start time, so a plain kill
            // still reaches the container's init.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                sys::kill(saved.pid, signal).ctx(|| format!("signalling container {id}"))?
            }
            Err(e) => return Err(e).ctx(|| format!("container {id} init {}", saved.pid)),
        }
        if status == Status::Paused {
            if let Some(cg) = &saved.cgroup {
                thaw_if_killed(cg, signal);
            }
        }
        Ok(())
    }
}

/// SIGKILL ends a paused container now, as runc's does: a frozen process
/// dies only once thawed. Other signals wait for `resume`.
fn thaw_if_killed(cg: &berth_cgroups::Manager, signal: i32) {
    if signal == libc::SIGKILL
        && matches!(cg.freezer_state(), Ok(berth_cgroups::FreezerState::Frozen))
    {
        let _ = cg.thaw();
    }
}
