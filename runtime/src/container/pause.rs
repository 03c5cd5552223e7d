//! `pause` and `resume`: the container's freezer.

use super::*;
use crate::error::{Error, Result};
use crate::state::Status;

impl Runtime {
    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        // runc pauses a created container as well as a running one.
        let (_, cg) = self.running_cgroup(id, &[Status::Running, Status::Created], "pause")?;
        cg.freeze().map_err(Error::from)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(id, &[Status::Paused], "resume")?;
        cg.thaw().map_err(Error::from)
    }
}
