//! The ABIs berth can build filters for, and name → number resolution.

use crate::tables::{NONE, SYSCALLS};

/// `AUDIT_ARCH_*` values seen in `seccomp_data.arch`.
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub(crate) const AUDIT_ARCH_RISCV64: u32 = 0xc000_00f3;

/// x32 processes run as `AUDIT_ARCH_X86_64` and tell themselves apart by this
/// bit in the syscall number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A syscall ABI a filter can cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Architecture {
    /// i386 (`SCMP_ARCH_X86`), also compat mode on x86_64 kernels.
    X86,
    /// x86_64 (`SCMP_ARCH_X86_64`).
    X86_64,
    /// x32 (`SCMP_ARCH_X32`): x86_64 kernel ABI with 32-bit pointers.
    X32,
    /// 32-bit ARM EABI (`SCMP_ARCH_ARM`).
    Arm,
    /// 64-bit ARM (`SCMP_ARCH_AARCH64`).
    Aarch64,
    /// 64-bit RISC-V (`SCMP_ARCH_RISCV64`).
    Riscv64,
}

impl Architecture {
    /// Every architecture the compiler supports.
    pub const ALL: [Architecture; 6] = [
        Architecture::X86,
        Architecture::X86_64,
        Architecture::X32,
        Architecture::Arm,
        Architecture::Aarch64,
        Architecture::Riscv64,
    ];

    /// The runtime-spec / libseccomp name, e.g. `SCMP_ARCH_X86_64`.
    pub fn scmp_name(self) -> &'static str {
        match self {
            Architecture::X86 => "SCMP_ARCH_X86",
            Architecture::X86_64 => "SCMP_ARCH_X86_64",
            Architecture::X32 => "SCMP_ARCH_X32",
            Architecture::Arm => "SCMP_ARCH_ARM",
            Architecture::Aarch64 => "SCMP_ARCH_AARCH64",
            Architecture::Riscv64 => "SCMP_ARCH_RISCV64",
        }
    }

    /// The value the kernel puts in `seccomp_data.arch` for this ABI.
    pub fn audit_arch(self) -> u32 {
        match self {
            Architecture::X86 => AUDIT_ARCH_I386,
            Architecture::X86_64 | Architecture::X32 => AUDIT_ARCH_X86_64,
            Architecture::Arm => AUDIT_ARCH_ARM,
            Architecture::Aarch64 => AUDIT_ARCH_AARCH64,
            Architecture::Riscv64 => AUDIT_ARCH_RISCV64,
        }
    }

    /// The ABI of the running binary, which every filter covers.
    pub fn native() -> Option<Architecture> {
        if cfg!(all(target_arch = "x86_64", target_pointer_width = "64")) {
            Some(Architecture::X86_64)
        } else if cfg!(all(target_arch = "x86_64", target_pointer_width = "32")) {
            Some(Architecture::X32)
        } else if cfg!(target_arch = "x86") {
            Some(Architecture::X86)
        } else if cfg!(all(target_arch = "arm", target_endian = "little")) {
            Some(Architecture::Arm)
        } else if cfg!(all(target_arch = "aarch64", target_endian = "little")) {
            Some(Architecture::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Architecture::Riscv64)
        } else {
            None
        }
    }

    /// Maps an OCI architecture; `Ok(None)` for `SCMP_ARCH_NATIVE`, `Err(())`
    /// for ABIs the compiler cannot build for.
    pub(crate) fn from_oci(arch: oci_spec::runtime::Arch) -> Result<Option<Architecture>, ()> {
        use oci_spec::runtime::Arch;
        match arch {
            Arch::ScmpArchNative => Ok(None),
            Arch::ScmpArchX86 => Ok(Some(Architecture::X86)),
            Arch::ScmpArchX86_64 => Ok(Some(Architecture::X86_64)),
            Arch::ScmpArchX32 => Ok(Some(Architecture::X32)),
            Arch::ScmpArchArm => Ok(Some(Architecture::Arm)),
            Arch::ScmpArchAarch64 => Ok(Some(Architecture::Aarch64)),
            Arch::ScmpArchRiscv64 => Ok(Some(Architecture::Riscv64)),
            _ => Err(()),
        }
    }

    fn column(self) -> usize {
        match self {
            Architecture::X86 => 0,
            Architecture::X86_64 => 1,
            Architecture::X32 => 2,
            Architecture::Arm => 3,
            Architecture::Aarch64 => 4,
            Architecture::Riscv64 => 5,
        }
    }

    /// Whether argument comparisons look at all 64 bits. libseccomp compares
    /// only the low 32 bits on ABIs it models as 32-bit, x32 included, and
    /// runc inherits that.
    pub(crate) fn wide_args(self) -> bool {
        matches!(
            self,
            Architecture::X86_64 | Architecture::Aarch64 | Architecture::Riscv64
        )
    }

    /// The number `seccomp_data.nr` holds for `name` on this ABI (with the x32
    /// bit for x32), if the ABI has that syscall as a direct call.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        let idx = SYSCALLS.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        let nr = SYSCALLS[idx].1[self.column()];
        if nr == NONE {
            return None;
        }
        Some(if self == Architecture::X32 {
            nr | X32_SYSCALL_BIT
        } else {
            nr
        })
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scmp_name())
    }
}

/// i386 reaches the BSD socket calls and SysV IPC through the `socketcall`
/// and `ipc` multiplexers (first argument = call number) as well as, on newer
/// kernels, direct syscalls. libseccomp turns a rule for one of these names
/// into a rule for the multiplexer with `arg0 == call` plus the direct rule.
pub(crate) const X86_SOCKETCALL: u32 = 102;
pub(crate) const X86_IPC: u32 = 117;

pub(crate) fn x86_multiplexed(name: &str) -> Option<(u32, u64)> {
    const SOCKET: [&str; 20] = [
        "socket",
        "bind",
        "connect",
        "listen",
        "accept",
        "getsockname",
        "getpeername",
        "socketpair",
        "send",
        "recv",
        "sendto",
        "recvfrom",
        "shutdown",
        "setsockopt",
        "getsockopt",
        "sendmsg",
        "recvmsg",
        "accept4",
        "recvmmsg",
        "sendmmsg",
    ];
    const IPC: [(&str, u64); 12] = [
        ("semop", 1),
        ("semget", 2),
        ("semctl", 3),
        ("semtimedop", 4),
        ("msgsnd", 11),
        ("msgrcv", 12),
        ("msgget", 13),
        ("msgctl", 14),
        ("shmat", 21),
        ("shmdt", 22),
        ("shmget", 23),
        ("shmctl", 24),
    ];
    if let Some(i) = SOCKET.iter().position(|&n| n == name) {
        // SYS_SOCKET is 1, in table order.
        return Some((X86_SOCKETCALL, i as u64 + 1));
    }
    IPC.iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, call)| (X86_IPC, call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in SYSCALLS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn spot_checks() {
        use Architecture::*;
        let cases: &[(Architecture, &str, u32)] = &[
            (X86_64, "read", 0),
            (X86_64, "getppid", 110),
            (X86_64, "clone3", 435),
            (X86_64, "futex_waitv", 449),
            (X86, "getppid", 64),
            (X86, "socketcall", 102),
            (X86, "socket", 359),
            (X86, "clock_gettime64", 403),
            (X32, "read", X32_SYSCALL_BIT),
            (X32, "rt_sigaction", X32_SYSCALL_BIT | 512),
            (X32, "execve", X32_SYSCALL_BIT | 520),
            (Arm, "getppid", 64),
            (Arm, "cacheflush", 0x0f0002),
            (Arm, "set_tls", 0x0f0005),
            (Aarch64, "read", 63),
            (Aarch64, "getppid", 173),
            (Aarch64, "clone3", 435),
            (Riscv64, "riscv_flush_icache", 259),
            (Riscv64, "openat", 56),
        ];
        for &(arch, name, nr) in cases {
            assert_eq!(arch.syscall_number(name), Some(nr), "{arch} {name}");
        }
        assert_eq!(X86_64.syscall_number("socketcall"), None);
        assert_eq!(X86.syscall_number("accept"), None);
        assert_eq!(Aarch64.syscall_number("open"), None);
        assert_eq!(Aarch64.syscall_number("clock_gettime64"), None);
        assert_eq!(
            X32.syscall_number("rt_sigaction"),
            Some(X32_SYSCALL_BIT | 512)
        );
        assert_eq!(X86_64.syscall_number("no_such_syscall"), None);
    }

    #[test]
    fn native_is_known_on_this_host() {
        assert!(Architecture::native().is_some());
    }
}
