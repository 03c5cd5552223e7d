//! Turns a [`Plan`] into a classic BPF program.
//!
//! Layout:
//!
//! ```text
//!   ld  [arch]
//!   jeq AUDIT_ARCH_<native>, 0, next1     ; native block falls straight in
//!   ld  [nr]
//!   <search tree over syscall-number intervals>
//! next1:
//!   jeq AUDIT_ARCH_<second>, 0, next2
//!   ...
//! nextN:
//!   ret KILL_THREAD                        ; architecture not in the filter
//! ```
//!
//! Per block, every syscall number maps to one outcome: a `ret`, or a chain of
//! argument tests for syscalls with conditional rules. The number line is cut
//! into maximal intervals of equal outcome (the -ENOSYS stub range, the
//! libseccomp x32/x86_64 separation, runs of syscalls with the same verdict,
//! holes with the default action), and a balanced binary search over the
//! interval starts (`jge`) reaches the leaf, so a syscall costs about
//! log2(intervals) jumps.

use crate::arch::{Architecture, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use crate::bpf::{Asm, Cmp, Label, SockFilter, Target};
use crate::plan::{Block, Cond, Entry, Op, Plan, Rule, RET_BAD_ARCH, RET_ENOSYS};

/// Byte offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// Offsets of the (low, high) 32-bit halves of argument `index`. The kernel
/// fills `seccomp_data` in the host's byte order.
fn arg_offsets(index: u8) -> (u32, u32) {
    let base = OFF_ARGS + 8 * u32::from(index);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    /// Argument tests of the syscall with this number.
    Chain(u32),
}

/// What happens to syscall `nr` in `block`, following runc (stub first) and
/// then libseccomp (x32 separation, rules, default).
fn outcome(plan: &Plan, block: &Block, nr: u32) -> Outcome {
    let x86_64 = block.mode(Architecture::X86_64);
    let x32 = block.mode(Architecture::X32);
    let x86_family = block.audit == AUDIT_ARCH_X86_64;

    if plan.enosys_stub {
        let max = if x86_family {
            // runc picks the threshold by the x32 bit; a mode that is not in
            // the filter has no threshold and goes on to the filter proper.
            if nr & X32_SYSCALL_BIT != 0 {
                x32.and_then(|m| m.max)
            } else {
                x86_64.and_then(|m| m.max)
            }
        } else {
            block.modes[0].max
        };
        if max.is_some_and(|m| nr > m) {
            return Outcome::Ret(RET_ENOSYS);
        }
    }

    if x86_family {
        match (x86_64.is_some(), x32.is_some()) {
            // libseccomp lets the -1 of a tracer-skipped syscall through to
            // the rules, and treats any other x32-looking number as a foreign
            // architecture.
            (true, false) if nr >= X32_SYSCALL_BIT && nr != u32::MAX => {
                return Outcome::Ret(RET_BAD_ARCH)
            }
            (false, true) if nr < X32_SYSCALL_BIT => return Outcome::Ret(RET_BAD_ARCH),
            _ => {}
        }
    }

    match block.syscalls.get(&nr) {
        Some(Entry::Always(action)) => Outcome::Ret(*action),
        Some(Entry::Rules(_)) => Outcome::Chain(nr),
        None => Outcome::Ret(plan.default),
    }
}

/// Maximal intervals of equal outcome covering all of `u32`, as (start, outcome).
fn intervals(plan: &Plan, block: &Block) -> Vec<(u32, Outcome)> {
    let mut cuts: Vec<u32> = vec![0, X32_SYSCALL_BIT, 0x8000_0000, 0xc000_0000, u32::MAX];
    for m in &block.modes {
        if let Some(max) = m.max {
            cuts.extend(max.checked_add(1));
        }
    }
    for &nr in block.syscalls.keys() {
        cuts.push(nr);
        cuts.extend(nr.checked_add(1));
    }
    cuts.sort_unstable();
    cuts.dedup();

    let mut out: Vec<(u32, Outcome)> = Vec::new();
    for start in cuts {
        let o = outcome(plan, block, start);
        match out.last() {
            Some(&(_, prev)) if prev == o && matches!(o, Outcome::Ret(_)) => {}
            _ => out.push((start, o)),
        }
    }
    out
}

pub(crate) struct Generated {
    pub program: Vec<SockFilter>,
}

pub(crate) fn generate(plan: &Plan) -> Generated {
    let mut asm = Asm::default();
    asm.load(OFF_ARCH);
    for block in &plan.blocks {
        let next = asm.label();
        asm.jump(Cmp::Eq, block.audit, Target::Next, Target::To(next));
        asm.load(OFF_NR);
        let iv = intervals(plan, block);
        tree(&mut asm, plan, block, &iv);
        asm.bind(next);
    }
    asm.ret(RET_BAD_ARCH);
    Generated {
        program: asm.assemble(),
    }
}

/// Binary search over interval starts; the accumulator holds the syscall number.
fn tree(asm: &mut Asm, plan: &Plan, block: &Block, iv: &[(u32, Outcome)]) {
    if iv.len() == 1 {
        match iv[0].1 {
            Outcome::Ret(k) => asm.ret(k),
            Outcome::Chain(nr) => {
                let Some(Entry::Rules(rules)) = block.syscalls.get(&nr) else {
                    unreachable!("chain outcome without rules")
                };
                chain(asm, plan.default, rules);
            }
        }
        return;
    }
    let mid = iv.len() / 2;
    let upper = asm.label();
    asm.jump(Cmp::Ge, iv[mid].0, Target::To(upper), Target::Next);
    tree(asm, plan, block, &iv[..mid]);
    asm.bind(upper);
    tree(asm, plan, block, &iv[mid..]);
}

/// First matching rule wins; none matching means the default action.
fn chain(asm: &mut Asm, default: u32, rules: &[Rule]) {
    for rule in rules {
        let fail = asm.label();
        for c in &rule.conds {
            cond(asm, c, fail);
        }
        asm.ret(rule.action);
        asm.bind(fail);
    }
    asm.ret(default);
}

/// Falls through when the condition holds, jumps to `fail` otherwise.
fn cond(asm: &mut Asm, c: &Cond, fail: Label) {
    use Target::{Next, To};
    let (lo_off, hi_off) = arg_offsets(c.index);
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let fail = To(fail);

    if !c.wide {
        match c.op {
            Op::MaskedEq { mask, value } => {
                asm.load(lo_off);
                if lo(mask) != u32::MAX {
                    asm.and(lo(mask));
                }
                asm.jump(Cmp::Eq, lo(value), Next, fail);
            }
            op => {
                asm.load(lo_off);
                let (cmp, k, on_true_fails) = match op {
                    Op::Eq(v) => (Cmp::Eq, lo(v), false),
                    Op::Ne(v) => (Cmp::Eq, lo(v), true),
                    Op::Gt(v) => (Cmp::Gt, lo(v), false),
                    Op::Ge(v) => (Cmp::Ge, lo(v), false),
                    Op::Lt(v) => (Cmp::Ge, lo(v), true),
                    Op::Le(v) => (Cmp::Gt, lo(v), true),
                    Op::MaskedEq { .. } => unreachable!(),
                };
                if on_true_fails {
                    asm.jump(cmp, k, fail, Next);
                } else {
                    asm.jump(cmp, k, Next, fail);
                }
            }
        }
        return;
    }

    match c.op {
        Op::Eq(v) => {
            asm.load(hi_off);
            asm.jump(Cmp::Eq, hi(v), Next, fail);
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo(v), Next, fail);
        }
        Op::Ne(v) => {
            let pass = asm.label();
            asm.load(hi_off);
            asm.jump(Cmp::Eq, hi(v), Next, To(pass));
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo(v), fail, Next);
            asm.bind(pass);
        }
        Op::Gt(v) | Op::Ge(v) => {
            // Decided by the high words unless they are equal.
            let pass = asm.label();
            asm.load(hi_off);
            asm.jump(Cmp::Gt, hi(v), To(pass), Next);
            asm.jump(Cmp::Eq, hi(v), Next, fail);
            asm.load(lo_off);
            let cmp = if matches!(c.op, Op::Gt(_)) {
                Cmp::Gt
            } else {
                Cmp::Ge
            };
            asm.jump(cmp, lo(v), Next, fail);
            asm.bind(pass);
        }
        Op::Lt(v) | Op::Le(v) => {
            let pass = asm.label();
            asm.load(hi_off);
            asm.jump(Cmp::Gt, hi(v), fail, Next);
            asm.jump(Cmp::Eq, hi(v), Next, To(pass));
            asm.load(lo_off);
            // a < v  <=>  !(a >= v);  a <= v  <=>  !(a > v)
            let cmp = if matches!(c.op, Op::Lt(_)) {
                Cmp::Ge
            } else {
                Cmp::Gt
            };
            asm.jump(cmp, lo(v), fail, Next);
            asm.bind(pass);
        }
        Op::MaskedEq { mask, value } => {
            for (off, m, v) in [(hi_off, hi(mask), hi(value)), (lo_off, lo(mask), lo(value))] {
                if m == 0 {
                    continue;
                }
                asm.load(off);
                if m != u32::MAX {
                    asm.and(m);
                }
                asm.jump(Cmp::Eq, v, Next, fail);
            }
        }
    }
}
