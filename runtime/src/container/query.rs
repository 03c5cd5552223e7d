//! Read-only views of a container: its state, the list, its processes,
//! usage and OOM events.

use super::*;

/// Every process in the pid namespace `pid` is the init of (its own only,
/// when it shares the host's).
fn pids_in_pid_namespace_of(pid: i32) -> Vec<i32> {
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(want) = ns(pid) else {
        return Vec::new();
    };
    if ns(std::process::id() as i32).as_ref() == Some(&want) {
        return vec![pid];
    }
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(*p).as_ref() == Some(&want))
        .collect();
    out.sort_unstable();
    out
}
use crate::error::Result;
use crate::state::{self, StateOutput, Status};

impl Runtime {
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

    /// The pids in the container's cgroup. A stopped container has none
    /// left to list, which is no error (runc's `ps` prints its header).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let saved = self.store.load(id)?;
        if self.store.status(&saved) == Status::Stopped {
            // Whatever outlived the init (no pid namespace) is still shown.
            return Ok(saved
                .cgroup
                .and_then(|cg| cg.pids().ok())
                .unwrap_or_default());
        }
        if saved.cgroup.is_none() {
            // No cgroup (rootless): the processes of the init's pid namespace.
            return Ok(pids_in_pid_namespace_of(saved.pid));
        }
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
}
