//! Classic BPF instructions and a small assembler with symbolic labels.
//!
//! Classic BPF conditional jumps carry 8-bit offsets and may only go forward.
//! The code generator writes jumps to labels without caring about distance;
//! [`Asm::assemble`] lays the program out and, wherever a conditional jump
//! cannot reach its target, routes it through a trampoline placed right after
//! the jump (`ja` with a 32-bit offset, or a copy of the target when the
//! target is a `ret`). Trampolines only ever get added, so the layout loop
//! terminates.

/// One classic BPF instruction, laid out exactly like the kernel's
/// `struct sock_filter` (and `libc::sock_filter`), so a `&[SockFilter]` can be
/// handed to `seccomp(2)` as is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockFilter {
    /// Opcode: class | size/operation | mode/source.
    pub code: u16,
    /// Offset (in instructions, from the next one) taken when the test holds.
    pub jt: u8,
    /// Offset taken when the test does not hold.
    pub jf: u8,
    /// Immediate operand.
    pub k: u32,
}

const _: () = {
    assert!(std::mem::size_of::<SockFilter>() == std::mem::size_of::<libc::sock_filter>());
    assert!(std::mem::align_of::<SockFilter>() == std::mem::align_of::<libc::sock_filter>());
};

// BPF_LD | BPF_W | BPF_ABS (class and size bits are 0)
pub(crate) const BPF_LD_W_ABS: u16 = 0x20;
// BPF_ALU | BPF_AND | BPF_K
pub(crate) const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
// BPF_JMP | BPF_JA
pub(crate) const BPF_JMP_JA: u16 = 0x05;
// BPF_JMP | BPF_J* | BPF_K
pub(crate) const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
pub(crate) const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
pub(crate) const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
// BPF_RET | BPF_K
pub(crate) const BPF_RET_K: u16 = 0x06;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Next,
    To(Label),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
}

impl Cmp {
    fn code(self) -> u16 {
        match self {
            Cmp::Eq => BPF_JMP_JEQ_K,
            Cmp::Gt => BPF_JMP_JGT_K,
            Cmp::Ge => BPF_JMP_JGE_K,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ins {
    Load(u32),
    And(u32),
    Jump {
        cmp: Cmp,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ret(u32),
}

#[derive(Default)]
pub(crate) struct Asm {
    code: Vec<Ins>,
    /// Index in `code` of the instruction each label stands before.
    labels: Vec<Option<usize>>,
}

impl Asm {
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub(crate) fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label bound twice");
        self.labels[label.0] = Some(self.code.len());
    }

    /// `A = *(u32 *)(seccomp_data + offset)`
    pub(crate) fn load(&mut self, offset: u32) {
        self.code.push(Ins::Load(offset));
    }

    pub(crate) fn and(&mut self, k: u32) {
        self.code.push(Ins::And(k));
    }

    pub(crate) fn jump(&mut self, cmp: Cmp, k: u32, jt: Target, jf: Target) {
        self.code.push(Ins::Jump { cmp, k, jt, jf });
    }

    pub(crate) fn ret(&mut self, k: u32) {
        self.code.push(Ins::Ret(k));
    }

    fn target_index(&self, label: Label) -> usize {
        let idx = self.labels[label.0].expect("jump to a label that was never bound");
        assert!(
            idx < self.code.len(),
            "label bound after the last instruction"
        );
        idx
    }

    /// Lays the program out, adding trampolines until every conditional jump
    /// fits its 8-bit offsets.
    pub(crate) fn assemble(&self) -> Vec<SockFilter> {
        let n = self.code.len();
        // Which of (jt, jf) of each instruction go through a trampoline.
        let mut tramp = vec![[false; 2]; n];
        let mut pos = vec![0usize; n + 1];
        loop {
            let mut at = 0;
            for (p, t) in pos.iter_mut().zip(&tramp) {
                *p = at;
                at += 1 + t.iter().filter(|&&t| t).count();
            }
            pos[n] = at;

            let mut changed = false;
            for (i, ins) in self.code.iter().enumerate() {
                if let Ins::Jump { jt, jf, .. } = *ins {
                    for (slot, target) in [jt, jf].into_iter().enumerate() {
                        if let Target::To(label) = target {
                            if !tramp[i][slot] && self.distance(&pos, i, label) > 255 {
                                tramp[i][slot] = true;
                                changed = true;
                            }
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }

        let mut out = Vec::with_capacity(pos[n]);
        for i in 0..n {
            match self.code[i] {
                Ins::Load(k) => out.push(insn(BPF_LD_W_ABS, 0, 0, k)),
                Ins::And(k) => out.push(insn(BPF_ALU_AND_K, 0, 0, k)),
                Ins::Ret(k) => out.push(insn(BPF_RET_K, 0, 0, k)),
                Ins::Jump { cmp, k, jt, jf } => {
                    let n_tramp = tramp[i].iter().filter(|&&t| t).count();
                    let mut offsets = [0u8; 2];
                    let mut next_tramp = 0u8;
                    for (slot, target) in [jt, jf].into_iter().enumerate() {
                        offsets[slot] = if tramp[i][slot] {
                            next_tramp += 1;
                            next_tramp - 1
                        } else {
                            match target {
                                Target::Next => n_tramp as u8,
                                Target::To(label) => {
                                    let d = self.distance(&pos, i, label);
                                    u8::try_from(d).expect("assembler left a long jump")
                                }
                            }
                        };
                    }
                    out.push(insn(cmp.code(), offsets[0], offsets[1], k));
                    for (slot, target) in [jt, jf].into_iter().enumerate() {
                        if !tramp[i][slot] {
                            continue;
                        }
                        let Target::To(label) = target else {
                            unreachable!("trampoline for a fall-through target")
                        };
                        let dest = self.target_index(label);
                        if let Ins::Ret(k) = self.code[dest] {
                            // Returning here is both shorter and faster than jumping to the same ret.
                            out.push(insn(BPF_RET_K, 0, 0, k));
                        } else {
                            let here = out.len();
                            let k = pos[dest] - (here + 1);
                            out.push(insn(BPF_JMP_JA, 0, 0, to_u32(k)));
                        }
                    }
                }
            }
            debug_assert_eq!(out.len(), pos[i + 1]);
        }
        out
    }

    /// Offset from the instruction after `from` (ignoring its trampolines) to `label`.
    fn distance(&self, pos: &[usize], from: usize, label: Label) -> usize {
        let dest = self.target_index(label);
        assert!(dest > from, "backward or self jump in generated code");
        pos[dest] - (pos[from] + 1)
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn to_u32(v: usize) -> u32 {
    u32::try_from(v).expect("program offset exceeds u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows `jt`/`jf` from instruction 0 with every `jeq` taken as `take_true`, returning the
    /// `ret` value reached. Good enough to check the assembler's offsets.
    fn walk(prog: &[SockFilter], take_true: bool) -> u32 {
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            match i.code {
                BPF_RET_K => return i.k,
                BPF_JMP_JA => pc += 1 + i.k as usize,
                BPF_JMP_JEQ_K => pc += 1 + if take_true { i.jt } else { i.jf } as usize,
                _ => pc += 1,
            }
        }
    }

    #[test]
    fn long_jumps_get_trampolines() {
        for filler in [10usize, 254, 255, 256, 300, 1000] {
            let mut asm = Asm::default();
            let far_true = asm.label();
            let far_false = asm.label();
            asm.jump(Cmp::Eq, 1, Target::To(far_true), Target::To(far_false));
            for _ in 0..filler {
                asm.load(0);
            }
            asm.ret(7);
            asm.bind(far_true);
            for _ in 0..filler {
                asm.load(0);
            }
            asm.ret(1);
            asm.bind(far_false);
            asm.ret(2);
            let prog = asm.assemble();
            assert_eq!(walk(&prog, true), 1, "filler {filler}");
            assert_eq!(walk(&prog, false), 2, "filler {filler}");
        }
    }

    #[test]
    fn trampoline_to_ret_is_inlined() {
        let mut asm = Asm::default();
        let far = asm.label();
        asm.jump(Cmp::Eq, 1, Target::To(far), Target::Next);
        for _ in 0..300 {
            asm.load(0);
        }
        asm.ret(9);
        asm.bind(far);
        asm.ret(5);
        let prog = asm.assemble();
        assert_eq!(prog[1], insn(BPF_RET_K, 0, 0, 5));
        assert_eq!(walk(&prog, true), 5);
        assert_eq!(walk(&prog, false), 9);
    }
}
