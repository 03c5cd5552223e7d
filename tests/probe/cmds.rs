//! The small subcommands of the probe.

use crate::util::{
    cstring, errno, io_errno, out, out_bytes, parse_num, readlink, result_json, stat_info,
    strerror, usage,
};
use serde_json::{json, Map, Value};
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

fn arg_str(a: &OsStr) -> String {
    a.to_string_lossy().into_owned()
}

pub fn stat(paths: &[OsString]) -> i32 {
    let mut m = Map::new();
    for p in paths {
        m.insert(arg_str(p), stat_info(Path::new(p)));
    }
    out(&Value::Object(m));
    0
}

pub fn read(path: &OsStr) -> i32 {
    match std::fs::read(path) {
        Ok(b) => {
            out_bytes(&b);
            0
        }
        Err(e) => {
            eprintln!("read {}: {}", arg_str(path), strerror(io_errno(&e)));
            1
        }
    }
}

pub fn open(path: &OsStr, mode: &OsStr) -> i32 {
    let flags = match mode.as_bytes() {
        b"r" => libc::O_RDONLY,
        b"w" => libc::O_WRONLY,
        b"rw" => libc::O_RDWR,
        b"path" => libc::O_PATH,
        _ => usage(),
    };
    let c = cstring(path);
    // SAFETY: c is a valid NUL-terminated string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
    let e = if fd < 0 {
        errno()
    } else {
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        0
    };
    out(&result_json(e));
    0
}

pub fn write(path: &OsStr, data: &OsStr) -> i32 {
    let r = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()));
    out(&result_json(r.err().map_or(0, |e| io_errno(&e))));
    0
}

pub fn ls(dir: &OsStr) -> i32 {
    let names: Result<Vec<String>, std::io::Error> = std::fs::read_dir(dir).and_then(|rd| {
        rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    });
    match names {
        Ok(mut v) => {
            v.sort();
            out(&json!(v));
            0
        }
        Err(e) => {
            let n = io_errno(&e);
            out(&json!({"errno": n, "error": strerror(n)}));
            1
        }
    }
}

/// Prints the value of extended attribute `name` of `path` (not following
/// a symlink).
pub fn xattr(path: &OsStr, name: &OsStr) -> i32 {
    let (p, n) = (cstring(path), cstring(name));
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid strings and a buffer of its length.
    let len = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if len < 0 {
        eprintln!("xattr {}: {}", arg_str(path), strerror(errno()));
        return 1;
    }
    out_bytes(&buf[..len as usize]);
    0
}

pub fn exit(code: &OsStr) -> i32 {
    match arg_str(code).trim().parse::<i32>() {
        Ok(n) => n,
        Err(_) => usage(),
    }
}

pub fn sleep(secs: &OsStr) -> i32 {
    let d = arg_str(secs)
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    match d {
        Some(d) => {
            std::thread::sleep(d);
            0
        }
        None => usage(),
    }
}

fn joined(args: &[OsString]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            b.push(b' ');
        }
        b.extend_from_slice(a.as_bytes());
    }
    b.push(b'\n');
    b
}

pub fn echo(args: &[OsString]) -> i32 {
    out_bytes(&joined(args));
    0
}

pub fn echo_stderr(args: &[OsString]) -> i32 {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(&joined(args));
    let _ = e.flush();
    0
}

extern "C" fn noop_handler(_: libc::c_int) {}

const WAIT_SIGNALS: &[(libc::c_int, &str)] = &[
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGQUIT, "SIGQUIT"),
];

pub fn wait_signal() -> i32 {
    // SAFETY: plain sigset manipulation; the handler is a no-op (and never
    // runs while the signals are blocked), it only keeps them from being
    // discarded as SIG_IGN/SIG_DFL.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (s, _) in WAIT_SIGNALS {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        for (s, _) in WAIT_SIGNALS {
            libc::signal(
                *s,
                noop_handler as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        set
    };
    out_bytes(b"ready\n");
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: set is initialised, sig is a valid out pointer.
        let r = unsafe { libc::sigwait(&set, &mut sig) };
        if r == libc::EINTR {
            continue;
        }
        if r != 0 {
            eprintln!("sigwait: {}", strerror(r));
            return 1;
        }
        let name = WAIT_SIGNALS
            .iter()
            .find(|(s, _)| *s == sig)
            .map_or_else(|| format!("signal {sig}"), |(_, n)| n.to_string());
        out_bytes(format!("got {name}\n").as_bytes());
        return 0;
    }
}

pub fn count(path: &OsStr) -> i32 {
    let f = match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("count {}: {}", arg_str(path), strerror(io_errno(&e)));
            return 1;
        }
    };
    let mut n: u64 = 0;
    loop {
        n += 1;
        let s = n.to_string();
        // The value only grows, so writing at 0 then truncating never shows
        // a reader an empty file.
        if let Err(e) = f
            .write_all_at(s.as_bytes(), 0)
            .and_then(|_| f.set_len(s.len() as u64))
        {
            eprintln!("count {}: {}", arg_str(path), strerror(io_errno(&e)));
            return 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn fork(n: &OsStr) -> i32 {
    let n = match arg_str(n).trim().parse::<u64>() {
        Ok(n) => n,
        Err(_) => usage(),
    };
    let mut pids = Vec::new();
    let mut err = 0;
    for _ in 0..n {
        // SAFETY: single-threaded; the child only calls async-signal-safe
        // functions and _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            err = errno();
            break;
        }
        if pid == 0 {
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        pids.push(pid);
    }
    for &p in &pids {
        // SAFETY: p is our own child.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    for &p in &pids {
        let mut status = 0;
        // SAFETY: reaping our own child.
        while unsafe { libc::waitpid(p, &mut status, 0) } < 0 && errno() == libc::EINTR {}
    }
    out(&json!({
        "forked": pids.len(),
        "errno": err,
        "error": if err == 0 { Value::Null } else { Value::String(strerror(err)) },
    }));
    0
}

pub fn alloc(mb: &OsStr) -> i32 {
    let len = arg_str(mb)
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|m| m.checked_mul(1 << 20));
    let len = match len {
        Some(l) => l,
        None => usage(),
    };
    if len > 0 {
        // SAFETY: anonymous private mapping, touched only within its length.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = errno();
            out(&json!({"ok": false, "errno": e, "error": strerror(e)}));
            return 1;
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let base = p as *mut u8;
        let mut off = 0;
        while off < len {
            // SAFETY: off < len, inside the mapping.
            unsafe { base.add(off).write_volatile(1) };
            off += page;
        }
    }
    out(&json!({"ok": true, "mb": len >> 20}));
    0
}

pub fn syscall(args: &[OsString]) -> i32 {
    if args.len() > 7 {
        usage();
    }
    let mut v = [0 as libc::c_long; 7];
    for (i, a) in args.iter().enumerate() {
        v[i] = match parse_num(&arg_str(a)) {
            Some(x) => x as libc::c_long,
            None => usage(),
        };
    }
    // SAFETY: this is deliberately an arbitrary syscall requested by the test.
    let ret = unsafe { libc::syscall(v[0], v[1], v[2], v[3], v[4], v[5], v[6]) };
    let e = if ret == -1 { errno() } else { 0 };
    out(&json!({"ret": ret, "errno": e}));
    0
}

pub fn exec(args: &[OsString]) -> i32 {
    let cargs: Vec<_> = args.iter().map(|a| cstring(a)).collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NULL-terminated argv of valid C strings that outlive the call.
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    let e = errno();
    out(&json!({"errno": e, "error": strerror(e)}));
    0
}

pub fn setsid_tty() -> i32 {
    // SAFETY: ioctl/ttyname_r/isatty etc. with valid out buffers.
    unsafe {
        let isatty = libc::isatty(0) == 1;
        let mut ws: libc::winsize = std::mem::zeroed();
        let (rows, cols) = if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            (json!(ws.ws_row), json!(ws.ws_col))
        } else {
            (Value::Null, Value::Null)
        };
        let mut buf = [0 as libc::c_char; 256];
        let ttyname = if libc::ttyname_r(0, buf.as_mut_ptr(), buf.len()) == 0 {
            json!(std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy())
        } else {
            Value::Null
        };
        let tpgid = libc::tcgetpgrp(0);
        let fd = libc::open(
            c"/dev/tty".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        let has_ctty = fd >= 0;
        if has_ctty {
            libc::close(fd);
        }
        out(&json!({
            "isatty": isatty,
            "rows": rows,
            "cols": cols,
            "ttyname": ttyname,
            "pid": libc::getpid(),
            "sid": libc::getsid(0),
            "pgrp": libc::getpgrp(),
            "tpgid": if tpgid < 0 { Value::Null } else { json!(tpgid) },
            "has_ctty": has_ctty,
        }));
    }
    0
}

fn open_errno(c: &std::ffi::CStr, flags: libc::c_int) -> (i32, libc::c_int) {
    // SAFETY: c is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        (errno(), -1)
    } else {
        (0, fd)
    }
}

pub fn exe_check(pid: &OsStr) -> i32 {
    let p = format!("/proc/{}/exe", arg_str(pid));
    let c = cstring(OsStr::new(&p));
    let (werr, wfd) = open_errno(&c, libc::O_WRONLY);
    if wfd >= 0 {
        // SAFETY: our fd.
        unsafe { libc::close(wfd) };
    }
    let (rerr, rfd) = open_errno(&c, libc::O_RDONLY);
    let (mut seals, mut seals_errno) = (Value::Null, Value::Null);
    if rfd >= 0 {
        // SAFETY: our fd.
        let s = unsafe { libc::fcntl(rfd, libc::F_GET_SEALS) };
        if s < 0 {
            seals_errno = json!(errno());
        } else {
            seals = json!(s);
            seals_errno = json!(0);
        }
        unsafe { libc::close(rfd) };
    }
    out(&json!({
        "link": readlink(&p),
        "open_write_errno": werr,
        "open_read_errno": rerr,
        "seals": seals,
        "seals_errno": seals_errno,
    }));
    0
}

pub fn sysctl(name: &OsStr) -> i32 {
    let p = format!("/proc/sys/{}", arg_str(name).replace('.', "/"));
    match std::fs::read_to_string(&p) {
        Ok(s) => {
            out_bytes(format!("{}\n", s.trim()).as_bytes());
            0
        }
        Err(e) => {
            eprintln!("sysctl {}: {}", p, strerror(io_errno(&e)));
            1
        }
    }
}
