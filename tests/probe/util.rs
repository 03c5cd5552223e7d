//! Small helpers shared by the probe subcommands.

use serde_json::{json, Value};
use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub const USAGE: &str = "usage: berth-probe SUBCOMMAND [ARGS]
subcommands:
  report                     JSON report of everything the process sees
  stat PATH...               lstat info per path (JSON)
  read PATH                  raw file contents
  open PATH r|w|rw|path      try open(2), report errno (JSON)
  write PATH DATA            create/truncate PATH and write DATA (JSON)
  ls DIR                     sorted directory entries (JSON)
  exit N | sleep SECS | echo ARGS... | echo-stderr ARGS...
  wait-signal                print ready, wait for TERM/INT/HUP/USR1/USR2/QUIT
  count FILE                 write an increasing counter to FILE every 10ms
  fork N                     fork N sleeping children, report (JSON)
  alloc MB                   allocate and touch MB MiB (JSON)
  syscall NR [ARG...]        raw syscall (JSON)
  exec PATH [ARGS...]        execv, report errno if it returns (JSON)
  setsid-tty                 terminal info of fd 0 (JSON)
  exe-check PID              /proc/PID/exe checks (JSON)
  sysctl NAME                value of /proc/sys/NAME
";

/// Print usage on stderr and exit 2.
pub fn usage() -> ! {
    eprint!("{USAGE}");
    std::process::exit(2)
}

/// The current errno value.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Human-readable message for an errno value, without the "(os error N)" suffix.
pub fn strerror(e: i32) -> String {
    let s = std::io::Error::from_raw_os_error(e).to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// errno of an io::Error (EIO if it has none).
pub fn io_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `{"ok": errno == 0, "errno": errno, "error": message|null}`
pub fn result_json(e: i32) -> Value {
    json!({
        "ok": e == 0,
        "errno": e,
        "error": if e == 0 { Value::Null } else { Value::String(strerror(e)) },
    })
}

/// Write one JSON value plus newline to stdout; write errors are ignored.
pub fn out(v: &Value) {
    let mut s = v.to_string();
    s.push('\n');
    out_bytes(s.as_bytes());
}

/// Write raw bytes to stdout and flush; write errors are ignored.
pub fn out_bytes(b: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b);
    let _ = o.flush();
}

/// Convert an OS string to a C string (interior NULs cannot come from argv).
pub fn cstring(s: &OsStr) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// Parse a number given in decimal (optionally negative) or 0x hex.
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(d) = s.strip_prefix('-') {
        d.parse::<u64>()
            .ok()
            .map(|v| (v as i64).wrapping_neg() as u64)
    } else {
        s.parse::<u64>().ok()
    }
}

/// Undo the octal escaping (\040, \011, \012, \134) used in /proc mount files.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut outv = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            outv.push(v as u8);
            i += 4;
        } else {
            outv.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&outv).into_owned()
}

fn dev_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn dev_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// lstat information about a path, errors as data.
///
/// Success: `{"exists":true,"kind":..,"mode":..,"perm":..,"uid":..,"gid":..,
/// "major":..,"minor":..,"size":..,"link":string|null}`.
/// Failure: `{"exists":false,"errno":N,"error":".."}`.
pub fn stat_info(path: &Path) -> Value {
    match std::fs::symlink_metadata(path) {
        Err(e) => {
            let n = io_errno(&e);
            json!({"exists": false, "errno": n, "error": strerror(n)})
        }
        Ok(m) => {
            let mode = m.mode();
            let fmt = mode & libc::S_IFMT;
            let kind = match fmt {
                libc::S_IFCHR => "char",
                libc::S_IFBLK => "block",
                libc::S_IFDIR => "dir",
                libc::S_IFLNK => "symlink",
                libc::S_IFREG => "file",
                libc::S_IFIFO => "fifo",
                libc::S_IFSOCK => "socket",
                _ => "unknown",
            };
            let link = if fmt == libc::S_IFLNK {
                std::fs::read_link(path)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            } else {
                None
            };
            let rdev = m.rdev();
            json!({
                "exists": true,
                "kind": kind,
                "mode": mode,
                "perm": mode & 0o7777,
                "uid": m.uid(),
                "gid": m.gid(),
                "major": dev_major(rdev),
                "minor": dev_minor(rdev),
                "size": m.size(),
                "link": link,
            })
        }
    }
}

/// readlink as a lossy string, None on error.
pub fn readlink(p: &str) -> Option<String> {
    std::fs::read_link(p)
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}
