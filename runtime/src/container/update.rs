//! `update`: new resource limits for a live container.

use oci_spec::runtime::LinuxResources;

use super::*;
use crate::error::Result;
use crate::state::Status;

impl Runtime {
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
}
