//! Checks and conversions of `linux.resources` that do not depend on the
//! cgroup version.

use oci_spec::runtime::LinuxResources;

use crate::{Error, Result};

/// cpu.shares (v1, 2..=262144) to cpu.weight (v2, 1..=10000), with runc's
/// linear formula, so that a container gets the same weight under either
/// runtime. 0 means "not set".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (v1, 10..=1000) to io.weight (v2, 1..=10000), as runc does.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(10, 1000);
    1 + ((weight - 10) * 9999) / 990
}

/// OCI's swap is memory+swap (the v1 memsw semantics); v2's memory.swap.max
/// counts swap alone. Returns the value for memory.swap.max: `None` to leave
/// it alone, `Some(-1)` for "max".
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    const FIELD: &str = "linux.resources.memory.swap";
    let swap = swap.unwrap_or(0);
    let limit = limit.unwrap_or(0);
    // Unlimited memory with no word on swap: unlimited swap too, as on v1
    // where memsw follows the memory limit.
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        s if s < -1 => Err(Error::invalid(FIELD, format!("{s} is negative"))),
        s => {
            if limit == 0 || limit == -1 {
                return Err(Error::invalid(
                    FIELD,
                    "a swap limit needs a memory limit (linux.resources.memory.limit)",
                ));
            }
            if s < limit {
                return Err(Error::invalid(
                    FIELD,
                    format!(
                        "{s} is below the memory limit {limit}: swap is the memory+swap \
                         total, so it must be >= linux.resources.memory.limit"
                    ),
                ));
            }
            Ok(Some(s - limit))
        }
    }
}

/// Parses a cpuset list ("0-3,8,10-11") into its members.
pub fn parse_cpuset(list: &str) -> std::result::Result<Vec<u32>, String> {
    let list = list.trim();
    let mut out = Vec::new();
    if list.is_empty() {
        return Ok(out);
    }
    for part in list.split(',') {
        let part = part.trim();
        let num = |s: &str| -> std::result::Result<u32, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} in {list:?} is not a number"));
            }
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} in {list:?} is out of range"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part:?} in {list:?} is reversed"));
                }
                if b - a > 1 << 16 {
                    return Err(format!("range {part:?} in {list:?} is too large"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// "2MB", "1GB", "64KB": the form of OCI hugepage sizes and of the kernel's
/// hugetlb file names.
pub fn valid_page_size(size: &str) -> bool {
    let Some(num) = size
        .strip_suffix("KB")
        .or_else(|| size.strip_suffix("MB"))
        .or_else(|| size.strip_suffix("GB"))
    else {
        return false;
    };
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && !num.starts_with('0')
}

fn check_limit(field: &str, v: Option<i64>) -> Result<()> {
    match v {
        Some(v) if v < -1 => Err(Error::invalid(
            field,
            format!("{v} is negative (-1 means unlimited)"),
        )),
        _ => Ok(()),
    }
}

fn check_devnum(field: &str, v: i64) -> Result<()> {
    if !(0..=u32::MAX as i64).contains(&v) {
        return Err(Error::invalid(field, format!("{v} is not a device number")));
    }
    Ok(())
}

/// What is wrong whatever the cgroup version.
pub fn validate_common(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        check_limit("linux.resources.memory.limit", m.limit())?;
        check_limit("linux.resources.memory.reservation", m.reservation())?;
        check_limit("linux.resources.memory.swap", m.swap())?;
        check_limit("linux.resources.memory.kernelTCP", m.kernel_tcp())?;
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::invalid(
                    "linux.resources.memory.swappiness",
                    format!("{s} is above 100"),
                ));
            }
        }
        if let (Some(swap), Some(limit)) = (m.swap(), m.limit()) {
            if swap > 0 && limit > 0 && swap < limit {
                return Err(Error::invalid(
                    "linux.resources.memory.swap",
                    format!(
                        "{swap} is below the memory limit {limit}: swap is the memory+swap \
                         total, so it must be >= linux.resources.memory.limit"
                    ),
                ));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(q) = c.quota() {
            if q < -1 {
                return Err(Error::invalid(
                    "linux.resources.cpu.quota",
                    format!("{q} is negative (-1 means unlimited)"),
                ));
            }
            if q > 0 && q < 1000 {
                return Err(Error::invalid(
                    "linux.resources.cpu.quota",
                    format!("{q} is below the kernel's minimum of 1000 (1 ms)"),
                ));
            }
            // The kernel's bandwidth limit (MAX_BW: 2^44 - 1 microseconds).
            if q > (1 << 44) - 1 {
                return Err(Error::invalid(
                    "linux.resources.cpu.quota",
                    format!("{q} is above the kernel's maximum of {}", (1i64 << 44) - 1),
                ));
            }
        }
        if let Some(p) = c.period() {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(Error::invalid(
                    "linux.resources.cpu.period",
                    format!("{p} is outside 1000..=1000000 microseconds"),
                ));
            }
        }
        if let Some(i) = c.idle() {
            if i != 0 && i != 1 {
                return Err(Error::invalid(
                    "linux.resources.cpu.idle",
                    format!("{i} is neither 0 nor 1"),
                ));
            }
        }
        if let Some(rt) = c.realtime_runtime() {
            check_limit("linux.resources.cpu.realtimeRuntime", Some(rt))?;
        }
        if let Some(cpus) = c.cpus() {
            parse_cpuset(cpus).map_err(|e| Error::invalid("linux.resources.cpu.cpus", e))?;
        }
        if let Some(mems) = c.mems() {
            parse_cpuset(mems).map_err(|e| Error::invalid("linux.resources.cpu.mems", e))?;
        }
    }
    if let Some(b) = r.block_io() {
        let weight_ok = |field: &str, w: Option<u16>| match w {
            Some(w) if w != 0 && !(10..=1000).contains(&w) => {
                Err(Error::invalid(field, format!("{w} is outside 10..=1000")))
            }
            _ => Ok(()),
        };
        weight_ok("linux.resources.blockIO.weight", b.weight())?;
        weight_ok("linux.resources.blockIO.leafWeight", b.leaf_weight())?;
        for d in b.weight_device().iter().flatten() {
            let f = "linux.resources.blockIO.weightDevice";
            check_devnum(&format!("{f}.major"), d.major())?;
            check_devnum(&format!("{f}.minor"), d.minor())?;
            weight_ok(&format!("{f}.weight"), d.weight())?;
            weight_ok(&format!("{f}.leafWeight"), d.leaf_weight())?;
        }
        for (name, list) in [
            ("throttleReadBpsDevice", b.throttle_read_bps_device()),
            ("throttleWriteBpsDevice", b.throttle_write_bps_device()),
            ("throttleReadIOPSDevice", b.throttle_read_iops_device()),
            ("throttleWriteIOPSDevice", b.throttle_write_iops_device()),
        ] {
            for d in list.iter().flatten() {
                check_devnum(&format!("linux.resources.blockIO.{name}.major"), d.major())?;
                check_devnum(&format!("linux.resources.blockIO.{name}.minor"), d.minor())?;
            }
        }
    }
    if let Some(p) = r.pids() {
        // pids.max holds at most PID_MAX_LIMIT (2^22); -1 and 0 are
        // "unlimited"/"unset".
        let l = p.limit();
        if !(-1..=1 << 22).contains(&l) {
            return Err(Error::invalid(
                "linux.resources.pids.limit",
                format!("{l} is outside -1..={} (the kernel's maximum)", 1 << 22),
            ));
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        if !valid_page_size(h.page_size()) {
            return Err(Error::invalid(
                "linux.resources.hugepageLimits.pageSize",
                format!("{:?} is not a size like \"2MB\" or \"1GB\"", h.page_size()),
            ));
        }
        check_limit("linux.resources.hugepageLimits.limit", Some(h.limit()))?;
    }
    if let Some(devs) = r.devices() {
        crate::devices::rules_from_oci(devs)?;
    }
    if let Some(u) = r.unified() {
        for key in u.keys() {
            validate_unified_key(key)?;
        }
    }
    Ok(())
}

/// A key of `linux.resources.unified` must name a plain file of the
/// container's own cgroup, and not one through which processes are moved
/// or the cgroup tree is shaped: those belong to the runtime.
fn validate_unified_key(key: &str) -> Result<()> {
    let field = format!("linux.resources.unified[{key:?}]");
    if key.is_empty() || key.contains('/') || key.starts_with('.') || key.contains('\0') {
        return Err(Error::invalid(field, "is not a cgroup file name"));
    }
    if !key.contains('.') {
        return Err(Error::invalid(
            field,
            "is not a cgroup interface file (\"<controller>.<name>\")",
        ));
    }
    if matches!(
        key,
        "cgroup.procs"
            | "cgroup.threads"
            | "cgroup.subtree_control"
            | "cgroup.kill"
            | "cgroup.type"
    ) {
        return Err(Error::invalid(field, "is managed by the runtime"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn shares_weight_conversion() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // out-of-range shares are clamped as the v1 kernel would
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 40), 10_000);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(None, None).unwrap(), None);
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn cpuset_lists() {
        assert_eq!(
            parse_cpuset("0-3,5,7-8\n").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpuset("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpuset("1").unwrap(), vec![1]);
        for bad in ["a", "1-", "-1", "3-1", "1,,2", "1 2", "0x1", "1-2-3"] {
            assert!(parse_cpuset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes() {
        for ok in ["2MB", "1GB", "64KB", "16GB"] {
            assert!(valid_page_size(ok), "{ok}");
        }
        for bad in ["2M", "MB", "02MB", "2mb", "2 MB", ""] {
            assert!(!valid_page_size(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_fields() {
        let cases = [
            (r#"{"memory":{"limit":-5}}"#, "linux.resources.memory.limit"),
            (
                r#"{"memory":{"limit":100,"swap":50}}"#,
                "linux.resources.memory.swap",
            ),
            (
                r#"{"memory":{"swappiness":101}}"#,
                "linux.resources.memory.swappiness",
            ),
            (r#"{"cpu":{"cpus":"3-1"}}"#, "linux.resources.cpu.cpus"),
            (r#"{"cpu":{"mems":"x"}}"#, "linux.resources.cpu.mems"),
            (r#"{"cpu":{"quota":500}}"#, "linux.resources.cpu.quota"),
            (r#"{"cpu":{"quota":-7}}"#, "linux.resources.cpu.quota"),
            (r#"{"cpu":{"period":10}}"#, "linux.resources.cpu.period"),
            (r#"{"cpu":{"idle":2}}"#, "linux.resources.cpu.idle"),
            (
                r#"{"blockIO":{"weight":5}}"#,
                "linux.resources.blockIO.weight",
            ),
            (
                r#"{"blockIO":{"throttleReadBpsDevice":[{"major":-1,"minor":0,"rate":1}]}}"#,
                "linux.resources.blockIO.throttleReadBpsDevice.major",
            ),
            (
                r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#,
                "linux.resources.hugepageLimits.pageSize",
            ),
            (
                r#"{"devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]}"#,
                "linux.resources.devices",
            ),
            (r#"{"unified":{"../x":"1"}}"#, "linux.resources.unified"),
            (
                r#"{"unified":{"cgroup.procs":"1"}}"#,
                "linux.resources.unified",
            ),
        ];
        for (json, field) in cases {
            let e = validate_common(&res(json)).unwrap_err().to_string();
            assert!(e.starts_with(field), "{json}: {e}");
        }
        validate_common(&res(
            r#"{"memory":{"limit":1048576,"swap":2097152,"swappiness":10},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
                "pids":{"limit":10},
                "blockIO":{"weight":500},
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}],
                "unified":{"memory.high":"1000000"}}"#,
        ))
        .unwrap();
    }
}
