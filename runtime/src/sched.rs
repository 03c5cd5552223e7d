//! Where and how the process runs: process.scheduler (sched_setattr),
//! process.ioPriority (ioprio_set), process.execCPUAffinity (exec only) and
//! linux.memoryPolicy (set_mempolicy). Each is checked before anything is
//! made and applied by the init; all of them survive execve.

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Scheduler,
};

use crate::error::{Error, Result};

/// The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// The runtime-spec's rules for process.scheduler.
pub fn validate_scheduler(s: &Scheduler) -> Result<()> {
    const F: &str = "process.scheduler";
    if let Some(n) = s.nice() {
        if !(-20..=19).contains(n) {
            return Err(Error::Config(format!("{F}.nice: {n} is outside -20..=19")));
        }
    }
    let realtime = matches!(
        s.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if let Some(p) = s.priority() {
        if realtime && !(1..=99).contains(p) {
            return Err(Error::Config(format!(
                "{F}.priority: {p} is outside 1..=99 for {}",
                s.policy()
            )));
        }
        if !realtime && *p != 0 {
            return Err(Error::Config(format!(
                "{F}.priority: must be 0 for {} (only SCHED_FIFO and SCHED_RR have one)",
                s.policy()
            )));
        }
    } else if realtime {
        return Err(Error::Config(format!(
            "{F}.priority: needed for {}",
            s.policy()
        )));
    }
    let deadline = *s.policy() == LinuxSchedulerPolicy::SchedDeadline;
    if !deadline && (s.runtime().is_some() || s.deadline().is_some() || s.period().is_some()) {
        return Err(Error::Config(format!(
            "{F}: runtime, deadline and period are for SCHED_DEADLINE only"
        )));
    }
    if deadline && s.runtime().is_none() {
        return Err(Error::Config(format!(
            "{F}.runtime: needed for SCHED_DEADLINE"
        )));
    }
    Ok(())
}

/// sched_setattr(2) on this process.
pub fn apply_scheduler(s: &Scheduler) -> Result<()> {
    let mut a = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_number(*s.policy()),
        flags: s.flags().iter().flatten().fold(0, |m, f| m | flag_bit(*f)),
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    if a.flags & 0x60 != 0 {
        // Util clamps without values would clamp to 0: leave them open.
        a.util_min = 0;
        a.util_max = 1024;
    }
    // SAFETY: pid 0 is this thread; `a` is a valid, sized sched_attr.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    if r != 0 {
        return Err(Error::Config(format!(
            "process.scheduler ({}): sched_setattr: {}",
            s.policy(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// process.ioPriority: a class and a level 0..=7.
pub fn validate_io_priority(p: &LinuxIOPriority) -> Result<()> {
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Config(format!(
            "process.ioPriority.priority: {} is outside 0..=7",
            p.priority()
        )));
    }
    Ok(())
}

/// ioprio_set(2) on this process.
pub fn apply_io_priority(p: &LinuxIOPriority) -> Result<()> {
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    const IOPRIO_WHO_PROCESS: i64 = 1;
    // SAFETY: plain syscall on this process (who = 0).
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | p.priority(),
        )
    };
    if r != 0 {
        return Err(Error::Config(format!(
            "process.ioPriority: ioprio_set: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A CPU or node list ("0-3,7") as the numbers it names: the parser
/// linux.resources.cpu.cpus already goes through, plus the bounds of a
/// cpu_set_t and a non-empty list.
pub fn parse_list(field: &str, list: &str) -> Result<Vec<usize>> {
    let bad = |why: &str| Error::Config(format!("{field}: {list:?}: {why}"));
    let ids = berth_cgroups::resources::parse_cpuset(list).map_err(|e| bad(&e))?;
    if ids.is_empty() {
        return Err(bad("empty"));
    }
    if ids.iter().any(|&i| i >= 8192) {
        return Err(bad("above 8191"));
    }
    Ok(ids.into_iter().map(|i| i as usize).collect())
}

/// sched_setaffinity(2) of `pid` (0: this process) to a CPU list.
pub fn set_affinity(pid: i32, field: &str, list: &str) -> Result<()> {
    let cpus = parse_list(field, list)?;
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(Error::Config(format!("{field}: CPU {c} is out of range")));
        }
        // SAFETY: c is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: valid set of its size.
    let r = unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(Error::Config(format!(
            "{field} {list:?}: sched_setaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn mode_number(m: MemoryPolicyModeType) -> i64 {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn mode_flag(f: MemoryPolicyFlagType) -> i64 {
    match f {
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
    }
}

/// linux.memoryPolicy: modes that take nodes have them, the others none.
pub fn validate_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    const F: &str = "linux.memoryPolicy";
    let needs_nodes = !matches!(
        p.mode(),
        MemoryPolicyModeType::MpolDefault
            | MemoryPolicyModeType::MpolLocal
            | MemoryPolicyModeType::MpolPreferred
    );
    match p.nodes().as_deref().filter(|n| !n.is_empty()) {
        Some(n) => {
            if matches!(
                p.mode(),
                MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
            ) {
                return Err(Error::Config(format!(
                    "{F}.nodes: must be empty for {:?}",
                    p.mode()
                )));
            }
            parse_list(&format!("{F}.nodes"), n)?;
        }
        None if needs_nodes => {
            return Err(Error::Config(format!(
                "{F}.nodes: needed for {:?}",
                p.mode()
            )))
        }
        None => {}
    }
    Ok(())
}

/// set_mempolicy(2) for this process (kept across fork and execve).
pub fn apply_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    let mode = mode_number(p.mode()) | p.flags().iter().flatten().fold(0, |m, f| m | mode_flag(*f));
    let mut mask = [0u64; 1024 / 64];
    let mut maxnode = 0usize;
    if let Some(n) = p.nodes().as_deref().filter(|n| !n.is_empty()) {
        for node in parse_list("linux.memoryPolicy.nodes", n)? {
            if node >= 1024 {
                return Err(Error::Config(format!(
                    "linux.memoryPolicy.nodes: node {node} is out of range"
                )));
            }
            mask[node / 64] |= 1 << (node % 64);
            maxnode = maxnode.max(node + 2);
        }
    }
    // SAFETY: a mask of at least `maxnode` bits.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            if maxnode == 0 {
                std::ptr::null()
            } else {
                mask.as_ptr()
            },
            maxnode,
        )
    };
    if r != 0 {
        return Err(Error::Config(format!(
            "linux.memoryPolicy ({:?}): set_mempolicy: {}",
            p.mode(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_node_lists() {
        assert_eq!(parse_list("f", "0-2,5").unwrap(), [0, 1, 2, 5]);
        assert!(parse_list("f", "3-1").is_err());
        assert!(parse_list("f", "x").is_err());
        assert!(parse_list("f", "").is_err());
    }
}
