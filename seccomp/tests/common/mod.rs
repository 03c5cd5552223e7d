//! Test support: a classic BPF interpreter with the kernel's seccomp checks,
//! and helpers to build profiles.
#![allow(dead_code)]

use berth_seccomp::{compile, compile_with, CompileOptions, Filter, SockFilter};
use oci_spec::runtime::LinuxSeccomp;

pub const AUDIT_I386: u32 = 0x4000_0003;
pub const AUDIT_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARM: u32 = 0x4000_0028;
pub const AUDIT_AARCH64: u32 = 0xc000_00b7;
pub const AUDIT_RISCV64: u32 = 0xc000_00f3;
pub const AUDIT_PPC64LE: u32 = 0xc000_0015;
pub const X32: u32 = 0x4000_0000;

pub const KILL_THREAD: u32 = 0;
pub const KILL_PROCESS: u32 = 0x8000_0000;
pub const TRAP: u32 = 0x0003_0000;
pub const NOTIFY: u32 = 0x7fc0_0000;
pub const LOG: u32 = 0x7ffc_0000;
pub const ALLOW: u32 = 0x7fff_0000;
pub const ENOSYS: u32 = errno(38);
pub const EPERM: u32 = errno(1);

pub const fn errno(e: u32) -> u32 {
    0x0005_0000 | e
}
pub const fn trace(e: u32) -> u32 {
    0x7ff0_0000 | e
}

/// `struct seccomp_data`.
#[derive(Clone, Copy, Debug)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    pub fn new(arch: u32, nr: u32) -> Data {
        Data {
            nr,
            arch,
            ip: 0x7fff_1234_5678,
            args: [0; 6],
        }
    }

    pub fn args(mut self, args: &[u64]) -> Data {
        self.args[..args.len()].copy_from_slice(args);
        self
    }

    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        b[8..16].copy_from_slice(&self.ip.to_ne_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        b
    }
}

// Opcodes, written out independently of the crate.
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// What the kernel's classic BPF + seccomp checks would refuse.
pub fn verify(prog: &[SockFilter]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("bad length {}", prog.len()));
    }
    for (i, ins) in prog.iter().enumerate() {
        let in_range = |off: usize| i + 1 + off < prog.len();
        match ins.code {
            LD_W_ABS => {
                if ins.k % 4 != 0 || ins.k >= 64 {
                    return Err(format!("{i}: load outside seccomp_data: {}", ins.k));
                }
            }
            ALU_AND_K | RET_K => {}
            JA => {
                if !in_range(ins.k as usize) {
                    return Err(format!("{i}: ja out of range"));
                }
            }
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                if !in_range(ins.jt as usize) || !in_range(ins.jf as usize) {
                    return Err(format!("{i}: jump out of range"));
                }
            }
            c => return Err(format!("{i}: unexpected opcode {c:#x}")),
        }
    }
    if prog.last().unwrap().code != RET_K {
        return Err("program does not end in ret".into());
    }
    Ok(())
}

/// Runs the program; returns (seccomp return value, instructions executed).
pub fn run(prog: &[SockFilter], data: &Data) -> (u32, usize) {
    verify(prog).unwrap();
    let bytes = data.bytes();
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let ins = prog[pc];
        steps += 1;
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                let k = ins.k as usize;
                a = u32::from_ne_bytes(bytes[k..k + 4].try_into().unwrap());
            }
            ALU_AND_K => a &= ins.k,
            JA => pc += ins.k as usize,
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                let taken = match ins.code {
                    JEQ_K => a == ins.k,
                    JGT_K => a > ins.k,
                    JGE_K => a >= ins.k,
                    _ => a & ins.k != 0,
                };
                pc += if taken { ins.jt } else { ins.jf } as usize;
            }
            RET_K => return (ins.k, steps),
            _ => unreachable!(),
        }
    }
}

pub fn verdict(filter: &Filter, data: Data) -> u32 {
    run(filter.instructions(), &data).0
}

pub fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("profile JSON")
}

/// Compiles with x86_64 as the native ABI whatever the host is.
pub fn build(json: serde_json::Value) -> Filter {
    build_native(json, berth_seccomp::Architecture::X86_64)
}

pub fn build_native(json: serde_json::Value, native: berth_seccomp::Architecture) -> Filter {
    let opts = CompileOptions {
        native: Some(native),
        ..Default::default()
    };
    let f = compile_with(&profile(json), &opts).expect("compile");
    verify(f.instructions()).unwrap();
    f
}

pub fn compile_err(json: serde_json::Value) -> String {
    compile(&profile(json)).unwrap_err().to_string()
}

pub fn containerd_profile() -> LinuxSeccomp {
    let text = include_str!("../data/containerd-default-config.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    profile(v["linux"]["seccomp"].clone())
}
