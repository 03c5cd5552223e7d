//! cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program
//! assembled here from raw instructions, loaded and attached with bpf(2).
//! No libbpf: the program is a straight list of comparisons.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::devices::{DevType, DeviceState, ACC_ALL};
use crate::{Error, Result};

/// One eBPF instruction, in the kernel's `struct bpf_insn` layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes used (class | op | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type: device type in the low 16 bits, access in the high 16.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The program deciding every device access of the cgroup exactly as the
/// v1 controller would in `state`: each exception is a block that jumps to
/// the next one unless type, access, major and minor all match, and returns
/// the exception's verdict if they do; the default closes the program.
pub(crate) fn device_program(state: &DeviceState) -> Vec<Insn> {
    // r2 = type, r3 = requested access, r4 = major, r5 = minor
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let verdict = i32::from(!state.default_allow);
    for e in &state.exceptions {
        // Jumps are written with the target "end of block" and fixed up once
        // the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps: Vec<usize> = Vec::new();
        let typ = match e.typ {
            DevType::Char => BPF_DEVCG_DEV_CHAR,
            DevType::Block => BPF_DEVCG_DEV_BLOCK,
        };
        jumps.push(block.len());
        block.push(insn(JMP32_JNE_K, 2, 0, 0, typ));
        if e.access != ACC_ALL {
            block.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            if state.default_allow {
                // deny exception: any overlap with its access denies
                block.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(e.access)));
                jumps.push(block.len());
                block.push(insn(JMP32_JEQ_K, 1, 0, 0, 0));
            } else {
                // allow exception: it must cover all that is asked
                block.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(!e.access & ACC_ALL)));
                jumps.push(block.len());
                block.push(insn(JMP32_JNE_K, 1, 0, 0, 0));
            }
        }
        if let Some(major) = e.major {
            jumps.push(block.len());
            // JMP32 compares the low 32 bits: the bit pattern is what counts.
            block.push(insn(JMP32_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = e.minor {
            jumps.push(block.len());
            block.push(insn(JMP32_JNE_K, 5, 0, 0, minor as i32));
        }
        block.push(insn(ALU32_MOV_K, 0, 0, 0, verdict));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(state.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Runs the program on one request, as the kernel would: the check the
/// unit tests use to hold the assembler to the emulator's semantics.
#[cfg(test)]
pub(crate) fn interpret(prog: &[Insn], dev_type: i32, access: u8, major: u32, minor: u32) -> u32 {
    let ctx = [(dev_type as u32) | (u32::from(access) << 16), major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_MEM_W => {
                assert_eq!(src, 1);
                r[dst] = u64::from(ctx[(i.off / 4) as usize]);
            }
            ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
            ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
            ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
            ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
            JMP32_JNE_K => {
                if r[dst] as u32 != i.imm as u32 {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            JMP32_JEQ_K => {
                if r[dst] as u32 == i.imm as u32 {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            EXIT => return r[0] as u32,
            c => panic!("unknown opcode {c:#x}"),
        }
    }
}

// ------------------------------------------------------------- bpf(2)

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2), for the attribute structs above.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, properly aligned #[repr(C)] struct whose
    // layout is the prefix of `union bpf_attr` that `cmd` reads; the kernel
    // reads (and for QUERY writes) at most size_of::<T>() bytes of it, and
    // every pointer stored in it points to memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = CString::new("Apache").expect("no NUL");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..5].copy_from_slice(b"berth");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(Error::Unsupported(format!(
                "linux.resources.devices: loading the cgroup v2 device filter (bpf BPF_PROG_LOAD): {}{}",
                crate::errno(&first),
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!("; verifier: {}", text.trim())
                }
            )))
        }
    }
}

fn bpf_err(dir: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Unsupported(format!(
        "linux.resources.devices: {what} on {}: {}",
        dir.display(),
        crate::errno(&e)
    ))
}

fn query(dir: &Path, cg: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| bpf_err(dir, "BPF_PROG_QUERY", e))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Replaces the device programs attached to the cgroup `dir` with one
/// enforcing `state`. The new program is attached before the old ones are
/// detached: with BPF_F_ALLOW_MULTI every attached program must allow an
/// access, so there is no moment with fewer restrictions than either set.
pub(crate) fn apply_device_state(dir: &Path, state: &DeviceState) -> Result<()> {
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| crate::fs::io_err(dir, e))?
        .into();
    let old = query(dir, &cg)?;
    let prog = load(&device_program(state))?;
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| bpf_err(dir, "BPF_PROG_ATTACH", e))?;
    for id in old {
        let mut get = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => owned(fd),
            // Detached and freed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err(dir, "BPF_PROG_GET_FD_BY_ID", e)),
        };
        let mut det = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut det) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err(dir, "BPF_PROG_DETACH", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::rules_from_oci;
    use oci_spec::runtime::LinuxDeviceCgroup;

    fn state(json: &str) -> DeviceState {
        let devs: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        let mut st = DeviceState::default();
        st.apply_all(&rules_from_oci(&devs).unwrap());
        st
    }

    /// Every request the program is asked must get the emulator's answer.
    fn agrees(st: &DeviceState) {
        let prog = device_program(st);
        for (bt, dt) in [
            (BPF_DEVCG_DEV_CHAR, DevType::Char),
            (BPF_DEVCG_DEV_BLOCK, DevType::Block),
        ] {
            for major in [0u32, 1, 5, 8, 136, 4095, u32::MAX] {
                for minor in [0u32, 1, 3, 5, 9, u32::MAX] {
                    for acc in 1..=ACC_ALL {
                        let want = st.allows(dt, major, minor, acc);
                        let got = interpret(&prog, bt, acc, major, minor) == 1;
                        assert_eq!(got, want, "{dt:?} {major}:{minor} acc={acc} in {st:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn program_matches_emulation() {
        agrees(&state(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"rw"},
                {"allow":true,"type":"c","major":136,"access":"rwm"},
                {"allow":true,"type":"b","access":"m"},
                {"allow":true,"type":"c","major":4095,"minor":4294967295,"access":"r"}]"#,
        ));
        agrees(&state(
            r#"[{"allow":true,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"},
                {"allow":false,"type":"b","major":8,"access":"rwm"}]"#,
        ));
        agrees(&state(r#"[{"allow":false,"access":"rwm"}]"#));
        agrees(&state(r#"[]"#));
    }

    #[test]
    fn program_shape() {
        let p = device_program(&state(r#"[{"allow":false}]"#));
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], insn(ALU32_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[7].code, EXIT);
        let p = device_program(&state(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        ));
        // type, major, minor checks each jump over the rest of the block
        assert_eq!((p[6].code, p[6].off), (JMP32_JNE_K, 4));
        assert_eq!((p[7].code, p[7].off), (JMP32_JNE_K, 3));
        assert_eq!((p[8].code, p[8].off), (JMP32_JNE_K, 2));
        assert_eq!(p[9], insn(ALU32_MOV_K, 0, 0, 0, 1));
    }
}
