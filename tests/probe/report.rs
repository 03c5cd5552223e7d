//! `report`: one JSON object describing everything the process can see.

use crate::util::{out, readlink, stat_info, unescape};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/console",
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/shm",
    "/dev/pts",
    "/dev/mqueue",
];

const NAMESPACES: &[&str] = &[
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
];

/// Fields of /proc/self/status ("Key:\tvalue").
fn status_fields() -> HashMap<String, String> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn read_string(p: &str) -> Value {
    match std::fs::read_to_string(p) {
        Ok(s) => Value::String(s),
        Err(_) => Value::Null,
    }
}

fn groups() -> Value {
    // SAFETY: size 0 only queries the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Value::Null;
    }
    let mut v = vec![0 as libc::gid_t; n as usize];
    // SAFETY: buffer holds n entries.
    let m = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    if m < 0 {
        return Value::Null;
    }
    v.truncate(m as usize);
    json!(v)
}

fn cchars(a: &[libc::c_char]) -> String {
    let b: Vec<u8> = a
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn uname() -> (Value, Value) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return (Value::Null, Value::Null);
    }
    (json!(cchars(&u.nodename)), json!(cchars(&u.domainname)))
}

fn prctl_get(opt: libc::c_int) -> i32 {
    // SAFETY: PR_GET_* options with zero extra args.
    unsafe {
        libc::prctl(
            opt,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    }
}

fn parse_mountinfo_line(line: &str) -> Value {
    let f: Vec<&str> = line.split(' ').collect();
    let sep = match f.iter().skip(6).position(|x| *x == "-") {
        Some(p) => p + 6,
        _ => return json!({ "unparsed": line }),
    };
    let after = &f[sep + 1..];
    if after.len() < 3 {
        return json!({ "unparsed": line });
    }
    let split = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
    json!({
        "id": f[0].parse::<u64>().ok(),
        "parent": f[1].parse::<u64>().ok(),
        "major_minor": f[2],
        "root": unescape(f[3]),
        "mount_point": unescape(f[4]),
        "options": split(f[5]),
        "optional": f[6..sep].to_vec(),
        "fstype": unescape(after[0]),
        "source": unescape(after[1]),
        "super_options": split(&unescape(after[2])),
    })
}

fn mounts() -> Value {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(s) => Value::Array(
            s.lines()
                .filter(|l| !l.is_empty())
                .map(parse_mountinfo_line)
                .collect(),
        ),
        Err(_) => Value::Null,
    }
}

fn fds() -> Value {
    // List names first, close the directory, then readlink; the directory's
    // own fd is closed by then and its readlink fails with ENOENT.
    let mut nums: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect(),
        Err(_) => return Value::Null,
    };
    nums.sort_unstable();
    let mut v = Vec::new();
    for n in nums {
        match std::fs::read_link(format!("/proc/self/fd/{n}")) {
            Ok(t) => v.push(json!({"fd": n, "target": t.to_string_lossy()})),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(_) => v.push(json!({"fd": n, "target": Value::Null})),
        }
    }
    Value::Array(v)
}

fn rlimits() -> Value {
    let mut m = Map::new();
    for (name, res) in RLIMITS {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: r is a valid rlimit.
        let v = if unsafe { libc::getrlimit(*res, &mut r) } == 0 {
            json!([r.rlim_cur, r.rlim_max])
        } else {
            Value::Null
        };
        m.insert(name.to_string(), v);
    }
    Value::Object(m)
}

fn namespaces() -> Value {
    let mut m = Map::new();
    for ns in NAMESPACES {
        m.insert(
            ns.to_string(),
            json!(readlink(&format!("/proc/self/ns/{ns}"))),
        );
    }
    Value::Object(m)
}

fn devices() -> Value {
    let mut m = Map::new();
    for d in DEVICES {
        m.insert(d.to_string(), stat_info(Path::new(d)));
    }
    Value::Object(m)
}

fn stdio() -> Value {
    let v: Vec<Value> = (0..3)
        .map(|fd| {
            // SAFETY: isatty on any fd number is harmless.
            let tty = unsafe { libc::isatty(fd) } == 1;
            json!({"fd": fd, "target": readlink(&format!("/proc/self/fd/{fd}")), "isatty": tty})
        })
        .collect();
    Value::Array(v)
}

pub fn run() -> i32 {
    let st = status_fields();
    let hex = |k: &str| st.get(k).and_then(|v| u64::from_str_radix(v, 16).ok());
    let caps = json!({
        "inheritable": hex("CapInh"),
        "permitted": hex("CapPrm"),
        "effective": hex("CapEff"),
        "bounding": hex("CapBnd"),
        "ambient": hex("CapAmb"),
    });
    let umask = st.get("Umask").and_then(|v| u32::from_str_radix(v, 8).ok());
    let seccomp = st.get("Seccomp").and_then(|v| v.parse::<u64>().ok());
    let (hostname, domainname) = uname();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .map(|s| s.lines().map(str::to_string).collect::<Vec<_>>());
    let oom = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    // SAFETY: these calls have no memory-safety preconditions.
    let (pid, ppid, uid, gid, euid, egid, personality) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
            libc::personality(0xffff_ffff),
        )
    };

    let report = json!({
        "pid": pid,
        "ppid": ppid,
        "uid": uid,
        "gid": gid,
        "euid": euid,
        "egid": egid,
        "groups": groups(),
        "umask": umask,
        "cwd": std::env::current_dir().ok().map(|p| p.to_string_lossy().into_owned()),
        "env": std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect::<Vec<_>>(),
        "args": std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "hostname": hostname,
        "domainname": domainname,
        "caps": caps,
        "no_new_privs": prctl_get(libc::PR_GET_NO_NEW_PRIVS) == 1,
        "seccomp": seccomp,
        "dumpable": prctl_get(libc::PR_GET_DUMPABLE),
        "mounts": mounts(),
        "fds": fds(),
        "rlimits": rlimits(),
        "namespaces": namespaces(),
        "cgroup": cgroup,
        "oom_score_adj": oom,
        "personality": personality,
        "uid_map": read_string("/proc/self/uid_map"),
        "gid_map": read_string("/proc/self/gid_map"),
        "devices": devices(),
        "stdio": stdio(),
    });
    out(&report);
    0
}
