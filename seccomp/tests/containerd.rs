//! containerd's default profile (tests/data, copied from shared/fixtures).

mod common;

use berth_seccomp::{compile_with, Architecture, CompileOptions, Filter};
use common::*;

fn filter() -> Filter {
    let opts = CompileOptions {
        native: Some(Architecture::X86_64),
        ..Default::default()
    };
    let f = compile_with(&containerd_profile(), &opts).unwrap();
    verify(f.instructions()).unwrap();
    f
}

fn x86_64(nr: u32, args: &[u64]) -> Data {
    Data::new(AUDIT_X86_64, nr).args(args)
}

#[test]
fn x86_64_verdicts() {
    let f = filter();
    let v = |nr, args: &[u64]| verdict(&f, x86_64(nr, args));
    assert_eq!(v(0, &[]), ALLOW, "read");
    assert_eq!(v(1, &[]), ALLOW, "write");
    assert_eq!(v(202, &[]), ALLOW, "futex");
    assert_eq!(v(59, &[]), ALLOW, "execve");
    assert_eq!(v(449, &[]), ALLOW, "futex_waitv");
    assert_eq!(v(165, &[]), EPERM, "mount");
    assert_eq!(v(166, &[]), EPERM, "umount2");
    assert_eq!(v(246, &[]), EPERM, "kexec_load");
    assert_eq!(v(169, &[]), EPERM, "reboot");
    assert_eq!(v(272, &[]), EPERM, "unshare");
    assert_eq!(v(321, &[]), EPERM, "bpf");
    // This profile (for kernels >= 4.8) allows ptrace.
    assert_eq!(v(101, &[]), ALLOW, "ptrace");
    // personality: only the listed personas.
    for ok in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(v(135, &[ok]), ALLOW, "personality({ok:#x})");
    }
    for bad in [1, 0x0040_0000, 0x1_0000_0000, 0xffff_ffff_ffff_ffff] {
        assert_eq!(v(135, &[bad]), EPERM, "personality({bad:#x})");
    }
    // clone: allowed unless a namespace flag is set.
    const SIGCHLD: u64 = 17;
    const CLONE_THREAD_FLAGS: u64 = 0x3d0f00;
    assert_eq!(v(56, &[SIGCHLD]), ALLOW);
    assert_eq!(v(56, &[CLONE_THREAD_FLAGS]), ALLOW);
    assert_eq!(v(56, &[0x20000 | SIGCHLD]), EPERM, "CLONE_NEWNS");
    assert_eq!(v(56, &[0x1000_0000]), EPERM, "CLONE_NEWUSER");
    assert_eq!(v(56, &[0x4000_0000]), EPERM, "CLONE_NEWNET");
    assert_eq!(
        v(56, &[0x1_0000_0000 | SIGCHLD]),
        ALLOW,
        "high bits are not namespace flags"
    );
    assert_eq!(
        v(435, &[]),
        ENOSYS,
        "clone3 gets ENOSYS so libc falls back to clone"
    );
    assert_eq!(
        v(450, &[]),
        ENOSYS,
        "above the highest syscall the profile names"
    );
    assert_eq!(v(1000, &[]), ENOSYS);
    assert_eq!(v(u32::MAX, &[]), ENOSYS);
}

#[test]
fn i386_and_x32_verdicts() {
    let f = filter();
    let i386 = |nr, args: &[u64]| verdict(&f, Data::new(AUDIT_I386, nr).args(args));
    assert_eq!(i386(3, &[]), ALLOW, "read");
    assert_eq!(i386(4, &[]), ALLOW, "write");
    assert_eq!(i386(102, &[1]), ALLOW, "socketcall");
    assert_eq!(i386(117, &[1]), ALLOW, "ipc");
    assert_eq!(i386(403, &[]), ALLOW, "clock_gettime64");
    assert_eq!(i386(21, &[]), EPERM, "mount");
    assert_eq!(i386(283, &[]), EPERM, "kexec_load");
    assert_eq!(i386(136, &[0xffff_ffff]), ALLOW, "personality");
    assert_eq!(i386(136, &[2]), EPERM, "personality");
    assert_eq!(i386(120, &[17]), ALLOW, "clone");
    assert_eq!(i386(120, &[0x20000]), EPERM, "clone(CLONE_NEWNS)");
    assert_eq!(i386(435, &[]), ENOSYS, "clone3");
    assert_eq!(i386(460, &[]), ENOSYS);

    let x32 = |nr, args: &[u64]| verdict(&f, Data::new(AUDIT_X86_64, X32 | nr).args(args));
    assert_eq!(x32(0, &[]), ALLOW, "read");
    assert_eq!(x32(512, &[]), ALLOW, "rt_sigaction");
    assert_eq!(x32(520, &[]), ALLOW, "execve");
    assert_eq!(x32(165, &[]), EPERM, "mount");
    assert_eq!(x32(56, &[0x20000]), EPERM, "clone(CLONE_NEWNS)");
    assert_eq!(x32(600, &[]), ENOSYS);

    assert_eq!(verdict(&f, Data::new(AUDIT_AARCH64, 63)), KILL_THREAD);
    assert_eq!(verdict(&f, Data::new(AUDIT_ARM, 3)), KILL_THREAD);
}

#[test]
fn every_named_syscall_resolves_on_x86() {
    let f = filter();
    let skipped: Vec<&str> = f
        .skipped_syscalls()
        .iter()
        .map(|(a, n)| {
            assert!(a.starts_with("SCMP_ARCH_X"), "{a}");
            n.as_str()
        })
        .collect();
    let profile = containerd_profile();
    for sc in profile.syscalls().as_ref().unwrap() {
        for name in sc.names() {
            let resolves = [Architecture::X86_64, Architecture::X86]
                .iter()
                .any(|a| a.syscall_number(name).is_some())
                || matches!(name.as_str(), "accept" | "recv" | "send");
            assert!(resolves, "{name} resolves on neither x86_64 nor i386");
        }
    }
    // Names absent from one ABI are reported, e.g. the 32-bit-only ones on x86_64.
    assert!(skipped.contains(&"chown32"));
    assert!(skipped.contains(&"epoll_ctl_old")); // x86_64-only, so skipped on i386/x32
}

#[test]
fn instruction_counts() {
    let f = filter();
    let mut worst = (0, 0u32, 0u32);
    let mut total_steps = 0usize;
    let mut count = 0usize;
    for (arch, range) in [
        (AUDIT_X86_64, 0..470u32),
        (AUDIT_X86_64, X32..X32 | 560),
        (AUDIT_I386, 0..470),
    ] {
        for nr in range {
            let (_, steps) = run(f.instructions(), &Data::new(arch, nr).args(&[17]));
            total_steps += steps;
            count += 1;
            if steps > worst.0 {
                worst = (steps, arch, nr);
            }
        }
    }
    let steps = |arch, nr| run(f.instructions(), &Data::new(arch, nr)).1;
    println!(
        "containerd default profile (x86_64, x86, x32): {} instructions; \
         executed: read {} write {} futex {} epoll_wait {} (x86_64), read {} (i386), read {} (x32); \
         mean {:.1} and worst {} (arch {:#x} nr {:#x}) over all syscall numbers",
        f.len(),
        steps(AUDIT_X86_64, 0),
        steps(AUDIT_X86_64, 1),
        steps(AUDIT_X86_64, 202),
        steps(AUDIT_X86_64, 232),
        steps(AUDIT_I386, 3),
        steps(AUDIT_X86_64, X32),
        total_steps as f64 / count as f64,
        worst.0,
        worst.1,
        worst.2,
    );
    assert!(
        f.len() < 1024,
        "containerd's profile should fit comfortably: {}",
        f.len()
    );
    assert!(steps(AUDIT_X86_64, 0) <= 16);
    assert!(worst.0 <= 40);
}

#[test]
#[ignore = "prints the program"]
fn dump() {
    let f = filter();
    for (i, ins) in f.instructions().iter().enumerate() {
        println!(
            "{i:4}: {:#06x} {:3} {:3} {:#x}",
            ins.code, ins.jt, ins.jf, ins.k
        );
    }
}
