//! berth's cgroup stats as the metrics types containerd decodes from a
//! Stats reply: io.containerd.cgroups.v1.Metrics on v1 and hybrid hosts,
//! io.containerd.cgroups.v2.Metrics on unified ones.

use berth_cgroups::stats::{BlkioEntry, Stats};
use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use protobuf::well_known_types::any::Any;
use protobuf::MessageField;

pub fn to_any(s: &Stats, unified: bool) -> Any {
    if unified {
        crate::events::any("io.containerd.cgroups.v2", &to_v2(s))
    } else {
        crate::events::any("io.containerd.cgroups.v1", &to_v1(s))
    }
}

fn raw(s: &Stats, k: &str) -> u64 {
    s.memory.raw.get(k).copied().unwrap_or(0)
}

fn to_v1(s: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut cpu = v1::CPUStat::new();
    let mut u = v1::CPUUsage::new();
    u.total = s.cpu.usage.total;
    u.kernel = s.cpu.usage.kernel;
    u.user = s.cpu.usage.user;
    u.per_cpu = s.cpu.usage.percpu.clone();
    cpu.usage = MessageField::some(u);
    let mut t = v1::Throttle::new();
    t.periods = s.cpu.throttling.periods;
    t.throttled_periods = s.cpu.throttling.throttled_periods;
    t.throttled_time = s.cpu.throttling.throttled_time;
    cpu.throttling = MessageField::some(t);
    m.cpu = MessageField::some(cpu);

    let entry = |e: &berth_cgroups::stats::MemoryEntry| {
        let mut x = v1::MemoryEntry::new();
        x.limit = e.limit;
        x.usage = e.usage;
        x.max = e.max;
        x.failcnt = e.failcnt;
        x
    };
    let mut mem = v1::MemoryStat::new();
    mem.cache = s.memory.cache;
    mem.rss = raw(s, "rss");
    mem.rss_huge = raw(s, "rss_huge");
    mem.mapped_file = raw(s, "mapped_file");
    mem.dirty = raw(s, "dirty");
    mem.writeback = raw(s, "writeback");
    mem.pg_fault = raw(s, "pgfault");
    mem.pg_maj_fault = raw(s, "pgmajfault");
    mem.inactive_anon = raw(s, "inactive_anon");
    mem.active_anon = raw(s, "active_anon");
    mem.inactive_file = raw(s, "inactive_file");
    mem.active_file = raw(s, "active_file");
    mem.unevictable = raw(s, "unevictable");
    mem.hierarchical_memory_limit = raw(s, "hierarchical_memory_limit");
    mem.total_cache = raw(s, "total_cache");
    mem.total_rss = raw(s, "total_rss");
    mem.total_inactive_file = raw(s, "total_inactive_file");
    mem.usage = MessageField::some(entry(&s.memory.usage));
    mem.swap = MessageField::some(entry(&s.memory.swap));
    mem.kernel = MessageField::some(entry(&s.memory.kernel));
    mem.kernel_tcp = MessageField::some(entry(&s.memory.kernel_tcp));
    m.memory = MessageField::some(mem);

    let mut p = v1::PidsStat::new();
    p.current = s.pids.current;
    p.limit = s.pids.limit;
    m.pids = MessageField::some(p);

    let list = |v: &[BlkioEntry]| {
        v.iter()
            .map(|e| {
                let mut x = v1::BlkIOEntry::new();
                x.major = e.major;
                x.minor = e.minor;
                x.op = e.op.clone();
                x.value = e.value;
                x
            })
            .collect::<Vec<_>>()
    };
    let mut b = v1::BlkIOStat::new();
    b.io_service_bytes_recursive = list(&s.blkio.io_service_bytes_recursive);
    b.io_serviced_recursive = list(&s.blkio.io_serviced_recursive);
    b.io_queued_recursive = list(&s.blkio.io_queued_recursive);
    b.io_service_time_recursive = list(&s.blkio.io_service_time_recursive);
    b.io_wait_time_recursive = list(&s.blkio.io_wait_time_recursive);
    b.io_merged_recursive = list(&s.blkio.io_merged_recursive);
    b.io_time_recursive = list(&s.blkio.io_time_recursive);
    b.sectors_recursive = list(&s.blkio.sectors_recursive);
    m.blkio = MessageField::some(b);

    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut x = v1::HugetlbStat::new();
            x.pagesize = size.clone();
            x.usage = h.usage;
            x.max = h.max;
            x.failcnt = h.failcnt;
            x
        })
        .collect();
    m
}

fn to_v2(s: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut cpu = v2::CPUStat::new();
    cpu.usage_usec = s.cpu.usage.total / 1000;
    cpu.user_usec = s.cpu.usage.user / 1000;
    cpu.system_usec = s.cpu.usage.kernel / 1000;
    cpu.nr_periods = s.cpu.throttling.periods;
    cpu.nr_throttled = s.cpu.throttling.throttled_periods;
    cpu.throttled_usec = s.cpu.throttling.throttled_time / 1000;
    m.cpu = MessageField::some(cpu);

    let mut mem = v2::MemoryStat::new();
    mem.anon = raw(s, "anon");
    mem.file = raw(s, "file");
    mem.kernel_stack = raw(s, "kernel_stack");
    mem.slab = raw(s, "slab");
    mem.sock = raw(s, "sock");
    mem.shmem = raw(s, "shmem");
    mem.file_mapped = raw(s, "file_mapped");
    mem.file_dirty = raw(s, "file_dirty");
    mem.file_writeback = raw(s, "file_writeback");
    mem.inactive_anon = raw(s, "inactive_anon");
    mem.active_anon = raw(s, "active_anon");
    mem.inactive_file = raw(s, "inactive_file");
    mem.active_file = raw(s, "active_file");
    mem.unevictable = raw(s, "unevictable");
    mem.pgfault = raw(s, "pgfault");
    mem.pgmajfault = raw(s, "pgmajfault");
    mem.usage = s.memory.usage.usage;
    mem.usage_limit = s.memory.usage.limit;
    mem.max_usage = s.memory.usage.max;
    // berth reports memory+swap (v1's memsw); v2 wants swap alone.
    mem.swap_usage = s.memory.swap.usage.saturating_sub(s.memory.usage.usage);
    mem.swap_limit = s.memory.swap.limit;
    m.memory = MessageField::some(mem);

    let mut p = v2::PidsStat::new();
    p.current = s.pids.current;
    p.limit = s.pids.limit;
    m.pids = MessageField::some(p);

    let mut devs: std::collections::BTreeMap<(u64, u64), v2::IOEntry> = Default::default();
    for (list, bytes) in [
        (&s.blkio.io_service_bytes_recursive, true),
        (&s.blkio.io_serviced_recursive, false),
    ] {
        for e in list {
            let d = devs.entry((e.major, e.minor)).or_insert_with(|| {
                let mut x = v2::IOEntry::new();
                x.major = e.major;
                x.minor = e.minor;
                x
            });
            match (e.op.to_ascii_lowercase().as_str(), bytes) {
                ("read", true) => d.rbytes = e.value,
                ("write", true) => d.wbytes = e.value,
                ("read", false) => d.rios = e.value,
                ("write", false) => d.wios = e.value,
                _ => {}
            }
        }
    }
    let mut io = v2::IOStat::new();
    io.usage = devs.into_values().collect();
    m.io = MessageField::some(io);

    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut x = v2::HugeTlbStat::new();
            x.pagesize = size.clone();
            x.current = h.usage;
            x.max = h.max;
            x.failcnt = h.failcnt;
            x
        })
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_the_type_containerd_decodes() {
        let mut s = Stats::default();
        s.pids.current = 3;
        s.memory.usage.usage = 4096;
        let a = to_any(&s, false);
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let m: v1::Metrics = protobuf::Message::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.memory.usage.usage, 4096);
        let a = to_any(&s, true);
        assert_eq!(a.type_url, "io.containerd.cgroups.v2.Metrics");
        let m: v2::Metrics = protobuf::Message::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.memory.usage, 4096);
    }
}
