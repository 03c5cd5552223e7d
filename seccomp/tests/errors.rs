//! Profiles compile() must refuse, and how it says so.

mod common;

use berth_seccomp::{compile, compile_with, CompileOptions, Error};
use common::*;
use serde_json::json;

#[test]
fn arg_index_out_of_range() {
    let e = compile_err(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_eq!(
        e,
        "linux.seccomp.syscalls[3].args[0].index: 6 is out of range (0-5)"
    );
}

#[test]
fn errno_on_actions_without_one() {
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5}));
    assert_eq!(
        e,
        "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW does not take an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
    );
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}));
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL does not take"),
        "{e}"
    );
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}]}));
    assert_eq!(
        e,
        "linux.seccomp.syscalls[0].errnoRet: 65536 does not fit the 16-bit seccomp return data"
    );
}

#[test]
fn unsupported_architectures() {
    for arch in ["SCMP_ARCH_MIPS", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X"] {
        let e = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", arch]})))
        .unwrap_err();
        assert!(matches!(e, Error::UnsupportedArchitecture { .. }));
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "linux.seccomp.architectures[1]: unsupported architecture {arch}"
            )),
            "{msg}"
        );
    }
}

#[test]
fn notify_restrictions() {
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
    assert!(
        e.starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
        "{e}"
    );
    let e = compile_err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(
        e.starts_with(
            "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for write"
        ),
        "{e}"
    );
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(
        e,
        "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY"
    );
    let opts = CompileOptions {
        wait_killable_recv: true,
        ..Default::default()
    };
    let e = compile_with(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"})), &opts).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
}

#[test]
fn empty_names() {
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [], "action": "SCMP_ACT_KILL"}]}));
    assert_eq!(
        e,
        "linux.seccomp.syscalls[0].names: must name at least one syscall"
    );
    let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_KILL"}]}));
    assert_eq!(e, "linux.seccomp.syscalls[0].names[1]: empty syscall name");
}

#[test]
fn program_too_long() {
    // 1000 rules with a 64-bit comparison each cannot fit in 4096 instructions.
    let rules: Vec<serde_json::Value> = (0..1000u64)
        .map(|i| {
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": i << 32 | i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let e = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::TooLong { max: 4096, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("linux.seccomp: the compiled filter has "),
        "{e}"
    );
}
