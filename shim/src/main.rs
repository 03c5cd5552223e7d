//! containerd-shim-berth-v2: containerd's runtime v2 shim for berth.
//!
//! One binary plays three parts, chosen by its arguments: the `start` and
//! `delete` commands containerd runs (see `manager`), the long-lived shim
//! daemon serving the task API over ttrpc (see `service`), and, as
//! `containerd-shim-berth-v2 init`, the init of every container it creates:
//! berth's library spawns its own binary for that, and here that binary is
//! the shim.

mod events;
mod flags;
mod manager;
mod metrics;
mod reaper;
mod rootfs;
mod service;
mod stdio;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new("init")) && args.next().is_none() {
        berth::init::main();
    }
    let f = match flags::Flags::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-berth-v2: {e}");
            return ExitCode::from(2);
        }
    };
    if f.version {
        println!("containerd-shim-berth-v2:");
        println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
        println!("  Runtime:  berth {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if f.info {
        return match manager::info() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let result = match f.action.as_deref() {
        Some("start") => manager::start(&f),
        Some("delete") => manager::delete(&f),
        None => service::serve(&f),
        Some(other) => Err(format!("unknown action {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &str) -> ExitCode {
    // Not eprintln!: the daemon's stderr is containerd's log FIFO, which
    // may have lost its reader.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "containerd-shim-berth-v2: {e}");
    ExitCode::FAILURE
}
