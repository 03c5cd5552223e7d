//! Random profiles against a direct model of the documented semantics, to
//! shake out layout bugs (search tree, intervals, long jumps).

mod common;

use berth_seccomp::Architecture;
use common::*;
use serde_json::json;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: [&str; 40] = [
    "read",
    "write",
    "open",
    "close",
    "stat",
    "mmap",
    "brk",
    "ioctl",
    "pipe",
    "getpid",
    "sendfile",
    "clone",
    "fork",
    "execve",
    "exit",
    "kill",
    "uname",
    "fcntl",
    "getcwd",
    "chdir",
    "rename",
    "mkdir",
    "getppid",
    "personality",
    "mount",
    "umount2",
    "reboot",
    "gettid",
    "futex",
    "epoll_wait",
    "openat",
    "unshare",
    "splice",
    "pipe2",
    "prlimit64",
    "bpf",
    "execveat",
    "statx",
    "clone3",
    "futex_waitv",
];
const OPS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
const VALUES: [u64; 8] = [
    0,
    1,
    7,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0007,
    u64::MAX,
    0x8000_0000,
];

fn holds(op: &str, value: u64, value_two: u64, arg: u64) -> bool {
    match op {
        "SCMP_CMP_EQ" => arg == value,
        "SCMP_CMP_NE" => arg != value,
        "SCMP_CMP_LT" => arg < value,
        "SCMP_CMP_LE" => arg <= value,
        "SCMP_CMP_GE" => arg >= value,
        "SCMP_CMP_GT" => arg > value,
        _ => arg & value == value_two & value,
    }
}

struct Rule {
    nr: u32,
    action: u32,
    conds: Vec<(usize, &'static str, u64, u64)>,
}

#[test]
fn random_profiles_match_the_model() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let actions = [
        ("SCMP_ACT_ALLOW", ALLOW),
        ("SCMP_ACT_KILL_PROCESS", KILL_PROCESS),
        ("SCMP_ACT_TRAP", TRAP),
        ("SCMP_ACT_LOG", LOG),
    ];
    let mut probes_run = 0;
    for round in 0..60 {
        let (default_name, default) =
            [("SCMP_ACT_ERRNO", EPERM), ("SCMP_ACT_ALLOW", ALLOW)][round % 2];
        // Each name used at most once, so the model needs no rule merging.
        let mut names: Vec<&str> = NAMES.to_vec();
        let mut rules = Vec::new();
        let mut json_rules = Vec::new();
        for _ in 0..(5 + rng.below(30)) {
            let name = names.swap_remove(rng.below(names.len()));
            let (aname, action) = actions[rng.below(actions.len())];
            let e = rng.below(200) as u32 + 2;
            let (aname, action) = if rng.below(5) == 0 {
                ("SCMP_ACT_ERRNO", errno(e))
            } else {
                (aname, action)
            };
            let mut conds = Vec::new();
            let mut args = Vec::new();
            // Distinct indexes: ANDed.
            let mut idx: Vec<usize> = (0..6).collect();
            for _ in 0..rng.below(4) {
                let index = idx.swap_remove(rng.below(idx.len()));
                let op = OPS[rng.below(OPS.len())];
                let value = VALUES[rng.below(VALUES.len())];
                let value_two = VALUES[rng.below(VALUES.len())];
                if op == "SCMP_CMP_MASKED_EQ" && value == 0 {
                    continue; // dropped by libseccomp; covered elsewhere
                }
                conds.push((index, op, value, value_two));
                args.push(json!({"index": index, "op": op, "value": value, "valueTwo": value_two}));
            }
            let mut r = json!({"names": [name], "action": aname});
            if aname == "SCMP_ACT_ERRNO" {
                r["errnoRet"] = json!(e);
            }
            if !args.is_empty() {
                r["args"] = json!(args);
            }
            json_rules.push(r);
            let nr = Architecture::X86_64.syscall_number(name).unwrap();
            if action != default {
                rules.push(Rule { nr, action, conds });
            }
        }
        let max = json_rules
            .iter()
            .map(|r| {
                Architecture::X86_64
                    .syscall_number(r["names"][0].as_str().unwrap())
                    .unwrap()
            })
            .max()
            .unwrap();
        let f = build(json!({"defaultAction": default_name, "syscalls": json_rules}));

        let model = |nr: u32, args: &[u64; 6]| -> u32 {
            if default != ALLOW && max > 0 && nr & X32 == 0 && nr > max {
                return ENOSYS;
            }
            if nr >= X32 && nr != u32::MAX {
                return KILL_THREAD;
            }
            match rules.iter().find(|r| r.nr == nr) {
                Some(r)
                    if r.conds
                        .iter()
                        .all(|&(i, op, v, v2)| holds(op, v, v2, args[i])) =>
                {
                    r.action
                }
                _ => default,
            }
        };

        let mut probe_nrs: Vec<u32> = (0..460).collect();
        probe_nrs.extend([
            X32,
            X32 | 1,
            0x7fff_ffff,
            0x8000_0000,
            0xc000_0000,
            u32::MAX - 1,
            u32::MAX,
        ]);
        for nr in probe_nrs {
            for _ in 0..3 {
                let mut args = [0u64; 6];
                for a in &mut args {
                    let v = VALUES[rng.below(VALUES.len())];
                    *a = match rng.below(3) {
                        0 => v,
                        1 => v.wrapping_add(1),
                        _ => v.wrapping_sub(1),
                    };
                }
                let got = verdict(&f, Data::new(AUDIT_X86_64, nr).args(&args));
                assert_eq!(
                    got,
                    model(nr, &args),
                    "round {round} nr {nr} args {args:x?}"
                );
                probes_run += 1;
            }
        }
        assert_eq!(verdict(&f, Data::new(AUDIT_I386, 3)), KILL_THREAD);
    }
    assert!(probes_run > 50_000);
}
