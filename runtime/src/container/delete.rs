//! `delete`: the container's processes, cgroup and state go; poststop
//! hooks run.

use std::os::fd::AsFd;

use super::*;
use crate::error::{Error, Result};
use crate::state::Status;
use crate::{hooks, sys};

impl Runtime {
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let _lock = match self.store.lock(id) {
            Ok(l) => l,
            Err(Error::NotFound(_)) if force => {
                self.reclaim_default_cgroup(id);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let saved = match self.store.load(id) {
            Ok(s) => s,
            // A create that died half-way: only --force clears it, the
            // cgroup it recorded it was about to make included.
            Err(Error::NotFound(_)) if force => {
                if let Some(mut p) = self.store.load_pending(id) {
                    p.cgroup.reclaim();
                    p.cgroup.destroy()?;
                }
                return self.store.remove(id);
            }
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
            fault_point("delete-killed");
            cg.destroy()?;
            fault_point("delete-cgroup-gone");
        }
        let st = hook_state(id, Status::Stopped, None, &saved.bundle, &saved.config);
        // The runtime-spec: a failing poststop hook is a warning, and the
        // remaining poststop hooks and the delete go on.
        hooks::run_warn(saved.config.hooks().as_ref(), hooks::Kind::Poststop, &st);
        self.store.remove(id)
    }

    /// `delete --force` of an id berth has no state for: the cgroup berth
    /// would have made for it by default (`/berth/<id>`, or the
    /// `berth-<id>.scope` of the systemd driver) goes, with anything left
    /// in it. A `create` of that id under way makes its state directory
    /// before its cgroup, so a cgroup seen while the directory is still
    /// absent is no live create's.
    fn reclaim_default_cgroup(&self, id: &str) {
        let Ok(mut cg) = berth_cgroups::Manager::new(None, id, self.systemd_cgroup) else {
            return;
        };
        if !cg.dirs().iter().any(|d| d.is_dir()) || self.store.dir(id).exists() {
            return;
        }
        crate::logging::debug(&format!(
            "delete --force {id}: removing the default cgroup {} left without state",
            cg.path()
        ));
        cg.reclaim();
        if let Err(e) = cg.destroy() {
            crate::logging::warn(&format!("delete --force {id}: cgroup {}: {e}", cg.path()));
        }
    }
}
