//! The last steps before the user program runs: rlimits, identity,
//! capabilities, the working directory and the executable lookup.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, PosixRlimitType, Process};

use crate::error::{Context, Error, Result};
use crate::sys;

pub fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(rlimit_resource(l.typ()), &r) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Config(format!(
                "process.rlimits[{i}] ({}): setrlimit soft={} hard={}: {e}",
                serde_json::to_value(l.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                l.soft(),
                l.hard()
            )));
        }
    }
    Ok(())
}

fn to_caps(set: Option<&Capabilities>, field: &str) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    let last = last_cap();
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let cap = Cap::from_str(&name).map_err(|_| {
            Error::Config(format!(
                "process.capabilities.{field}: unknown capability {name}"
            ))
        })?;
        // runc ignores capabilities the running kernel does not have.
        if cap.index() as u32 <= last {
            out.insert(cap);
        }
    }
    Ok(out)
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

pub struct CapPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

pub fn plan_caps(c: Option<&LinuxCapabilities>) -> Result<CapPlan> {
    let c = match c {
        Some(c) => c,
        None => {
            return Ok(CapPlan {
                bounding: CapsHashSet::new(),
                effective: CapsHashSet::new(),
                permitted: CapsHashSet::new(),
                inheritable: CapsHashSet::new(),
                ambient: CapsHashSet::new(),
            })
        }
    };
    Ok(CapPlan {
        bounding: to_caps(c.bounding().as_ref(), "bounding")?,
        effective: to_caps(c.effective().as_ref(), "effective")?,
        permitted: to_caps(c.permitted().as_ref(), "permitted")?,
        inheritable: to_caps(c.inheritable().as_ref(), "inheritable")?,
        ambient: to_caps(c.ambient().as_ref(), "ambient")?,
    })
}

/// Drops the bounding set; must run while CAP_SETPCAP is still held.
pub fn drop_bounding(plan: &CapPlan) -> Result<()> {
    let last = last_cap();
    for cap in caps::all() {
        if cap.index() as u32 > last || plan.bounding.contains(&cap) {
            continue;
        }
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(|e| Error::State(format!("dropping {cap} from the bounding set: {e}")))?;
    }
    Ok(())
}

/// The largest id berth passes to setresuid/setresgid/setgroups. Above it
/// an id is negative as the kernel's signed argument, and -1 (4294967295)
/// means "leave unchanged": the process would silently stay root.
pub const MAX_ID: u32 = i32::MAX as u32;

/// process.user: every id must be a real id (runc refuses the same range).
pub fn validate_user(user: &oci_spec::runtime::User) -> Result<()> {
    for (field, id) in [("uid", user.uid()), ("gid", user.gid())] {
        if id > MAX_ID {
            return Err(Error::Config(format!(
                "process.user.{field}: {id} is out of range (at most {MAX_ID})"
            )));
        }
    }
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        if *g > MAX_ID {
            return Err(Error::Config(format!(
                "process.user.additionalGids[{i}]: {g} is out of range (at most {MAX_ID})"
            )));
        }
    }
    Ok(())
}

/// runc's fixStdioPermissions: the process's stdio (a pty, pipes) is made
/// the user's, so a non-root process can reopen /dev/stdout or its
/// terminal. /dev/null is left alone, and a stdio the user namespace
/// cannot re-own (unmapped, read-only) is left as it is.
pub fn fix_stdio_owner(uid: u32) {
    for fd in 0..3 {
        // SAFETY: fstat of a possibly closed fd fills a zeroed buffer or fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_uid == uid {
            continue;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3) {
            continue;
        }
        // SAFETY: plain syscall; failure is not fatal (see above).
        unsafe { libc::fchown(fd, uid, st.st_gid) };
    }
}

/// Switches to the process's uid/gid/groups, keeping capabilities across the
/// switch so the configured sets can be applied afterwards.
pub fn set_identity(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    // Checked at create and exec already; checked again where it matters,
    // since an id of -1 would silently leave the process root.
    validate_user(u)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).ctx(|| "PR_SET_KEEPCAPS".into())?;
    if setgroups_allowed {
        let groups: Vec<libc::gid_t> = u.additional_gids().clone().unwrap_or_default();
        // SAFETY: pointer and length describe `groups`.
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
            return Err(Error::Config(format!(
                "process.user.additionalGids {groups:?}: setgroups: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    // SAFETY: plain syscalls.
    if unsafe { libc::setresgid(u.gid(), u.gid(), u.gid()) } != 0 {
        return Err(Error::Config(format!(
            "process.user.gid {}: {}",
            u.gid(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: plain syscall.
    if unsafe { libc::setresuid(u.uid(), u.uid(), u.uid()) } != 0 {
        return Err(Error::Config(format!(
            "process.user.uid {}: {}",
            u.uid(),
            std::io::Error::last_os_error()
        )));
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).ctx(|| "PR_SET_KEEPCAPS".into())?;
    if let Some(m) = u.umask() {
        // SAFETY: plain syscall.
        unsafe { libc::umask(m as libc::mode_t) };
    }
    Ok(())
}

/// The sets of `plan` with CAP_SYS_ADMIN kept effective and permitted:
/// what the init holds from the identity switch until its seccomp filter
/// is loaded (without no_new_privs that takes CAP_SYS_ADMIN). Ambient
/// capabilities come with [`apply_caps`], which follows.
pub fn apply_caps_holding_sys_admin(plan: &CapPlan) -> Result<()> {
    let mask = |set: &CapsHashSet| set.iter().fold(0u64, |m, c| m | c.bitmask());
    let admin = Cap::CAP_SYS_ADMIN.bitmask();
    sys::capset(
        mask(&plan.effective) | admin,
        mask(&plan.permitted) | admin,
        mask(&plan.inheritable),
    )
    .map_err(|e| Error::Config(format!("process.capabilities: {e}")))
}

pub fn apply_caps(plan: &CapPlan) -> Result<()> {
    let mask = |set: &CapsHashSet| set.iter().fold(0u64, |m, c| m | c.bitmask());
    sys::capset(
        mask(&plan.effective),
        mask(&plan.permitted),
        mask(&plan.inheritable),
    )
    .map_err(|e| {
        Error::Config(format!(
            "process.capabilities: setting effective/permitted/inheritable: {e}"
        ))
    })?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::Config(format!("process.capabilities.ambient: clearing: {e}")))?;
    for c in &plan.ambient {
        // Like runc: an ambient cap outside permitted+inheritable is skipped.
        if plan.permitted.contains(c) && plan.inheritable.contains(c) {
            caps::raise(None, CapSet::Ambient, *c).map_err(|e| {
                Error::Config(format!("process.capabilities.ambient: raising {c}: {e}"))
            })?;
        }
    }
    Ok(())
}

/// The environment for the user program: the spec's, plus HOME from the
/// container's /etc/passwd when the spec has none (as runc does).
pub fn environment(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(p.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    // The container's file: only a regular one is read (a fifo would hang us).
    let f = std::fs::File::open("/etc/passwd").ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut pw = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 1 << 20), &mut pw).ok()?;
    pw.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// Finds the program the way execvp would, but up front, so that `create`
/// fails with the path named when it does not exist.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        // A path: it must exist and not be a directory; whether it may be
        // executed is the kernel's to say at execve (CAP_DAC_OVERRIDE, a
        // noexec mount), not a pre-check's.
        let p = PathBuf::from(arg0);
        return check_exec(&p).map(|_| p);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        // As Go's LookPath (runc): a regular file with an execute bit.
        if std::fs::metadata(&cand).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        }) {
            return Ok(cand);
        }
    }
    Err(Error::Init(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// runc's (Go's) texts: `exec: "/x": stat /x: no such file or directory`,
/// `exec: "/etc": is a directory`.
fn check_exec(p: &Path) -> Result<()> {
    let shown = p.display().to_string();
    let md = std::fs::metadata(p).map_err(|e| {
        Error::Init(crate::error::for_clients(&format!(
            "exec: {shown:?}: stat {shown}: {e}"
        )))
    })?;
    if md.is_dir() {
        return Err(Error::Init(format!("exec: {shown:?}: is a directory")));
    }
    Ok(())
}

/// chdir to the process cwd and make sure it really is inside the
/// container: a cwd that resolves outside the root (an inherited fd's
/// directory, the CVE-2024-21626 class) makes getcwd report it unreachable.
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    std::env::set_current_dir(cwd)
        .map_err(|e| Error::Config(format!("process.cwd {}: {e}", cwd.display())))?;
    match sys::getcwd() {
        Ok(p) if p.first() == Some(&b'/') => Ok(()),
        Ok(p) => Err(Error::Config(format!(
            "process.cwd {}: resolves outside the container ({})",
            cwd.display(),
            String::from_utf8_lossy(&p)
        ))),
        Err(e) => Err(Error::Config(format!(
            "process.cwd {}: resolves outside the container: {e}",
            cwd.display()
        ))),
    }
}
