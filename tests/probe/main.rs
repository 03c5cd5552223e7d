//! berth-probe: runs inside test containers and reports what it sees.
//!
//! `berth-probe SUBCOMMAND [ARGS]`; see `util::USAGE`. Output is one JSON
//! object (or array) per invocation unless the subcommand says otherwise.
//! Failures are reported as data; the probe never panics on missing files.

mod cmds;
mod report;
mod util;

use std::ffi::OsString;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let sub = args
        .get(1)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest: &[OsString] = args.get(2..).unwrap_or(&[]);
    let code = match (sub.as_str(), rest.len()) {
        ("report", 0) => report::run(),
        ("stat", n) if n >= 1 => cmds::stat(rest),
        ("read", 1) => cmds::read(&rest[0]),
        ("open", 2) => cmds::open(&rest[0], &rest[1]),
        ("write", 2) => cmds::write(&rest[0], &rest[1]),
        ("ls", 1) => cmds::ls(&rest[0]),
        ("exit", 1) => cmds::exit(&rest[0]),
        ("xattr", 2) => cmds::xattr(&rest[0], &rest[1]),
        ("sleep", 1) => cmds::sleep(&rest[0]),
        ("echo", _) => cmds::echo(rest),
        ("echo-stderr", _) => cmds::echo_stderr(rest),
        ("wait-signal", 0) => cmds::wait_signal(),
        ("count", 1) => cmds::count(&rest[0]),
        ("fork", 1) => cmds::fork(&rest[0]),
        ("alloc", 1) => cmds::alloc(&rest[0]),
        ("syscall", n) if n >= 1 => cmds::syscall(rest),
        ("exec", n) if n >= 1 => cmds::exec(rest),
        ("setsid-tty", 0) => cmds::setsid_tty(),
        ("exe-check", 1) => cmds::exe_check(&rest[0]),
        ("sysctl", 1) => cmds::sysctl(&rest[0]),
        _ => util::usage(),
    };
    std::process::exit(code);
}
