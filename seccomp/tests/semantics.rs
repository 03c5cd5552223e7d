//! Verdicts of generated programs, run through the interpreter in `common`.

mod common;

use berth_seccomp::Architecture;
use common::*;
use serde_json::json;

const GETPPID: u32 = 110; // x86_64
const GETPID: u32 = 39;
const PERSONALITY: u32 = 135;
const I386_GETPPID: u32 = 64;

fn x86_64(nr: u32) -> Data {
    Data::new(AUDIT_X86_64, nr)
}

#[test]
fn default_actions() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_ALLOW"}), ALLOW),
        (json!({"defaultAction": "SCMP_ACT_KILL"}), KILL_THREAD),
        (
            json!({"defaultAction": "SCMP_ACT_KILL_THREAD"}),
            KILL_THREAD,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}),
            KILL_PROCESS,
        ),
        (json!({"defaultAction": "SCMP_ACT_TRAP"}), TRAP),
        (json!({"defaultAction": "SCMP_ACT_ERRNO"}), EPERM),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13}),
            errno(13),
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 0}),
            errno(0),
        ),
        (json!({"defaultAction": "SCMP_ACT_TRACE"}), trace(1)),
        (
            json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 42}),
            trace(42),
        ),
        (json!({"defaultAction": "SCMP_ACT_LOG"}), LOG),
    ];
    for (p, want) in cases {
        let f = build(p.clone());
        for nr in [0, 1, GETPPID, 300, 1000] {
            assert_eq!(verdict(&f, x86_64(nr)), want, "{p} nr {nr}");
        }
    }
}

#[test]
fn rule_actions() {
    let cases = [
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}),
            ALLOW,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}),
            EPERM,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}),
            errno(77),
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65535}),
            errno(65535),
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_KILL"}),
            KILL_THREAD,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_KILL_THREAD"}),
            KILL_THREAD,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}),
            KILL_PROCESS,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_TRAP"}),
            TRAP,
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_TRACE"}),
            trace(1),
        ),
        (
            json!({"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}),
            trace(5),
        ),
        (json!({"names": ["getppid"], "action": "SCMP_ACT_LOG"}), LOG),
    ];
    for (rule, want) in cases {
        let f = build(json!({"defaultAction": "SCMP_ACT_TRAP", "syscalls": [rule]}));
        assert_eq!(verdict(&f, x86_64(GETPPID)), want, "{rule}");
        assert_eq!(verdict(&f, x86_64(GETPID)), TRAP, "{rule}");
    }
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(f.uses_notify());
    assert_eq!(verdict(&f, x86_64(GETPPID)), NOTIFY);
    assert_eq!(verdict(&f, x86_64(GETPID)), ALLOW);
}

#[test]
fn several_names_and_blocks() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9},
            {"names": ["no_such_syscall", "chown32"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    assert_eq!(verdict(&f, x86_64(0)), ALLOW);
    assert_eq!(verdict(&f, x86_64(1)), ALLOW);
    assert_eq!(verdict(&f, x86_64(GETPID)), ALLOW);
    assert_eq!(verdict(&f, x86_64(GETPPID)), errno(9));
    assert_eq!(verdict(&f, x86_64(2)), EPERM);
    let skipped = f.skipped_syscalls();
    assert!(skipped.contains(&("SCMP_ARCH_X86_64".into(), "no_such_syscall".into())));
    assert!(skipped.contains(&("SCMP_ARCH_X86_64".into(), "chown32".into())));
    assert_eq!(skipped.len(), 2);
}

#[test]
fn rules_are_ored_and_args_anded() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 100, "op": "SCMP_CMP_LT"},
                {"index": 5, "value": 7, "op": "SCMP_CMP_NE"}
            ]}
        ]
    }));
    let p = |a0| verdict(&f, x86_64(PERSONALITY).args(&[a0]));
    assert_eq!(p(0), ALLOW);
    assert_eq!(p(8), ALLOW);
    assert_eq!(p(1), EPERM);
    assert_eq!(p(0x1_0000_0000), EPERM);
    let g = |args: &[u64]| verdict(&f, x86_64(GETPPID).args(args));
    assert_eq!(g(&[1, 0, 99, 0, 0, 0]), ALLOW);
    assert_eq!(g(&[1, 55, 0, 9, 9, 8]), ALLOW);
    assert_eq!(g(&[2, 0, 99, 0, 0, 0]), EPERM);
    assert_eq!(g(&[1, 0, 100, 0, 0, 0]), EPERM);
    assert_eq!(g(&[1, 0, 99, 0, 0, 7]), EPERM);
}

#[test]
fn first_matching_rule_decides() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_LT"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2, "args": [{"index": 0, "value": 20, "op": "SCMP_CMP_GT"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let g = |a0, a1| verdict(&f, x86_64(GETPPID).args(&[a0, a1]));
    assert_eq!(g(3, 0), errno(1));
    assert_eq!(g(25, 0), errno(2));
    assert_eq!(g(15, 1), errno(3));
    assert_eq!(g(15, 0), ALLOW);
    // Several rules match these; the earlier one decides.
    assert_eq!(g(5, 1), errno(1));
    assert_eq!(g(25, 1), errno(2));
}

#[test]
fn repeated_argument_index_is_ored_like_runc() {
    // runc adds each condition as a rule of its own when two test the same
    // argument, so this allows a0 >= 10 OR a0 <= 2 (not the empty AND).
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 10, "op": "SCMP_CMP_GE"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_LE"},
            {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}
        ]}]
    }));
    let g = |a0, a1| verdict(&f, x86_64(GETPPID).args(&[a0, a1]));
    assert_eq!(g(10, 0), ALLOW);
    assert_eq!(g(1, 0), ALLOW);
    assert_eq!(g(5, 5), ALLOW);
    assert_eq!(g(5, 0), EPERM);
}

#[test]
fn unconditional_rule_overrides_conditional_ones() {
    // libseccomp: an unconditional rule replaces the conditional rules added
    // before it, and nothing added after an unconditional rule counts.
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[1])), errno(4));
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[0])), errno(4));
    assert_eq!(verdict(&f, x86_64(GETPID).args(&[1])), errno(6));
}

#[test]
fn rules_with_the_default_action_are_dropped() {
    // runc skips them before libseccomp sees them, so the unconditional
    // ERRNO rule below does not override the conditional ALLOW.
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    }));
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[0])), ALLOW);
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[3])), EPERM);
}

#[test]
fn masked_eq_without_bits_makes_rule_unconditional() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            // Only high bits: nothing to test on 32-bit ABIs, so there it is
            // unconditional and overrides the rule above.
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4, "args": [{"index": 0, "value": 18446744069414584320_u64, "valueTwo": 4294967296_u64, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[1])), errno(3));
    assert_eq!(
        verdict(&f, x86_64(GETPPID).args(&[0x1_0000_0005])),
        errno(4)
    );
    assert_eq!(verdict(&f, x86_64(GETPPID).args(&[5])), ALLOW);
    let i386 = |a0| verdict(&f, Data::new(AUDIT_I386, I386_GETPPID).args(&[a0]));
    assert_eq!(i386(1), errno(4));
    assert_eq!(i386(5), errno(4));
}

fn model(op: &str, value: u64, value_two: u64, arg: u64, wide: bool) -> bool {
    let narrow = |v: u64| if wide { v } else { v & 0xffff_ffff };
    let (a, v) = (narrow(arg), narrow(value));
    match op {
        "SCMP_CMP_EQ" => a == v,
        "SCMP_CMP_NE" => a != v,
        "SCMP_CMP_LT" => a < v,
        "SCMP_CMP_LE" => a <= v,
        "SCMP_CMP_GE" => a >= v,
        "SCMP_CMP_GT" => a > v,
        "SCMP_CMP_MASKED_EQ" => a & v == narrow(value_two) & v,
        _ => unreachable!(),
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn comparisons_on_64_and_32_bit_abis() {
    const EDGES: [u64; 16] = [
        0,
        1,
        2,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffe,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x1_ffff_ffff,
        0x2_0000_0000,
        0xffff_ffff_0000_0000,
        0x8000_0000_0000_0000,
        0x7fff_ffff_ffff_ffff,
        0xffff_ffff_ffff_fffe,
        0xffff_ffff_ffff_ffff,
    ];
    let ops = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut values: Vec<u64> = EDGES.to_vec();
    values.extend((0..6).map(|_| rng.next()));
    let mut args: Vec<u64> = EDGES.to_vec();
    for v in &values {
        args.extend([
            v.wrapping_sub(1),
            *v,
            v.wrapping_add(1),
            v ^ 0x1_0000_0000,
            v ^ 1,
        ]);
    }
    let mut checked = 0;
    for op in ops {
        for (vi, &value) in values.iter().enumerate() {
            let index = vi % 6;
            let value_two = values[(vi * 7 + 3) % values.len()];
            let f = build(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                    "args": [{"index": index, "value": value, "valueTwo": value_two, "op": op}]}]
            }));
            for &arg in &args {
                let mut argv = [0x5555_5555_5555_5555u64; 6];
                argv[index] = arg;
                for (data, wide) in [
                    (x86_64(GETPPID), true),
                    (Data::new(AUDIT_I386, I386_GETPPID), false),
                    (Data::new(AUDIT_X86_64, X32 | 110), false),
                ] {
                    let data = data.args(&argv);
                    let want = if model(op, value, value_two, arg, wide) {
                        EPERM
                    } else {
                        ALLOW
                    };
                    assert_eq!(
                        verdict(&f, data),
                        want,
                        "{op} value {value:#x} value_two {value_two:#x} arg{index} {arg:#x} wide {wide}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn x86_64_without_x32() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}]
    }));
    assert_eq!(verdict(&f, x86_64(GETPPID)), errno(3));
    // x32 numbers are a foreign ABI for libseccomp's x86_64-only filter...
    assert_eq!(verdict(&f, x86_64(X32 | GETPPID)), KILL_THREAD);
    assert_eq!(verdict(&f, x86_64(X32)), KILL_THREAD);
    assert_eq!(verdict(&f, x86_64(0x8000_0000)), KILL_THREAD);
    // ...except -1, which tracers use to skip a syscall.
    assert_eq!(verdict(&f, x86_64(u32::MAX)), ALLOW);
    // i386 is not in the filter either.
    assert_eq!(
        verdict(&f, Data::new(AUDIT_I386, I386_GETPPID)),
        KILL_THREAD
    );
}

#[test]
fn x86_64_with_x32_and_i386() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "rt_sigaction", "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}
        ]
    }));
    assert_eq!(verdict(&f, x86_64(0)), ALLOW);
    assert_eq!(verdict(&f, x86_64(13)), ALLOW); // x86_64 rt_sigaction
    assert_eq!(verdict(&f, x86_64(GETPPID)), errno(3));
    assert_eq!(verdict(&f, x86_64(X32)), ALLOW); // x32 read
    assert_eq!(verdict(&f, x86_64(X32 | 512)), ALLOW); // x32 rt_sigaction
    assert_eq!(verdict(&f, x86_64(X32 | 13)), EPERM); // not an x32 syscall number
    assert_eq!(verdict(&f, x86_64(X32 | GETPPID)), errno(3));
    assert_eq!(verdict(&f, x86_64(X32 | 39)), ALLOW);
    assert_eq!(verdict(&f, Data::new(AUDIT_I386, 3)), ALLOW); // i386 read
    assert_eq!(verdict(&f, Data::new(AUDIT_I386, 174)), ALLOW); // i386 rt_sigaction
    assert_eq!(verdict(&f, Data::new(AUDIT_I386, 0)), EPERM); // i386 restart_syscall
    assert_eq!(verdict(&f, Data::new(AUDIT_I386, I386_GETPPID)), errno(3));
    assert_eq!(verdict(&f, Data::new(AUDIT_AARCH64, 63)), KILL_THREAD);
    assert_eq!(verdict(&f, Data::new(AUDIT_PPC64LE, 3)), KILL_THREAD);
}

#[test]
fn i386_socketcall_and_ipc_multiplexers() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["socket", "accept", "shmget"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["connect"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 16, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let i386 = |nr, args: &[u64]| verdict(&f, Data::new(AUDIT_I386, nr).args(args));
    assert_eq!(i386(359, &[]), ALLOW); // direct socket
    assert_eq!(i386(102, &[1]), ALLOW); // socketcall(SYS_SOCKET)
    assert_eq!(i386(102, &[5]), ALLOW); // socketcall(SYS_ACCEPT); no direct accept on i386
    assert_eq!(i386(102, &[2]), EPERM); // socketcall(SYS_BIND)
    assert_eq!(i386(117, &[23]), ALLOW); // ipc(SHMGET)
    assert_eq!(i386(395, &[]), ALLOW); // direct shmget
    assert_eq!(i386(117, &[22]), EPERM); // ipc(SHMDT)
                                         // libseccomp replaces the arg-0 test with the call number and keeps the others.
    assert_eq!(i386(102, &[3, 0, 16]), ALLOW);
    assert_eq!(i386(102, &[3, 0, 17]), EPERM);
    assert_eq!(i386(362, &[99, 0, 16]), ALLOW); // direct connect keeps both tests
    assert_eq!(i386(362, &[3, 0, 16]), EPERM);
    // x86_64 has no multiplexer.
    assert_eq!(verdict(&f, x86_64(41)), ALLOW);
    assert_eq!(verdict(&f, x86_64(43)), ALLOW);
}

#[test]
fn enosys_stub_like_runc() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["read", "getppid"], "action": "SCMP_ACT_ALLOW"},
            // Counts for the threshold although it is dropped (same as default).
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            // Multiplexed on i386: never raises the i386 threshold.
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    // x86_64: the highest number the profile names is getppid (110).
    assert_eq!(verdict(&f, x86_64(110)), ALLOW);
    assert_eq!(verdict(&f, x86_64(109)), EPERM);
    assert_eq!(verdict(&f, x86_64(111)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(0x3fff_ffff)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(0x8000_0000)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(X32)), KILL_THREAD);
    assert_eq!(verdict(&f, x86_64(u32::MAX)), EPERM);
    // i386: read = 3, getpid = 20, getppid = 64 → threshold 64.
    let i386 = |nr, a0| verdict(&f, Data::new(AUDIT_I386, nr).args(&[a0]));
    assert_eq!(i386(64, 0), ALLOW);
    assert_eq!(i386(65, 0), ENOSYS);
    assert_eq!(i386(102, 1), ENOSYS); // socketcall is above the threshold
    assert_eq!(i386(359, 0), ENOSYS); // and so is the direct socket()
    assert_eq!(i386(u32::MAX, 0), ENOSYS);
}

#[test]
fn enosys_stub_with_x32() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "getppid", "rt_sigaction"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(verdict(&f, x86_64(111)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(100)), KILL_PROCESS);
    assert_eq!(verdict(&f, x86_64(X32 | 512)), ALLOW);
    assert_eq!(verdict(&f, x86_64(X32 | 511)), KILL_PROCESS);
    assert_eq!(verdict(&f, x86_64(X32 | 513)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(0xc000_0000)), ENOSYS);
    assert_eq!(verdict(&f, x86_64(u32::MAX)), ENOSYS);
}

#[test]
fn no_enosys_stub_for_permissive_defaults() {
    for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
        let f = build(json!({
            "defaultAction": default,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL"}, {"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
        }));
        let d = verdict(&f, x86_64(200));
        assert_ne!(d, ENOSYS, "{default}");
        assert_eq!(verdict(&f, x86_64(GETPPID)), TRAP);
        assert_eq!(verdict(&f, x86_64(0)), KILL_THREAD);
    }
    for default in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let f = build(json!({
            "defaultAction": default,
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}]
        }));
        assert_eq!(verdict(&f, x86_64(200)), ENOSYS, "{default}");
    }
    // Only `read` (number 0): runc finds no threshold and adds no stub.
    let f = build(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(verdict(&f, x86_64(200)), EPERM);
}

#[test]
fn other_native_architectures() {
    let p = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getppid", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295_u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["cacheflush", "riscv_flush_icache"], "action": "SCMP_ACT_TRAP"}
        ]
    });
    let f = build_native(p.clone(), Architecture::Aarch64);
    let a = |nr, a0| verdict(&f, Data::new(AUDIT_AARCH64, nr).args(&[a0]));
    assert_eq!(a(173, 0), ALLOW);
    assert_eq!(a(63, 0), ALLOW);
    assert_eq!(a(92, 0xffff_ffff), ALLOW);
    assert_eq!(a(92, 0xffff_ffff_ffff_ffff), EPERM);
    assert_eq!(a(174, 0), ENOSYS);
    assert_eq!(verdict(&f, x86_64(110)), KILL_THREAD);

    let f = build_native(p.clone(), Architecture::Arm);
    let a = |nr, a0| verdict(&f, Data::new(AUDIT_ARM, nr).args(&[a0]));
    assert_eq!(a(64, 0), ALLOW);
    assert_eq!(a(136, 0xffff_ffff), ALLOW);
    assert_eq!(a(136, 0xffff_ffff_ffff_ffff), ALLOW); // 32-bit ABI: low word only
    assert_eq!(a(0x0f0002, 0), TRAP);
    assert_eq!(a(0x0f0003, 0), ENOSYS);
    assert_eq!(a(500, 0), EPERM);

    let f = build_native(p, Architecture::Riscv64);
    let a = |nr| verdict(&f, Data::new(AUDIT_RISCV64, nr));
    assert_eq!(a(173), ALLOW);
    assert_eq!(a(259), TRAP);
    assert_eq!(a(258), EPERM);
    assert_eq!(a(260), ENOSYS);
}

#[test]
fn native_arch_listed_or_missing() {
    let f = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_NATIVE", "SCMP_ARCH_AARCH64", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(
        f.architectures(),
        &[Architecture::X86_64, Architecture::Aarch64]
    );
    assert_eq!(verdict(&f, x86_64(GETPPID)), EPERM);
    assert_eq!(verdict(&f, Data::new(AUDIT_AARCH64, 173)), EPERM);
    let f = build(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"]}));
    assert_eq!(
        f.architectures(),
        &[Architecture::X86_64, Architecture::X86]
    );
}

#[test]
fn long_rule_chains_need_trampolines() {
    // 150 conditional rules on one low syscall put >255 instructions inside
    // the search tree, so both the tree and the chain need long jumps.
    let mut rules: Vec<serde_json::Value> = (0..150u64)
        .map(|i| {
            json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1,
            "args": [{"index": 1, "value": i * 3 + (1u64 << 33), "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    rules.push(json!({"names": ["getppid", "write", "exit_group", "futex_waitv"], "action": "SCMP_ACT_ALLOW"}));
    let f = build(json!({"defaultAction": "SCMP_ACT_TRAP", "syscalls": rules}));
    assert!(f.len() > 600, "{}", f.len());
    let ja = f.instructions().iter().filter(|i| i.code == 0x05).count();
    assert!(ja > 0, "expected ja trampolines");
    for i in 0..150u64 {
        let got = verdict(&f, x86_64(0).args(&[0, i * 3 + (1 << 33)]));
        assert_eq!(got, errno(i as u32 + 1));
        assert_eq!(verdict(&f, x86_64(0).args(&[0, i * 3 + 1])), TRAP);
    }
    for nr in [1, 110, 231, 449] {
        assert_eq!(verdict(&f, x86_64(nr)), ALLOW);
    }
    assert_eq!(verdict(&f, x86_64(450)), ENOSYS);
}

#[test]
fn flags() {
    let flags = |p| build(p).flags();
    // No flags at all: runc asks for SPEC_ALLOW.
    assert_eq!(flags(json!({"defaultAction": "SCMP_ACT_ALLOW"})), 1 << 2);
    assert_eq!(
        flags(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []})),
        0
    );
    assert_eq!(
        flags(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]})
        ),
        1 << 1
    );
    assert_eq!(
        flags(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "listenerPath": "/x", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})
        ),
        (1 << 2) | (1 << 3)
    );
    // A NOTIFY rule whose names all are unknown still asks for a listener, as in runc.
    let f = build(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [], "listenerPath": "/x",
        "syscalls": [{"names": ["nope"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(f.uses_notify());
    assert_eq!(f.flags(), 1 << 3);
}

#[test]
fn lists_for_features() {
    assert_eq!(berth_seccomp::supported_archs().len(), 6);
    assert!(berth_seccomp::supported_operators().contains(&"SCMP_CMP_MASKED_EQ"));
    let actions = berth_seccomp::supported_actions();
    assert!(actions.contains(&"SCMP_ACT_ALLOW"), "{actions:?}");
    assert!(actions.contains(&"SCMP_ACT_ERRNO"), "{actions:?}");
    let flags = berth_seccomp::supported_flags();
    assert!(flags.contains(&"SECCOMP_FILTER_FLAG_TSYNC"), "{flags:?}");
}
