//! `update`: new resource limits for a live container.

use oci_spec::runtime::LinuxResources;

use super::*;
use crate::error::Result;
use crate::state::Status;

impl Runtime {
    /// Applies new resource limits to a live container; only the fields set
    /// in `resources` change.
    ///
    /// `devices` is accepted and left alone, as runc 1.1 does (its update
    /// sets `SkipDevices`): containerd sends the container's whole device
    /// list with every update, and that list (without the default rules
    /// `create` appends) would otherwise take /dev/null and the rest away
    /// from the running container.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "update",
        )?;
        let mut resources = resources.clone();
        if resources.devices().is_some() {
            resources.set_devices(None);
            crate::logging::debug(&format!(
                "update {id}: linux.resources.devices left unchanged, as runc does"
            ));
        }
        cg.validate(&resources)?;
        cg.apply(&resources).map_err(Error::from)
    }
}
