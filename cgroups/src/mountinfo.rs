//! The part of /proc/self/mountinfo berth cares about: which cgroup
//! hierarchies are mounted, where, and with which controllers.

use std::path::PathBuf;

use crate::Layout;

/// The v1 controllers berth joins. Anything else mounted as a v1 hierarchy
/// (a named hierarchy of another tool, say) is left alone, except the named
/// `systemd` hierarchy, which runc joins too so that tools tracking processes
/// through it see the container.
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
    "name=systemd",
];

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that is visible at `mount_point`.
    pub root: String,
    /// `None` for cgroup2; the v1 controllers (and `name=...`) otherwise.
    pub controllers: Option<Vec<String>>,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if v <= 255 {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text into its cgroup mounts, in mount order. Malformed
/// lines are skipped: one odd line must not hide every hierarchy.
pub(crate) fn parse(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        if left.len() < 6 || right.is_empty() {
            continue;
        }
        let fstype = right[0];
        let root = unescape(left[3]);
        let mount_point = PathBuf::from(unescape(left[4]));
        match fstype {
            "cgroup2" => mounts.push(CgroupMount {
                mount_point,
                root,
                controllers: None,
            }),
            "cgroup" => {
                let superopts = right.get(2).copied().unwrap_or("");
                let controllers: Vec<String> = superopts
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                mounts.push(CgroupMount {
                    mount_point,
                    root,
                    controllers: Some(controllers),
                });
            }
            _ => {}
        }
    }
    mounts
}

/// The hierarchies berth would use, deduplicated: the same hierarchy is
/// often visible at several places (bind mounts into containers), and the
/// first mount of each wins, preferring those under /sys/fs/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchies {
    pub layout: Layout,
    pub v1: Vec<CgroupMount>,
    pub v2: Option<CgroupMount>,
}

pub(crate) fn select(mounts: &[CgroupMount]) -> Option<Hierarchies> {
    let preferred = |m: &&CgroupMount| m.mount_point.starts_with("/sys/fs/cgroup");
    let mut ordered: Vec<&CgroupMount> = mounts.iter().filter(preferred).collect();
    ordered.extend(mounts.iter().filter(|m| !preferred(m)));

    let mut v1: Vec<CgroupMount> = Vec::new();
    let mut v2: Option<CgroupMount> = None;
    for m in ordered {
        match &m.controllers {
            None => {
                // /sys/fs/cgroup itself beats any other cgroup2 mount: it is
                // where a unified host keeps its hierarchy.
                let better = match &v2 {
                    None => true,
                    Some(cur) => {
                        cur.mount_point != std::path::Path::new("/sys/fs/cgroup")
                            && m.mount_point == std::path::Path::new("/sys/fs/cgroup")
                    }
                };
                if better {
                    v2 = Some(m.clone());
                }
            }
            Some(ctrls) => {
                let used: Vec<&String> = ctrls
                    .iter()
                    .filter(|c| V1_CONTROLLERS.contains(&c.as_str()))
                    .collect();
                if used.is_empty() {
                    continue;
                }
                let dup = v1.iter().any(|h| {
                    h.controllers
                        .as_ref()
                        .is_some_and(|hc| hc.iter().any(|c| ctrls.contains(c)))
                });
                if !dup {
                    v1.push(m.clone());
                }
            }
        }
    }
    let has_real_v1 = v1.iter().any(|m| {
        m.controllers
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| !c.starts_with("name=")))
    });
    let layout = match (has_real_v1, v2.is_some()) {
        (true, true) => Layout::Hybrid,
        (true, false) => Layout::Legacy,
        (false, true) => Layout::Unified,
        (false, false) => return None,
    };
    if layout == Layout::Unified {
        // A leftover named v1 hierarchy on a unified host is not used.
        v1.clear();
    }
    Some(Hierarchies { layout, v1, v2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const LEGACY: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
99 40 0:27 /docker /var/lib/x/memory rw,relatime - cgroup cgroup rw,memory
";

    const UNIFIED: &str = "\
24 18 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 24 0:22 / /tmp/other\\040dir rw - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout() {
        let h = select(&parse(HYBRID)).unwrap();
        assert_eq!(h.layout, Layout::Hybrid);
        assert_eq!(h.v1.len(), 9);
        assert_eq!(
            h.v2.unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let names: Vec<String> =
            h.v1.iter()
                .flat_map(|m| m.controllers.clone().unwrap())
                .collect();
        assert!(names.contains(&"name=systemd".to_string()));
        assert!(names.contains(&"freezer".to_string()));
    }

    #[test]
    fn legacy_layout_with_comounts_and_duplicates() {
        let mounts = parse(LEGACY);
        assert_eq!(mounts.len(), 6);
        let h = select(&mounts).unwrap();
        assert_eq!(h.layout, Layout::Legacy);
        assert!(h.v2.is_none());
        // the bind-mounted duplicate of memory is dropped
        assert_eq!(h.v1.len(), 5);
        let cpu =
            h.v1.iter()
                .find(|m| m.controllers.as_ref().unwrap().contains(&"cpu".into()))
                .unwrap();
        assert_eq!(cpu.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            cpu.controllers.as_ref().unwrap(),
            &vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        // superopts that are not controllers are not mistaken for them
        let sd =
            h.v1.iter()
                .find(|m| m.mount_point.ends_with("systemd"))
                .unwrap();
        assert_eq!(
            sd.controllers.as_ref().unwrap(),
            &vec!["name=systemd".to_string()]
        );
        assert_eq!(parse(LEGACY)[5].root, "/docker");
    }

    #[test]
    fn unified_layout() {
        let mounts = parse(UNIFIED);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/tmp/other dir"));
        let h = select(&mounts).unwrap();
        assert_eq!(h.layout, Layout::Unified);
        assert_eq!(h.v2.unwrap().mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert!(h.v1.is_empty());
    }

    #[test]
    fn nothing_mounted() {
        assert!(select(&parse("22 28 0:21 / /sys rw - sysfs sysfs rw\ngarbage\n")).is_none());
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
