//! Validates a profile and turns it into per-architecture decisions, following
//! what runc does with libseccomp (see the crate docs for the rules).

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::arch::{x86_multiplexed, Architecture};
use crate::{CompileOptions, Error};

pub(crate) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(crate) const RET_TRACE: u32 = 0x7ff0_0000;
pub(crate) const RET_LOG: u32 = 0x7ffc_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

pub(crate) const FLAG_LOG: u32 = 1 << 1;
pub(crate) const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub(crate) const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub(crate) const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

const EPERM: u32 = 1;
pub(crate) const RET_ENOSYS: u32 = RET_ERRNO | 38;
/// libseccomp's default "bad architecture" action, which runc keeps.
pub(crate) const RET_BAD_ARCH: u32 = RET_KILL_THREAD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Ge(u64),
    Gt(u64),
    /// `(arg & mask) == value`, with `value` already reduced to `value & mask`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub op: Op,
    /// Compare all 64 bits, or only the low word.
    pub wide: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub conds: Vec<Cond>,
    pub action: u32,
}

#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// The syscall's verdict does not depend on its arguments.
    Always(u32),
    /// Tried in order; the first rule whose conditions all hold decides,
    /// otherwise the default action applies.
    Rules(Vec<Rule>),
}

/// One ABI inside a block, with the highest syscall number the profile names
/// for it (runc's -ENOSYS stub threshold), if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mode {
    pub arch: Architecture,
    pub max: Option<u32>,
}

/// Everything that shares one `seccomp_data.arch` value.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub audit: u32,
    pub modes: Vec<Mode>,
    pub syscalls: BTreeMap<u32, Entry>,
}

impl Block {
    pub(crate) fn mode(&self, arch: Architecture) -> Option<&Mode> {
        self.modes.iter().find(|m| m.arch == arch)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub default: u32,
    pub enosys_stub: bool,
    pub blocks: Vec<Block>,
    pub archs: Vec<Architecture>,
    pub flags: u32,
    pub implicit_spec_allow: bool,
    pub notify: bool,
    pub skipped: Vec<(String, String)>,
}

fn action_name(action: LinuxSeccompAction) -> String {
    action.to_string()
}

/// The kernel return value for an action, as runc builds it.
fn action_value(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    errno_field: &str,
) -> Result<u32, Error> {
    use LinuxSeccompAction::*;
    if let Some(e) = errno {
        if !matches!(action, ScmpActErrno | ScmpActTrace) {
            return Err(Error::invalid(
                errno_field,
                format!(
                    "{} does not take an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
                    action_name(action)
                ),
            ));
        }
        if e > 0xffff {
            return Err(Error::invalid(
                errno_field,
                format!("{e} does not fit the 16-bit seccomp return data"),
            ));
        }
    }
    Ok(match action {
        ScmpActKill | ScmpActKillThread => RET_KILL_THREAD,
        ScmpActKillProcess => RET_KILL_PROCESS,
        ScmpActTrap => RET_TRAP,
        ScmpActErrno => RET_ERRNO | errno.unwrap_or(EPERM),
        ScmpActTrace => RET_TRACE | errno.unwrap_or(EPERM),
        ScmpActLog => RET_LOG,
        ScmpActAllow => RET_ALLOW,
        ScmpActNotify => RET_USER_NOTIF,
    })
}

fn supported_list() -> String {
    Architecture::ALL
        .iter()
        .map(|a| a.scmp_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a name resolves on one ABI: (syscall number, replacement for the
/// argument-0 condition) pairs.
fn resolve(arch: Architecture, name: &str) -> Vec<(u32, Option<u64>)> {
    let mut out = Vec::new();
    if arch == Architecture::X86 {
        if let Some((mux, call)) = x86_multiplexed(name) {
            out.push((mux, Some(call)));
        }
    }
    if let Some(nr) = arch.syscall_number(name) {
        out.push((nr, None));
    }
    out
}

/// The number runc's -ENOSYS stub sees for `name`: libseccomp reports the
/// multiplexed i386 socket/IPC names as pseudo-syscalls (negative), so they
/// never raise the threshold even where a direct syscall exists.
fn stub_number(arch: Architecture, name: &str) -> Option<u32> {
    if arch == Architecture::X86 && x86_multiplexed(name).is_some() {
        return None;
    }
    arch.syscall_number(name)
}

fn add_rule(entries: &mut BTreeMap<u32, Entry>, nr: u32, conds: Vec<Cond>, action: u32) {
    match entries.get_mut(&nr) {
        // libseccomp keeps the first unconditional rule of a syscall and drops
        // everything added after it.
        Some(Entry::Always(_)) => {}
        // An unconditional rule replaces the conditional ones before it.
        Some(Entry::Rules(_)) if conds.is_empty() => {
            entries.insert(nr, Entry::Always(action));
        }
        Some(Entry::Rules(rules)) => rules.push(Rule { conds, action }),
        None if conds.is_empty() => {
            entries.insert(nr, Entry::Always(action));
        }
        None => {
            entries.insert(nr, Entry::Rules(vec![Rule { conds, action }]));
        }
    }
}

struct Arg {
    index: u8,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

fn cond(arg: &Arg, wide: bool) -> Option<Cond> {
    let op = match arg.op {
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq(arg.value),
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne(arg.value),
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt(arg.value),
        LinuxSeccompOperator::ScmpCmpLe => Op::Le(arg.value),
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge(arg.value),
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt(arg.value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // libseccomp drops a masked compare that looks at no bits; that can
            // turn a rule unconditional, which matters for rule merging.
            let mask = if wide {
                arg.value
            } else {
                arg.value & 0xffff_ffff
            };
            if mask == 0 {
                return None;
            }
            Op::MaskedEq {
                mask: arg.value,
                value: arg.value_two & arg.value,
            }
        }
    };
    Some(Cond {
        index: arg.index,
        op,
        wide,
    })
}

pub(crate) fn build(profile: &LinuxSeccomp, opts: &CompileOptions) -> Result<Plan, Error> {
    let native = match opts.native {
        Some(a) => a,
        None => Architecture::native().ok_or(Error::UnsupportedHost)?,
    };

    let default_action = profile.default_action();
    if default_action == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (it would also catch the syscalls that hand the listener over)",
        ));
    }
    let default = action_value(
        default_action,
        profile.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;

    // Architectures: the native one always, as libseccomp does.
    let mut archs = vec![native];
    for (i, &a) in profile.architectures().iter().flatten().enumerate() {
        let arch = match Architecture::from_oci(a) {
            Ok(Some(arch)) => arch,
            Ok(None) => native,
            Err(()) => {
                return Err(Error::UnsupportedArchitecture {
                    field: format!("linux.seccomp.architectures[{i}]"),
                    arch: a.to_string(),
                    supported: supported_list(),
                })
            }
        };
        if !archs.contains(&arch) {
            archs.push(arch);
        }
    }

    // Flags. runc turns on SPEC_ALLOW when the profile does not mention flags
    // at all, and ignores TSYNC (it loads the filter on the one thread that
    // execs).
    let mut flags = 0;
    let implicit_spec_allow = profile.flags().is_none();
    if implicit_spec_allow {
        flags |= FLAG_SPEC_ALLOW;
    }
    for f in profile.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags |= FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags |= FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
        }
    }

    // Syscall rules: validate everything up front so errors do not depend on
    // the architecture list.
    struct ProfileRule {
        action: u32,
        names: Vec<String>,
        /// AND-groups of conditions; several groups are ORed.
        groups: Vec<Vec<Arg>>,
    }
    let mut notify = false;
    let mut rules = Vec::new();
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if sc.names().is_empty() {
            return Err(Error::invalid(
                format!("{field}.names"),
                "must name at least one syscall",
            ));
        }
        for (j, name) in sc.names().iter().enumerate() {
            if name.is_empty() {
                return Err(Error::invalid(
                    format!("{field}.names[{j}]"),
                    "empty syscall name",
                ));
            }
        }
        let action = action_value(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        if sc.action() == LinuxSeccompAction::ScmpActNotify {
            notify = true;
            if let Some(j) = sc.names().iter().position(|n| n == "write") {
                return Err(Error::invalid(
                    format!("{field}.names[{j}]"),
                    "SCMP_ACT_NOTIFY cannot be used for write (the container's init needs it to hand the listener over)",
                ));
            }
        }
        let mut args = Vec::new();
        let mut per_index = [0usize; 6];
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(Error::invalid(
                    format!("{field}.args[{j}].index"),
                    format!("{} is out of range (0-5)", a.index()),
                ));
            }
            per_index[a.index()] += 1;
            args.push(Arg {
                index: a.index() as u8,
                op: a.op(),
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            });
        }
        // runc: when two conditions test the same argument it adds each
        // condition as a rule of its own, so they are ORed instead of ANDed.
        let groups = if per_index.iter().any(|&n| n > 1) {
            args.into_iter().map(|a| vec![a]).collect()
        } else {
            vec![args]
        };
        rules.push(ProfileRule {
            action,
            names: sc.names().clone(),
            groups,
        });
    }
    if notify && profile.listener_path().is_none() {
        return Err(Error::invalid(
            "linux.seccomp.listenerPath",
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
    }
    if opts.wait_killable_recv {
        if !notify {
            return Err(Error::invalid(
                "linux.seccomp.flags",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY",
            ));
        }
        flags |= FLAG_WAIT_KILLABLE_RECV;
    }

    // runc prepends its -ENOSYS stub unless the default action lets syscalls run.
    let enosys_stub = !matches!(
        default_action,
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );

    let mut blocks: Vec<Block> = Vec::new();
    let mut skipped = Vec::new();
    for &arch in &archs {
        let max = rules
            .iter()
            .flat_map(|r| r.names.iter())
            .filter_map(|n| stub_number(arch, n))
            .max()
            .filter(|&m| m > 0);
        let bi = match blocks.iter().position(|b| b.audit == arch.audit_arch()) {
            Some(bi) => bi,
            None => {
                blocks.push(Block {
                    audit: arch.audit_arch(),
                    modes: Vec::new(),
                    syscalls: BTreeMap::new(),
                });
                blocks.len() - 1
            }
        };
        let block = &mut blocks[bi];
        block.modes.push(Mode { arch, max });
        let wide = arch.wide_args();
        for r in &rules {
            // runc skips rules that would do what the default does anyway.
            if r.action == default {
                continue;
            }
            for name in &r.names {
                let targets = resolve(arch, name);
                if targets.is_empty() {
                    let entry = (arch.scmp_name().to_string(), name.clone());
                    if !skipped.contains(&entry) {
                        skipped.push(entry);
                    }
                    continue;
                }
                for group in &r.groups {
                    for &(nr, arg0) in &targets {
                        let mut conds: Vec<Cond> = Vec::new();
                        if let Some(call) = arg0 {
                            conds.push(Cond {
                                index: 0,
                                op: Op::Eq(call),
                                wide,
                            });
                        }
                        for a in group {
                            if arg0.is_some() && a.index == 0 {
                                continue;
                            }
                            if let Some(c) = cond(a, wide) {
                                conds.push(c);
                            }
                        }
                        add_rule(&mut block.syscalls, nr, conds, r.action);
                    }
                }
            }
        }
    }

    Ok(Plan {
        default,
        enosys_stub,
        blocks,
        archs,
        flags,
        implicit_spec_allow,
        notify,
        skipped,
    })
}
