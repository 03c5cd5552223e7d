//! cgroup v2 (unified hosts): one directory, controllers enabled from the
//! root down through cgroup.subtree_control.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use serde::{Deserialize, Serialize};

use crate::devices::{rules_from_oci, DeviceState};
use crate::fs::{self, read, read_opt, read_u64_opt, write};
use crate::mountinfo::CgroupMount;
use crate::resources::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};
use crate::stats::{self, Stats};
use crate::{Error, FreezerState, Layout, OomWatcher, Result, SETTLE_TIMEOUT};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    path: String,
    mount: PathBuf,
    /// Directories `create` made, parents before children.
    #[serde(default)]
    created: Vec<PathBuf>,
}

fn unsupported(field: &str, what: &str) -> Error {
    Error::Unsupported(format!("{field}: {what}"))
}

/// "max" for -1 (unlimited), the number otherwise.
fn limit_str(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Enables every controller the parent offers in its subtree_control, so
/// that the child gets its interface files. Best effort, as runc: the
/// controller files a limit needs are reported missing when written.
///
/// A non-root cgroup with processes of its own is left alone: the kernel
/// refuses domain controllers there (EBUSY) but accepts threaded ones
/// (pids, cpuset), and a cgroup with processes *and* controllers makes all
/// its children invalid domains that no process can join (EOPNOTSUPP).
fn enable_controllers(dir: &std::path::Path) -> Result<()> {
    let Some(avail) = read_opt(&dir.join("cgroup.controllers"))? else {
        return Ok(());
    };
    let is_root = !dir.join("cgroup.type").exists();
    if !is_root {
        let procs = read_opt(&dir.join("cgroup.procs"))?.unwrap_or_default();
        if !procs.trim().is_empty() {
            return Ok(());
        }
    }
    let enabled = read_opt(&dir.join("cgroup.subtree_control"))?.unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let ctl = dir.join("cgroup.subtree_control");
    if fs::write_raw(&ctl, &missing.join(" ")).is_err() {
        for c in &missing {
            let _ = fs::write_raw(&ctl, c);
        }
    }
    Ok(())
}

impl Manager {
    pub(crate) fn new(path: String, mount: CgroupMount) -> Manager {
        Manager {
            path,
            mount: mount.mount_point,
            created: Vec::new(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn layout(&self) -> Layout {
        Layout::Unified
    }

    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// The container's cgroup directory.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir()]
    }

    /// The file of a controller; an error naming `field` if the controller
    /// is not enabled for the cgroup.
    fn controller_file(&self, name: &str, field: &str) -> Result<PathBuf> {
        let f = self.dir().join(name);
        if f.exists() {
            return Ok(f);
        }
        let controller = name.split('.').next().unwrap_or(name);
        let enabled = read_opt(&self.dir().join("cgroup.controllers"))?.unwrap_or_default();
        if enabled.split_whitespace().any(|c| c == controller) {
            Err(unsupported(
                field,
                &format!("this kernel has no {name} in {}", self.dir().display()),
            ))
        } else {
            Err(unsupported(
                field,
                &format!(
                    "the {controller} controller is not available in {} (cgroup.controllers: {:?})",
                    self.dir().display(),
                    enabled.trim()
                ),
            ))
        }
    }

    pub(crate) fn validate(&self, r: &LinuxResources) -> Result<()> {
        if let Some(c) = r.cpu() {
            if c.realtime_runtime().unwrap_or(0) != 0 || c.realtime_period().unwrap_or(0) != 0 {
                return Err(unsupported(
                    "linux.resources.cpu.realtimeRuntime",
                    "cgroup v2 has no real-time group scheduling",
                ));
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(unsupported(
                    "linux.resources.network",
                    "cgroup v2 has no net_cls/net_prio controllers",
                ));
            }
        }
        if let Some(m) = r.memory() {
            swap_to_v2(m.swap(), m.limit())?;
        }
        Ok(())
    }

    pub(crate) fn create(&mut self) -> Result<()> {
        let rel = self.path.trim_start_matches('/').to_string();
        let comps: Vec<&str> = rel.split('/').collect();
        let mut created = Vec::new();
        let res = fs::mkdir_path(&self.mount, &comps, &mut created, enable_controllers);
        fs::settle_created(res, created, &mut self.created)
    }

    pub(crate) fn own_leaves(&mut self, keep: &dyn Fn(&std::path::Path) -> bool) {
        let dir = self.dir();
        if keep(&dir) && !self.created.contains(&dir) {
            self.created.push(dir);
        }
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<()> {
        write(&self.dir().join("cgroup.procs"), &pid.to_string())
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                let f = self.controller_file("pids.max", "linux.resources.pids.limit")?;
                write(&f, &limit_str(p.limit()))?;
            }
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(devs) = r.devices() {
            if !devs.is_empty() {
                let mut st = DeviceState::default();
                st.apply_all(&rules_from_oci(devs)?);
                crate::ebpf::apply_device_state(&self.dir(), &st)?;
            }
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        if let Some(limits) = r.hugepage_limits() {
            self.apply_hugetlb(limits)?;
        }
        if let Some(rdma) = r.rdma() {
            for (dev, l) in rdma {
                if let Some(v) = crate::v1::rdma_value(dev, l) {
                    let f = self.controller_file("rdma.max", "linux.resources.rdma")?;
                    write(&f, &v)?;
                }
            }
        }
        if let Some(u) = r.unified() {
            for (key, value) in u {
                let field = format!("linux.resources.unified[{key:?}]");
                let f = self.dir().join(key);
                match fs::write_raw(&f, value) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(self
                            .controller_file(key, &field)
                            .err()
                            .unwrap_or_else(|| unsupported(&field, "no such cgroup file")));
                    }
                    Err(err) => {
                        return Err(Error::invalid(
                            field,
                            Error::Write {
                                path: f,
                                value: value.clone(),
                                err,
                            }
                            .to_string(),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let limit = m.limit().unwrap_or(0);
        let reservation = m.reservation().unwrap_or(0);
        let swap = swap_to_v2(m.swap(), m.limit())?;
        if m.check_before_update() == Some(true) && limit > 0 {
            let usage = read_u64_opt(&self.dir().join("memory.current"))?.unwrap_or(0);
            if usage > limit as u64 {
                return Err(Error::invalid(
                    "linux.resources.memory.limit",
                    format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
                ));
            }
        }
        if let Some(s) = swap {
            let f = self.dir().join("memory.swap.max");
            if f.exists() {
                write(&f, &limit_str(s))?;
            } else if s != -1 && s != 0 {
                // "max" or "0" ask nothing of a kernel without swap
                // accounting; a real swap allowance cannot be enforced.
                return Err(unsupported(
                    "linux.resources.memory.swap",
                    "this kernel has no swap accounting (memory.swap.max is missing)",
                ));
            }
        }
        if limit != 0 {
            let f = self.controller_file("memory.max", "linux.resources.memory.limit")?;
            write(&f, &limit_str(limit))?;
        }
        if reservation != 0 {
            let f = self.controller_file("memory.low", "linux.resources.memory.reservation")?;
            write(&f, &limit_str(reservation))?;
        }
        // swappiness, disableOOMKiller, kernel and kernelTCP have no v2
        // counterpart; runc drops them on v2 as well.
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let weight = shares_to_weight(c.shares().unwrap_or(0));
        if weight != 0 {
            let f = self.controller_file("cpu.weight", "linux.resources.cpu.shares")?;
            write(&f, &weight.to_string())?;
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let f = self.controller_file("cpu.max", "linux.resources.cpu.quota")?;
            // A period alone keeps the current quota (runc would reset it
            // to "max").
            let q = if quota > 0 {
                quota.to_string()
            } else if quota < 0 {
                "max".to_string()
            } else {
                read(&f)?
                    .split_whitespace()
                    .next()
                    .unwrap_or("max")
                    .to_string()
            };
            let v = if period != 0 {
                format!("{q} {period}")
            } else {
                q
            };
            write(&f, &v)?;
        }
        if let Some(b) = c.burst() {
            let f = self.controller_file("cpu.max.burst", "linux.resources.cpu.burst")?;
            write(&f, &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            let f = self.controller_file("cpu.idle", "linux.resources.cpu.idle")?;
            write(&f, &i.to_string())?;
        }
        for (value, file, field) in [
            (c.cpus(), "cpuset.cpus", "linux.resources.cpu.cpus"),
            (c.mems(), "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let f = self.controller_file(file, field)?;
                write(&f, v)?;
            }
        }
        Ok(())
    }

    fn apply_io(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
        let dir = self.dir();
        let bfq = dir.join("io.bfq.weight");
        let has_bfq = bfq.exists();
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            if has_bfq {
                // BFQ's weights have blkio's 1..=1000 range: no conversion.
                write(&bfq, &w.to_string())?;
            } else {
                let f = self.controller_file("io.weight", "linux.resources.blockIO.weight")?;
                write(&f, &blkio_weight_to_io_weight(u64::from(w)).to_string())?;
            }
        }
        // leafWeight has no v2 counterpart (as in runc, dropped).
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                if has_bfq {
                    write(&bfq, &format!("{}:{} {}", d.major(), d.minor(), w))?;
                } else {
                    let f =
                        self.controller_file("io.weight", "linux.resources.blockIO.weightDevice")?;
                    write(
                        &f,
                        &format!(
                            "{}:{} {}",
                            d.major(),
                            d.minor(),
                            blkio_weight_to_io_weight(u64::from(w))
                        ),
                    )?;
                }
            }
        }
        for (list, key, field) in [
            (
                b.throttle_read_bps_device(),
                "rbps",
                "throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "wbps",
                "throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "riops",
                "throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "wiops",
                "throttleWriteIOPSDevice",
            ),
        ] {
            for d in list.iter().flatten() {
                let f =
                    self.controller_file("io.max", &format!("linux.resources.blockIO.{field}"))?;
                // 0 means "no limit" in OCI, as in v1's throttle files.
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                write(&f, &format!("{}:{} {key}={rate}", d.major(), d.minor()))?;
            }
        }
        Ok(())
    }

    fn apply_hugetlb(&self, limits: &[oci_spec::runtime::LinuxHugepageLimit]) -> Result<()> {
        let dir = self.dir();
        let enabled = read_opt(&dir.join("cgroup.controllers"))?.unwrap_or_default();
        // Dropped without the controller, as on v1 (see there).
        if !enabled.split_whitespace().any(|c| c == "hugetlb") {
            return Ok(());
        }
        for l in limits {
            let f = dir.join(format!("hugetlb.{}.max", l.page_size()));
            if !f.exists() {
                return Err(Error::invalid(
                    "linux.resources.hugepageLimits.pageSize",
                    format!(
                        "{:?} is not a huge page size of this host (it has {:?})",
                        l.page_size(),
                        stats::hugetlb_page_sizes(&dir, true)
                    ),
                ));
            }
            write(&f, &limit_str(l.limit()))?;
        }
        Ok(())
    }

    fn wait_frozen(&self, want: bool) -> Result<()> {
        let events = self.dir().join("cgroup.events");
        let want_s = if want { "1" } else { "0" };
        let ok = fs::wait_until(SETTLE_TIMEOUT, || {
            Ok(read(&events)?
                .lines()
                .any(|l| l.trim() == format!("frozen {want_s}")))
        })?;
        if !ok {
            return Err(Error::Timeout(format!(
                "cgroup {}: not {} after {:?}",
                self.dir().display(),
                if want { "frozen" } else { "thawed" },
                SETTLE_TIMEOUT
            )));
        }
        Ok(())
    }

    pub(crate) fn freeze(&self) -> Result<()> {
        let f = self.dir().join("cgroup.freeze");
        write(&f, "1")?;
        if let Err(e) = self.wait_frozen(true) {
            let _ = write(&f, "0");
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn thaw(&self) -> Result<()> {
        write(&self.dir().join("cgroup.freeze"), "0")?;
        self.wait_frozen(false)
    }

    pub(crate) fn freezer_state(&self) -> Result<FreezerState> {
        let f = self.dir().join("cgroup.freeze");
        match read_opt(&f)? {
            Some(s) if s.trim() == "1" => Ok(FreezerState::Frozen),
            Some(_) => Ok(FreezerState::Thawed),
            // The root cgroup has no freezer; nor a cgroup that is gone.
            None => {
                if self.dir().exists() {
                    Ok(FreezerState::Thawed)
                } else {
                    read(&f).map(|_| FreezerState::Thawed)
                }
            }
        }
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        fs::procs_recursive(&self.dir(), &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub(crate) fn destroy(&self) -> Result<()> {
        let dir = self.dir();
        if !self.created.contains(&dir) {
            // Joined, not made: not berth's to empty or remove.
            return crate::v1::remove_created(&self.created, &[]);
        }
        let pids = || -> Result<Vec<i32>> {
            let mut v = Vec::new();
            fs::procs_recursive(&dir, &mut v)?;
            Ok(v)
        };
        if !pids()?.is_empty() {
            let kill = dir.join("cgroup.kill");
            let has_kill = kill.exists();
            if has_kill {
                fs::write(&kill, "1")?;
            }
            let emptied = fs::wait_until(SETTLE_TIMEOUT, || {
                let left = pids()?;
                if left.is_empty() {
                    return Ok(true);
                }
                if !has_kill {
                    let frozen = self.freeze().is_ok();
                    crate::signal_each(&left, nix::sys::signal::Signal::SIGKILL);
                    if frozen {
                        let _ = self.thaw();
                    }
                }
                Ok(false)
            })?;
            if !emptied {
                return Err(Error::Timeout(format!(
                    "cgroup {}: processes {:?} still there {:?} after SIGKILL",
                    dir.display(),
                    pids()?,
                    SETTLE_TIMEOUT
                )));
            }
        }
        crate::v1::remove_created(&self.created, &[dir])
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        stats::read_v2(&self.dir())
    }

    pub(crate) fn oom_watcher(&self) -> Result<OomWatcher> {
        let f = self.controller_file("memory.events", "OOM notification")?;
        OomWatcher::v2(f.parent().expect("file in a dir"))
    }
}
