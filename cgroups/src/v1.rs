//! cgroup v1 (legacy and hybrid hosts): one directory per mounted
//! hierarchy, each controller with its own files.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use serde::{Deserialize, Serialize};

use crate::devices::{rules_from_oci, DeviceState};
use crate::fs::{self, read, read_opt, read_u64_opt, write};
use crate::mountinfo::CgroupMount;
use crate::stats::{self, Stats, V1Dirs};
use crate::{Error, FreezerState, Layout, OomWatcher, Result, SETTLE_TIMEOUT};

/// One mounted v1 hierarchy and the controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    path: String,
    hierarchies: Vec<Hierarchy>,
    /// Hybrid hosts: the cgroup2 mount. The container joins it too (as runc
    /// does) so that tools following processes through cgroup2 see it, and
    /// teardown can use its cgroup.kill; no limit is set there.
    unified: Option<PathBuf>,
    /// Directories `create` made, parents before children.
    #[serde(default)]
    created: Vec<PathBuf>,
}

/// v1 memory limits at or above this are "unlimited" (the kernel shows
/// PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

fn unsupported(field: &str, what: &str) -> Error {
    Error::Unsupported(format!("{field}: {what}"))
}

impl Manager {
    pub(crate) fn new(path: String, v1: Vec<CgroupMount>, v2: Option<CgroupMount>) -> Manager {
        Manager {
            path,
            hierarchies: v1
                .into_iter()
                .map(|m| Hierarchy {
                    controllers: m.controllers.unwrap_or_default(),
                    mount: m.mount_point,
                })
                .collect(),
            unified: v2.map(|m| m.mount_point),
            created: Vec::new(),
        }
    }

    fn rel(&self) -> &str {
        self.path.trim_start_matches('/')
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn layout(&self) -> Layout {
        if self.unified.is_some() {
            Layout::Hybrid
        } else {
            Layout::Legacy
        }
    }

    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// The container's directory in the hierarchy carrying `controller`.
    pub fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount.join(self.rel()))
    }

    pub(crate) fn unified_dir(&self) -> Option<PathBuf> {
        self.unified.as_ref().map(|m| m.join(self.rel()))
    }

    /// The container's directory in every hierarchy (v1 ones, then the
    /// hybrid cgroup2 one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self
            .hierarchies
            .iter()
            .map(|h| h.mount.join(self.rel()))
            .collect();
        d.extend(self.unified_dir());
        d
    }

    fn need(&self, controller: &str, field: &str) -> Result<PathBuf> {
        self.controller_dir(controller).ok_or_else(|| {
            unsupported(
                field,
                &format!("the {controller} cgroup controller is not mounted on this host"),
            )
        })
    }

    pub(crate) fn validate(&self, r: &LinuxResources) -> Result<()> {
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::invalid(
                "linux.resources.unified",
                // runc's words first, for whoever greps for them.
                "invalid configuration: cannot use unified on cgroup v1 \
                 (cgroup v2 settings cannot be applied on this cgroup v1 host)",
            ));
        }
        Ok(())
    }

    pub(crate) fn create(&mut self) -> Result<()> {
        let comps: Vec<String> = self.rel().split('/').map(str::to_string).collect();
        let comps: Vec<&str> = comps.iter().map(String::as_str).collect();
        let mut created = Vec::new();
        let mounts: Vec<(PathBuf, bool)> = self
            .hierarchies
            .iter()
            .map(|h| (h.mount.clone(), h.controllers.iter().any(|c| c == "cpuset")))
            .collect();
        let res = (|| -> Result<()> {
            if let Some(u) = &self.unified {
                // Best effort, like joining it in add_process: a read-only
                // or foreign-owned cgroup2 mount limits nothing berth sets.
                let mut made = Vec::new();
                match fs::mkdir_path(u, &comps, &mut made, |_| Ok(())) {
                    Ok(()) => created.extend(made),
                    Err(_) => {
                        for d in made.iter().rev() {
                            let _ = std::fs::remove_dir(d);
                        }
                    }
                }
            }
            for (mount, cpuset) in &mounts {
                fs::mkdir_path(mount, &comps, &mut created, |_| Ok(()))?;
                if *cpuset {
                    // A new cpuset cgroup starts with empty cpus and mems,
                    // and no task can join it until they are set: inherit
                    // the parent's, top-down, as runc does.
                    let mut dir = mount.clone();
                    for c in &comps {
                        let parent = dir.clone();
                        dir.push(c);
                        copy_cpuset_from_parent(&parent, &dir)?;
                    }
                }
            }
            Ok(())
        })();
        fs::settle_created(res, created, &mut self.created)
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            let procs = h.mount.join(self.rel()).join("cgroup.procs");
            write(&procs, &pid.to_string())?;
        }
        if let Some(dir) = self.unified_dir() {
            // Nothing is limited through the hybrid cgroup2 hierarchy, so
            // failing to join it (a delegated or read-only mount) must not
            // fail the container.
            let _ = write(&dir.join("cgroup.procs"), &pid.to_string());
        }
        Ok(())
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                let dir = self.need("pids", "linux.resources.pids.limit")?;
                let v = if p.limit() > 0 {
                    p.limit().to_string()
                } else {
                    "max".to_string()
                };
                write(&dir.join("pids.max"), &v)?;
            }
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(devs) = r.devices() {
            self.apply_devices(devs)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(b)?;
        }
        if let Some(limits) = r.hugepage_limits() {
            self.apply_hugetlb(limits)?;
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let dir = self.need("net_cls", "linux.resources.network.classID")?;
                write(&dir.join("net_cls.classid"), &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                let dir = self.need("net_prio", "linux.resources.network.priorities")?;
                write(
                    &dir.join("net_prio.ifpriomap"),
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        if let Some(rdma) = r.rdma() {
            for (dev, l) in rdma {
                let dir = self.need("rdma", "linux.resources.rdma")?;
                if let Some(v) = rdma_value(dev, l) {
                    write(&dir.join("rdma.max"), &v)?;
                }
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        let reservation = m.reservation().unwrap_or(0);
        let anything = limit != 0
            || swap != 0
            || reservation != 0
            || m.kernel_tcp().unwrap_or(0) != 0
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        if !anything {
            return Ok(());
        }
        let dir = self.need("memory", "linux.resources.memory")?;
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let has_memsw = memsw.exists();
        // Unlimited memory with no word on swap: memsw follows, or the old
        // memsw limit would keep capping memory.
        if limit == -1 && swap == 0 && has_memsw {
            swap = -1;
        }
        // An update of the memory limit alone on a cgroup created without
        // swap (memsw == memory): memsw follows, keeping "no swap" true
        // and sparing the kernel's EINVAL for memory > memsw. (v2 keeps
        // swap apart from memory, so there this holds by itself.)
        if limit > 0 && swap == 0 && has_memsw {
            let cur_mem = read_u64_opt(&dir.join("memory.limit_in_bytes"))?;
            let cur_memsw = read_u64_opt(&memsw)?;
            if let (Some(a), Some(b)) = (cur_mem, cur_memsw) {
                if a == b && b < V1_UNLIMITED {
                    swap = limit;
                }
            }
        }
        if !has_memsw && swap != 0 {
            if swap == -1 || swap == limit {
                // Asks for no more than the kernel does anyway without swap
                // accounting.
                swap = 0;
            } else {
                return Err(unsupported(
                    "linux.resources.memory.swap",
                    "this kernel has no swap accounting (memory.memsw.limit_in_bytes is \
                     missing; boot with swapaccount=1)",
                ));
            }
        }
        if m.check_before_update() == Some(true) && limit > 0 {
            let usage = read_u64_opt(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
            if usage > limit as u64 {
                return Err(Error::invalid(
                    "linux.resources.memory.limit",
                    format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
                ));
            }
        }
        let mem_file = dir.join("memory.limit_in_bytes");
        let set_mem = || -> Result<()> {
            write(&mem_file, &limit.to_string()).map_err(|e| memory_limit_error(&dir, limit, e))
        };
        let set_swap = || write(&memsw, &swap.to_string());
        // The kernel keeps memory <= memory+swap at every step: raise the
        // one that would otherwise fall below the other first.
        if limit != 0 && swap != 0 {
            let cur = read_u64_opt(&mem_file)?.unwrap_or(u64::MAX);
            if swap == -1 || cur < swap as u64 {
                set_swap()?;
                set_mem()?;
            } else {
                set_mem()?;
                set_swap()?;
            }
        } else if limit != 0 {
            set_mem()?;
        } else if swap != 0 {
            set_swap()?;
        }
        if reservation != 0 {
            write(
                &dir.join("memory.soft_limit_in_bytes"),
                &reservation.to_string(),
            )?;
        }
        if let Some(tcp) = m.kernel_tcp().filter(|v| *v != 0) {
            let f = dir.join("memory.kmem.tcp.limit_in_bytes");
            if !f.exists() {
                return Err(unsupported(
                    "linux.resources.memory.kernelTCP",
                    "this kernel has no memory.kmem.tcp.limit_in_bytes",
                ));
            }
            write(&f, &tcp.to_string())?;
        }
        // linux.resources.memory.kernel is deliberately not applied: kernel
        // memory limits are deprecated in v1, and runc ignores them too.
        if let Some(s) = m.swappiness() {
            write(&dir.join("memory.swappiness"), &s.to_string())?;
        }
        if let Some(d) = m.disable_oom_killer() {
            write(&dir.join("memory.oom_control"), if d { "1" } else { "0" })?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let shares = c.shares().unwrap_or(0);
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        let rt_period = c.realtime_period().unwrap_or(0);
        let rt_runtime = c.realtime_runtime().unwrap_or(0);
        let needs_cpu = shares != 0
            || quota != 0
            || period != 0
            || c.burst().is_some()
            || c.idle().is_some()
            || rt_period != 0
            || rt_runtime != 0;
        if needs_cpu {
            let dir = self.need("cpu", "linux.resources.cpu")?;
            if shares != 0 {
                let f = dir.join("cpu.shares");
                write(&f, &shares.to_string())?;
                // The kernel clamps silently; a container asking for more
                // (or less) than it gets should hear about it.
                let got = read_u64_opt(&f)?.unwrap_or(shares);
                if got != shares {
                    return Err(Error::invalid(
                        "linux.resources.cpu.shares",
                        format!("{shares} is outside the kernel's range 2..=262144 (it set {got})"),
                    ));
                }
            }
            let period_file = dir.join("cpu.cfs_period_us");
            let mut period_pending = false;
            if period != 0 {
                if let Err(e) = write(&period_file, &period.to_string()) {
                    // A shorter period can be refused while the old quota,
                    // over the new period, exceeds the parent's: retried
                    // after the quota is written.
                    if e.raw_os_error() != Some(libc::EINVAL) || quota == 0 {
                        return Err(e);
                    }
                    period_pending = true;
                }
            }
            if quota != 0 {
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                if period_pending {
                    write(&period_file, &period.to_string())?;
                }
            }
            if let Some(b) = c.burst() {
                let f = dir.join("cpu.cfs_burst_us");
                if !f.exists() {
                    return Err(unsupported(
                        "linux.resources.cpu.burst",
                        "this kernel has no cpu.cfs_burst_us",
                    ));
                }
                write(&f, &b.to_string())?;
            }
            if let Some(i) = c.idle() {
                let f = dir.join("cpu.idle");
                if !f.exists() {
                    return Err(unsupported(
                        "linux.resources.cpu.idle",
                        "this kernel has no cpu.idle",
                    ));
                }
                write(&f, &i.to_string())?;
            }
            if rt_period != 0 || rt_runtime != 0 {
                if !dir.join("cpu.rt_period_us").exists() {
                    return Err(unsupported(
                        "linux.resources.cpu.realtimeRuntime",
                        "this kernel has no real-time group scheduling (cpu.rt_runtime_us)",
                    ));
                }
                if rt_period != 0 {
                    write(&dir.join("cpu.rt_period_us"), &rt_period.to_string())?;
                }
                if rt_runtime != 0 {
                    write(&dir.join("cpu.rt_runtime_us"), &rt_runtime.to_string()).map_err(
                        |e| match e.raw_os_error() {
                            Some(libc::EINVAL) | Some(libc::EBUSY) => Error::invalid(
                                "linux.resources.cpu.realtimeRuntime",
                                format!(
                                    "the kernel refused {rt_runtime}: the parent cgroups' \
                                     cpu.rt_runtime_us must leave that much ({e})"
                                ),
                            ),
                            _ => e,
                        },
                    )?;
                }
            }
        }
        for (value, file, field) in [
            (c.cpus(), "cpuset.cpus", "linux.resources.cpu.cpus"),
            (c.mems(), "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let dir = self.need("cpuset", field)?;
                write(&dir.join(file), v)?;
            }
        }
        Ok(())
    }

    fn apply_devices(&self, devs: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        if devs.is_empty() {
            return Ok(());
        }
        let rules = rules_from_oci(devs)?;
        let dir = self.need("devices", "linux.resources.devices")?;
        let list_file = dir.join("devices.list");
        let (current, exact) =
            DeviceState::parse_list(&read(&list_file)?).map_err(|reason| Error::Parse {
                path: list_file.clone(),
                reason,
            })?;
        let mut target = current.clone();
        target.apply_all(&rules);
        for (file, value) in current.transition(exact, &target) {
            write(&dir.join(file), &value)?;
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        let anything = b.weight().unwrap_or(0) != 0
            || b.leaf_weight().unwrap_or(0) != 0
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|(l, _)| l.as_ref().is_some_and(|v| !v.is_empty()));
        if !anything {
            return Ok(());
        }
        let dir = self.need("blkio", "linux.resources.blockIO")?;
        // CFQ (gone since 5.0) had blkio.weight; BFQ has blkio.bfq.weight.
        let (weight_file, weight_device_file) = if dir.join("blkio.weight").exists() {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
        let need_file = |name: &str, field: &str| -> Result<PathBuf> {
            let f = dir.join(name);
            if f.exists() {
                Ok(f)
            } else {
                Err(unsupported(
                    field,
                    &format!("this kernel has no {name} (no CFQ/BFQ weight support)"),
                ))
            }
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(
                &need_file(weight_file, "linux.resources.blockIO.weight")?,
                &w.to_string(),
            )?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(
                &need_file("blkio.leaf_weight", "linux.resources.blockIO.leafWeight")?,
                &w.to_string(),
            )?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let f = need_file(weight_device_file, "linux.resources.blockIO.weightDevice")?;
                write(&f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
            }
            if let Some(w) = d.leaf_weight() {
                let f = need_file(
                    "blkio.leaf_weight_device",
                    "linux.resources.blockIO.weightDevice.leafWeight",
                )?;
                write(&f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
            }
        }
        for (list, file) in throttles {
            for d in list.iter().flatten() {
                write(
                    &dir.join(file),
                    &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_hugetlb(&self, limits: &[oci_spec::runtime::LinuxHugepageLimit]) -> Result<()> {
        // Without a hugetlb hierarchy the limits are dropped, as runc does:
        // Kubernetes sends them for every container, and failing them all
        // on such hosts would help no one.
        let Some(dir) = self.controller_dir("hugetlb") else {
            return Ok(());
        };
        for l in limits {
            let f = dir.join(format!("hugetlb.{}.limit_in_bytes", l.page_size()));
            if !f.exists() {
                return Err(Error::invalid(
                    "linux.resources.hugepageLimits.pageSize",
                    format!(
                        "{:?} is not a huge page size of this host (it has {:?})",
                        l.page_size(),
                        stats::hugetlb_page_sizes(&dir, false)
                    ),
                ));
            }
            write(&f, &l.limit().to_string())?;
        }
        Ok(())
    }

    fn freezer_dir(&self) -> Result<PathBuf> {
        self.controller_dir("freezer").ok_or_else(|| {
            Error::Unsupported("the freezer cgroup controller is not mounted on this host".into())
        })
    }

    pub(crate) fn freeze(&self) -> Result<()> {
        let f = self.freezer_dir()?.join("freezer.state");
        // Tasks in uninterruptible sleep hold a freeze in FREEZING; the
        // write is repeated, with an occasional thaw to let stragglers
        // reach a freezable point, as runc does.
        let start = std::time::Instant::now();
        let mut i = 0u32;
        while start.elapsed() < SETTLE_TIMEOUT {
            if i % 50 == 49 {
                write(&f, "THAWED")?;
                std::thread::sleep(Duration::from_millis(10));
            }
            write(&f, "FROZEN")?;
            let state = read(&f)?;
            if state.trim() == "FROZEN" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(if i < 10 { 100 } else { 5000 }));
            i += 1;
        }
        let _ = write(&f, "THAWED");
        Err(Error::Timeout(format!(
            "cgroup {}: still not FROZEN after {:?}; thawed again",
            f.display(),
            SETTLE_TIMEOUT
        )))
    }

    pub(crate) fn thaw(&self) -> Result<()> {
        let f = self.freezer_dir()?.join("freezer.state");
        write(&f, "THAWED")?;
        let ok = fs::wait_until(SETTLE_TIMEOUT, || Ok(read(&f)?.trim() == "THAWED"))?;
        if !ok {
            return Err(Error::Timeout(format!(
                "cgroup {}: still not THAWED after {:?}",
                f.display(),
                SETTLE_TIMEOUT
            )));
        }
        Ok(())
    }

    pub(crate) fn freezer_state(&self) -> Result<FreezerState> {
        let Some(dir) = self.controller_dir("freezer") else {
            return Ok(FreezerState::Thawed);
        };
        let f = dir.join("freezer.state");
        Ok(match read(&f)?.trim() {
            "THAWED" => FreezerState::Thawed,
            _ => FreezerState::Frozen,
        })
    }

    /// The hierarchy whose process list counts: the freezer's (the one
    /// `signal_all` freezes), else any.
    fn primary_dir(&self) -> Option<PathBuf> {
        ["freezer", "pids", "memory", "devices", "cpu"]
            .iter()
            .find_map(|c| self.controller_dir(c))
            .or_else(|| self.dirs().into_iter().next())
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(dir) = self.primary_dir() {
            fs::procs_recursive(&dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub(crate) fn own_leaves(&mut self, keep: &dyn Fn(&Path) -> bool) {
        for d in self.dirs() {
            if keep(&d) && !self.created.contains(&d) {
                self.created.push(d);
            }
        }
    }

    /// Leaf directories berth created: what teardown owns.
    fn owned_leaves(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .filter(|d| self.created.contains(d))
            .collect()
    }

    pub(crate) fn destroy(&self) -> Result<()> {
        let leaves = self.owned_leaves();
        let all_pids = |leaves: &[PathBuf]| -> Result<BTreeSet<i32>> {
            let mut v = Vec::new();
            for d in leaves {
                fs::procs_recursive(d, &mut v)?;
            }
            Ok(v.into_iter().collect())
        };
        if !all_pids(&leaves)?.is_empty() {
            if let Some(u) = self.unified_dir().filter(|d| leaves.contains(d)) {
                // cgroup.kill (5.14+) kills the whole subtree atomically,
                // forks racing with it included.
                let _ = fs::write_raw(&u.join("cgroup.kill"), "1");
            }
            let freezer = self
                .controller_dir("freezer")
                .filter(|d| leaves.contains(d));
            let emptied = fs::wait_until(SETTLE_TIMEOUT, || {
                let pids = all_pids(&leaves)?;
                if pids.is_empty() {
                    return Ok(true);
                }
                // Frozen, nothing can fork away from the kill.
                let frozen = freezer.is_some() && self.freeze().is_ok();
                crate::signal_each(&pids, nix::sys::signal::Signal::SIGKILL);
                if frozen {
                    let _ = self.thaw();
                }
                Ok(false)
            })?;
            if !emptied {
                return Err(Error::Timeout(format!(
                    "cgroup {}: processes {:?} still there {:?} after SIGKILL",
                    self.path,
                    all_pids(&leaves)?,
                    SETTLE_TIMEOUT
                )));
            }
        }
        remove_created(&self.created, &leaves)
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let d = |c: &str| self.controller_dir(c);
        let (cpu, cpuacct, cpuset, memory, pids, blkio, hugetlb) = (
            d("cpu"),
            d("cpuacct"),
            d("cpuset"),
            d("memory"),
            d("pids"),
            d("blkio"),
            d("hugetlb"),
        );
        stats::read_v1(&V1Dirs {
            cpu: cpu.as_deref(),
            cpuacct: cpuacct.as_deref(),
            cpuset: cpuset.as_deref(),
            memory: memory.as_deref(),
            pids: pids.as_deref(),
            blkio: blkio.as_deref(),
            hugetlb: hugetlb.as_deref(),
        })
    }

    pub(crate) fn oom_watcher(&self) -> Result<OomWatcher> {
        let dir = self.need("memory", "OOM notification")?;
        OomWatcher::v1(&dir)
    }
}

/// Removes what `create` made, children first. A leaf's nested cgroups
/// (the container's own) go with it; a parent berth made that now holds
/// someone else's cgroups is left alone.
pub(crate) fn remove_created(created: &[PathBuf], leaves: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    // Deepest first: directories are recorded as they were made, and a
    // leaf counted as berth's before its parents were made comes first.
    let mut order: Vec<&PathBuf> = created.iter().rev().collect();
    order.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in order {
        let res = if leaves.contains(dir) {
            fs::rmdir_cgroup(dir, true, 100)
        } else {
            match std::fs::remove_dir(dir) {
                Ok(()) => Ok(()),
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        || matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) =>
                {
                    Ok(())
                }
                Err(e) => Err(fs::io_err(dir, e)),
            }
        };
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn copy_cpuset_from_parent(parent: &Path, dir: &Path) -> Result<()> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let mine = read_opt(&dir.join(name))?.unwrap_or_default();
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs = read(&parent.join(name))?;
        if !theirs.trim().is_empty() {
            write(&dir.join(name), theirs.trim())?;
        }
    }
    Ok(())
}

/// The kernel's EBUSY says only "busy"; say what the usage is.
fn memory_limit_error(dir: &Path, limit: i64, e: Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EBUSY) => {
            let usage = read_u64_opt(&dir.join("memory.usage_in_bytes"))
                .ok()
                .flatten()
                .unwrap_or(0);
            Error::invalid(
                "linux.resources.memory.limit",
                format!("cannot set {limit}: the cgroup uses {usage} and cannot be reclaimed below it ({e})"),
            )
        }
        Some(libc::EINVAL) => {
            let memsw = read_opt(&dir.join("memory.memsw.limit_in_bytes"))
                .ok()
                .flatten()
                .unwrap_or_default();
            Error::invalid(
                "linux.resources.memory.limit",
                format!(
                    "the kernel refused {limit} ({e}); memory.memsw.limit_in_bytes is {}: \
                     set linux.resources.memory.swap as well",
                    memsw.trim()
                ),
            )
        }
        _ => e,
    }
}

/// rdma.max line for one device; `None` when it sets nothing.
pub(crate) fn rdma_value(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> Option<String> {
    let mut parts = vec![dev.to_string()];
    if let Some(h) = l.hca_handles() {
        parts.push(format!("hca_handle={h}"));
    }
    if let Some(o) = l.hca_objects() {
        parts.push(format!("hca_object={o}"));
    }
    (parts.len() > 1).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::{parse, select};

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn directories_per_hierarchy() {
        let h = select(&parse(HYBRID)).unwrap();
        let m = Manager::new("/berth/abc".into(), h.v1, h.v2);
        assert_eq!(m.layout(), Layout::Hybrid);
        assert_eq!(
            m.controller_dir("cpuacct").unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
        );
        assert_eq!(m.controller_dir("cpu"), m.controller_dir("cpuacct"));
        assert!(m.controller_dir("pids").is_none());
        assert_eq!(
            m.dirs(),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/abc"),
                PathBuf::from("/sys/fs/cgroup/cpuset/berth/abc"),
                PathBuf::from("/sys/fs/cgroup/memory/berth/abc"),
                PathBuf::from("/sys/fs/cgroup/unified/berth/abc"),
            ]
        );
        let e = m
            .need("pids", "linux.resources.pids.limit")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.pids.limit: the pids"), "{e}");
        // what the state file carries between commands
        let json = serde_json::to_string(&crate::Manager::V1(m.clone())).unwrap();
        let back: crate::Manager = serde_json::from_str(&json).unwrap();
        assert_eq!(back.dirs(), m.dirs());
        assert_eq!(back.path(), "/berth/abc");
    }

    #[test]
    fn unified_refused() {
        let h = select(&parse(HYBRID)).unwrap();
        let m = Manager::new("/berth/abc".into(), h.v1, h.v2);
        let r: LinuxResources = serde_json::from_str(r#"{"unified":{"memory.high":"1"}}"#).unwrap();
        let e = m.validate(&r).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.unified:"), "{e}");
        assert!(
            e.contains("invalid configuration: cannot use unified on cgroup v1"),
            "{e}"
        );
    }
}
