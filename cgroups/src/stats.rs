//! Usage counters, shaped like the `data` object of runc's
//! `events --stats` output (runc's `types.Stats`), field names and
//! omitted-when-zero fields included, so tools reading runc's JSON read
//! berth's.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fs::{keyed, parse_flat_keyed, parse_u64, read_opt, read_u64_opt};
use crate::Result;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// memory+swap, on v2 too (v1's memsw semantics).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Always empty: berth does not manage Intel RDT; present so the JSON has
/// runc's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntelRdt {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

// ---------------------------------------------------------------- parsers

/// "1 2 3" (cpuacct.usage_percpu).
pub(crate) fn parse_u64_list(text: &str) -> Vec<u64> {
    text.split_whitespace().filter_map(parse_u64).collect()
}

pub(crate) fn cpuset_u16(text: &str) -> Vec<u16> {
    crate::resources::parse_cpuset(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| u16::try_from(v).ok())
        .collect()
}

/// v1 blkio files: "8:0 Read 4096" lines and a closing "Total N".
pub(crate) fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((maj, min)) = f.first().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        let (op, value) = match f.len() {
            3 => (f[1].to_string(), f[2].parse().unwrap_or(0)),
            // blkio.time / blkio.sectors have no operation column
            2 => (String::new(), f[1].parse().unwrap_or(0)),
            _ => continue,
        };
        out.push(BlkioEntry {
            major,
            minor,
            op,
            value,
        });
    }
    out
}

/// v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
pub(crate) fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

fn u64_file(dir: &Path, name: &str) -> Result<u64> {
    Ok(read_u64_opt(&dir.join(name))?.unwrap_or(0))
}

fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
}

/// The hugetlb page sizes the controller in `dir` knows ("2MB", "1GB").
pub(crate) fn hugetlb_page_sizes(dir: &Path, v2: bool) -> Vec<String> {
    hugetlb_sizes(dir, if v2 { ".max" } else { ".limit_in_bytes" })
}

// ----------------------------------------------------------------- v1

/// The v1 directories stats are read from; `None` for what is not mounted.
pub(crate) struct V1Dirs<'a> {
    pub cpu: Option<&'a Path>,
    pub cpuacct: Option<&'a Path>,
    pub cpuset: Option<&'a Path>,
    pub memory: Option<&'a Path>,
    pub pids: Option<&'a Path>,
    pub blkio: Option<&'a Path>,
    pub hugetlb: Option<&'a Path>,
}

fn memory_entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    Ok(MemoryEntry {
        limit: u64_file(dir, &format!("{prefix}.limit_in_bytes"))?,
        usage: u64_file(dir, &format!("{prefix}.usage_in_bytes"))?,
        max: u64_file(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: u64_file(dir, &format!("{prefix}.failcnt"))?,
    })
}

/// USER_HZ ticks (cpuacct.stat) to nanoseconds.
fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    ticks.saturating_mul(1_000_000_000 / hz)
}

pub(crate) fn read_v1(d: &V1Dirs) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(dir) = d.cpuacct {
        s.cpu.usage.total = u64_file(dir, "cpuacct.usage")?;
        let list = |name: &str| -> Result<Vec<u64>> {
            Ok(read_opt(&dir.join(name))?
                .map(|t| parse_u64_list(&t))
                .unwrap_or_default())
        };
        s.cpu.usage.percpu = list("cpuacct.usage_percpu")?;
        s.cpu.usage.percpu_kernel = list("cpuacct.usage_percpu_sys")?;
        s.cpu.usage.percpu_user = list("cpuacct.usage_percpu_user")?;
        if let Some(t) = read_opt(&dir.join("cpuacct.stat"))? {
            s.cpu.usage.user = ticks_to_ns(keyed(&t, "user").unwrap_or(0));
            s.cpu.usage.kernel = ticks_to_ns(keyed(&t, "system").unwrap_or(0));
        }
    }
    if let Some(dir) = d.cpu {
        if let Some(t) = read_opt(&dir.join("cpu.stat"))? {
            s.cpu.throttling = Throttling {
                periods: keyed(&t, "nr_periods").unwrap_or(0),
                throttled_periods: keyed(&t, "nr_throttled").unwrap_or(0),
                throttled_time: keyed(&t, "throttled_time").unwrap_or(0),
            };
        }
    }
    if let Some(dir) = d.cpuset {
        s.cpuset = read_cpuset(dir, "cpuset.cpus", "cpuset.mems", true)?;
    }
    if let Some(dir) = d.memory {
        if let Some(t) = read_opt(&dir.join("memory.stat"))? {
            s.memory.raw = parse_flat_keyed(&t).into_iter().collect();
        }
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
        s.memory.usage = memory_entry_v1(dir, "memory")?;
        s.memory.swap = memory_entry_v1(dir, "memory.memsw")?;
        s.memory.kernel = memory_entry_v1(dir, "memory.kmem")?;
        s.memory.kernel_tcp = memory_entry_v1(dir, "memory.kmem.tcp")?;
    }
    if let Some(dir) = d.pids {
        s.pids = read_pids(dir)?;
    }
    if let Some(dir) = d.blkio {
        // CFQ's files, gone with CFQ in 5.0; then BFQ's; then the
        // throttling layer's, which count every device.
        for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
            let bytes = read_opt(&dir.join(format!("{prefix}io_service_bytes_recursive")))?;
            let Some(bytes) = bytes else { continue };
            s.blkio.io_service_bytes_recursive = parse_blkio_v1(&bytes);
            let ios = read_opt(&dir.join(format!("{prefix}io_serviced_recursive")))?;
            s.blkio.io_serviced_recursive = parse_blkio_v1(&ios.unwrap_or_default());
            if prefix == "blkio." {
                let more = |name: &str| -> Result<Vec<BlkioEntry>> {
                    Ok(parse_blkio_v1(
                        &read_opt(&dir.join(format!("blkio.{name}")))?.unwrap_or_default(),
                    ))
                };
                s.blkio.io_queued_recursive = more("io_queued_recursive")?;
                s.blkio.io_service_time_recursive = more("io_service_time_recursive")?;
                s.blkio.io_wait_time_recursive = more("io_wait_time_recursive")?;
                s.blkio.io_merged_recursive = more("io_merged_recursive")?;
                s.blkio.io_time_recursive = more("time_recursive")?;
                s.blkio.sectors_recursive = more("sectors_recursive")?;
            }
            break;
        }
    }
    if let Some(dir) = d.hugetlb {
        for size in hugetlb_page_sizes(dir, false) {
            let f = |what: &str| u64_file(dir, &format!("hugetlb.{size}.{what}"));
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: f("usage_in_bytes")?,
                    max: f("max_usage_in_bytes")?,
                    failcnt: f("failcnt")?,
                },
            );
        }
    }
    Ok(s)
}

fn read_cpuset(dir: &Path, cpus: &str, mems: &str, v1: bool) -> Result<CpuSet> {
    let list = |name: &str| -> Result<Vec<u16>> {
        Ok(read_opt(&dir.join(name))?
            .map(|t| cpuset_u16(&t))
            .unwrap_or_default())
    };
    let mut c = CpuSet {
        cpus: list(cpus)?,
        mems: list(mems)?,
        ..CpuSet::default()
    };
    if v1 {
        let n = |name: &str| u64_file(dir, &format!("cpuset.{name}"));
        c.cpu_exclusive = n("cpu_exclusive")?;
        c.mem_hardwall = n("mem_hardwall")?;
        c.mem_exclusive = n("mem_exclusive")?;
        c.memory_migrate = n("memory_migrate")?;
        c.memory_spread_page = n("memory_spread_page")?;
        c.memory_spread_slab = n("memory_spread_slab")?;
        c.memory_pressure = n("memory_pressure")?;
        c.sched_load_balance = n("sched_load_balance")?;
        c.sched_relax_domain_level = read_opt(&dir.join("cpuset.sched_relax_domain_level"))?
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
    }
    Ok(c)
}

fn read_pids(dir: &Path) -> Result<Pids> {
    let limit = u64_file(dir, "pids.max")?;
    Ok(Pids {
        current: u64_file(dir, "pids.current")?,
        limit: if limit == u64::MAX { 0 } else { limit },
    })
}

// ----------------------------------------------------------------- v2

pub(crate) fn read_v2(dir: &Path) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(t) = read_opt(&dir.join("cpu.stat"))? {
        let k = |key: &str| keyed(&t, key).unwrap_or(0);
        s.cpu.usage.total = k("usage_usec").saturating_mul(1000);
        s.cpu.usage.user = k("user_usec").saturating_mul(1000);
        s.cpu.usage.kernel = k("system_usec").saturating_mul(1000);
        s.cpu.throttling = Throttling {
            periods: k("nr_periods"),
            throttled_periods: k("nr_throttled"),
            throttled_time: k("throttled_usec").saturating_mul(1000),
        };
    }
    s.cpuset = read_cpuset(dir, "cpuset.cpus.effective", "cpuset.mems.effective", false)?;
    if let Some(t) = read_opt(&dir.join("memory.stat"))? {
        s.memory.raw = parse_flat_keyed(&t).into_iter().collect();
        s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
        let events = read_opt(&dir.join("memory.events"))?.unwrap_or_default();
        s.memory.usage = MemoryEntry {
            limit: u64_file(dir, "memory.max")?,
            usage: u64_file(dir, "memory.current")?,
            max: u64_file(dir, "memory.peak")?,
            failcnt: keyed(&events, "max").unwrap_or(0),
        };
        // Reported as memory+swap, the v1 meaning of "swap".
        if let Some(swap) = read_u64_opt(&dir.join("memory.swap.current"))? {
            let limit = u64_file(dir, "memory.swap.max")?;
            let swap_events = read_opt(&dir.join("memory.swap.events"))?.unwrap_or_default();
            s.memory.swap = MemoryEntry {
                usage: swap.saturating_add(s.memory.usage.usage),
                limit: if limit == u64::MAX || s.memory.usage.limit == u64::MAX {
                    u64::MAX
                } else {
                    limit + s.memory.usage.limit
                },
                max: u64_file(dir, "memory.swap.peak")?,
                failcnt: keyed(&swap_events, "max").unwrap_or(0),
            };
        }
    }
    if dir.join("pids.current").exists() {
        s.pids = read_pids(dir)?;
    }
    if let Some(t) = read_opt(&dir.join("io.stat"))? {
        let (bytes, ios) = parse_io_stat(&t);
        s.blkio.io_service_bytes_recursive = bytes;
        s.blkio.io_serviced_recursive = ios;
    }
    for size in hugetlb_page_sizes(dir, true) {
        let events = read_opt(&dir.join(format!("hugetlb.{size}.events")))?.unwrap_or_default();
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: u64_file(dir, &format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: keyed(&events, "max").unwrap_or(0),
            },
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_v1_lines() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Async 2\n8:0 Total 12288\nTotal 12288\n";
        let e = parse_blkio_v1(t);
        assert_eq!(e.len(), 5);
        assert_eq!(
            e[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        let e = parse_blkio_v1("8:16 77\n");
        assert_eq!(e[0].op, "");
        assert_eq!(e[0].value, 77);
    }

    #[test]
    fn io_stat_v2() {
        let (b, i) = parse_io_stat(
            "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n253:1 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        assert_eq!(b.len(), 4);
        assert_eq!(i.len(), 4);
        assert_eq!((b[1].op.as_str(), b[1].value), ("Write", 2048));
        assert_eq!((i[2].major, i[2].minor, i[2].value), (253, 1, 1));
    }

    #[test]
    fn flat_keyed_and_lists() {
        let t = "cache 4096\nrss 8192\nmapped_file 0\nbogus\nhierarchical_memory_limit 9223372036854771712\n";
        let kv = parse_flat_keyed(t);
        assert_eq!(kv.len(), 4);
        assert_eq!(keyed(t, "rss"), Some(8192));
        assert_eq!(
            keyed("usage_usec 5\nnr_periods max\n", "nr_periods"),
            Some(u64::MAX)
        );
        assert_eq!(parse_u64_list("1 2 3 \n"), vec![1, 2, 3]);
        assert_eq!(cpuset_u16("0-2,5\n"), vec![0, 1, 2, 5]);
    }

    #[test]
    fn stats_from_v2_files() {
        let dir = std::env::temp_dir().join(format!("berth-stats-v2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |n: &str, v: &str| std::fs::write(dir.join(n), v).unwrap();
        w("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 7\n");
        w(
            "memory.stat",
            "anon 100\nfile 4096\nkernel_stack 16\nslab 8\n",
        );
        w("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        w("memory.max", "33554432\n");
        w("memory.current", "1000\n");
        w("memory.peak", "2000\n");
        w("memory.swap.current", "10\n");
        w("memory.swap.max", "max\n");
        w("pids.current", "4\n");
        w("pids.max", "max\n");
        w(
            "io.stat",
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
        );
        w("hugetlb.2MB.current", "0\n");
        w("hugetlb.2MB.max", "max\n");
        w("hugetlb.2MB.events", "max 0\n");
        w("cpuset.cpus.effective", "0-1\n");
        let s = read_v2(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.cpu.usage.total, 1_500_000);
        assert_eq!(s.cpu.usage.kernel, 500_000);
        assert_eq!(s.cpu.throttling.throttled_time, 7000);
        assert_eq!(s.memory.cache, 4096);
        assert_eq!(s.memory.usage.limit, 33_554_432);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.swap.usage, 1010);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.kernel, MemoryEntry::default(), "no v2 counterpart");
        assert_eq!(s.pids.current, 4);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert!(s.hugetlb.contains_key("2MB"));
        assert_eq!(s.cpuset.cpus, vec![0, 1]);

        // runc's JSON shape: omitempty fields dropped, others kept
        let j = serde_json::to_value(&s).unwrap();
        assert!(j["pids"].get("limit").is_none());
        assert_eq!(j["memory"]["usage"]["failcnt"], 3);
        assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
        assert!(j["network_interfaces"].is_null());
        assert_eq!(j["intel_rdt"], serde_json::json!({}));
        assert_eq!(j["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert!(j["memory"]["kernelTCP"].is_object());
        let back: Stats = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn stats_from_v1_files() {
        let dir = std::env::temp_dir().join(format!("berth-stats-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |n: &str, v: &str| std::fs::write(dir.join(n), v).unwrap();
        w("cpuacct.usage", "123456\n");
        w("cpuacct.usage_percpu", "100000 23456 \n");
        w("cpuacct.stat", "user 2\nsystem 1\n");
        w(
            "cpu.stat",
            "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n",
        );
        w("memory.stat", "cache 8192\nrss 4096\n");
        w("memory.limit_in_bytes", "33554432\n");
        w("memory.usage_in_bytes", "12288\n");
        w("memory.max_usage_in_bytes", "20000\n");
        w("memory.failcnt", "7\n");
        w("memory.memsw.limit_in_bytes", "33554432\n");
        w("pids.current", "3\n");
        w("pids.max", "10\n");
        w(
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        );
        w(
            "blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
        );
        w("hugetlb.2MB.limit_in_bytes", "9223372036854771712\n");
        w("hugetlb.2MB.usage_in_bytes", "0\n");
        w("hugetlb.2MB.failcnt", "0\n");
        let d = Some(dir.as_path());
        let s = read_v1(&V1Dirs {
            cpu: d,
            cpuacct: d,
            cpuset: None,
            memory: d,
            pids: d,
            blkio: d,
            hugetlb: d,
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.cpu.usage.total, 123_456);
        assert_eq!(s.cpu.usage.percpu, vec![100_000, 23_456]);
        assert_eq!(s.cpu.usage.user, ticks_to_ns(2));
        assert_eq!(s.cpu.throttling.throttled_periods, 1);
        assert_eq!(s.memory.cache, 8192);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.memory.swap.limit, 33_554_432);
        assert_eq!(s.memory.kernel, MemoryEntry::default());
        assert_eq!(
            s.pids,
            Pids {
                current: 3,
                limit: 10
            }
        );
        assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
        assert_eq!(s.hugetlb["2MB"].failcnt, 0);
    }
}
