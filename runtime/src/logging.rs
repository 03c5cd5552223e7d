//! runc-compatible logging: `--log FILE` with `--log-format text|json`.
//! containerd's runc shim reads the JSON lines (`level`, `msg`, `time`) from
//! the log file to report why a command failed.

use std::io::Write;
use std::sync::OnceLock;

use crate::util::rfc3339_now;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    path: Option<std::path::PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(path: Option<std::path::PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config {
        path,
        format,
        debug,
    });
}

pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(path) = &cfg.path else {
        if level != "error" {
            // Never eprintln!: it panics when stderr is a pipe or FIFO whose
            // reader is gone (the shim logs into containerd's FIFO).
            let _ = writeln!(std::io::stderr(), "berth: {level}: {msg}");
        }
        return;
    };
    let line = match cfg.format {
        Format::Json => {
            let v = serde_json::json!({"level": level, "msg": msg, "time": rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!("time=\"{}\" level={level} msg={:?}\n", rfc3339_now(), msg),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        write("debug", msg);
    }
}
