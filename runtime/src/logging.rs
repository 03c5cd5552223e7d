//! runc-compatible logging: `--log FILE` with `--log-format text|json`.
//! containerd's runc shim reads the JSON lines (`level`, `msg`, `time`) from
//! the log file to report why a command failed.
//!
//! Lines are runc's (logrus's): `time="…" level=debug msg="…"` in text,
//! `{"level":"debug","msg":"…","time":"…"}` in JSON, with the time in RFC
//! 3339 to the second. They go to the `--log` file when there is one (made,
//! like runc, by every command, even one that logs nothing), to stderr
//! otherwise. The error that ends a command is written to the log file
//! here; its line on stderr is main's.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets the logging up; with a `path`, opens (and creates) the log file as
/// runc does: appending, never truncating (a caller may have the same file
/// open as the container's output), mode 0644. An error here is the
/// command's error.
pub fn init(path: Option<std::path::PathBuf>, format: Format, debug: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(&p)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("--log {}: {e}", p.display()))
                })?,
        ),
        None => None,
    };
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
    Ok(())
}

pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let line = format_line(cfg.format, level, msg, &now());
    match &cfg.file {
        // One write of the whole line: appends from several processes
        // never interleave inside a line.
        Some(f) => {
            let _ = (&*f).write_all(line.as_bytes());
        }
        // Never eprintln!: it panics when stderr is a pipe or FIFO whose
        // reader is gone (the shim logs into containerd's FIFO). The final
        // error's line on stderr is main's own.
        None if level != "error" => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// Now, as logrus prints it: RFC 3339 to the second, UTC.
fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    crate::util::rfc3339(secs as i64, 0)
}

/// One log line, newline included, as logrus's text or JSON formatter
/// writes it.
fn format_line(format: Format, level: &str, msg: &str, time: &str) -> String {
    match format {
        // logrus's JSON formatter sorts its keys.
        Format::Json => format!(
            "{{\"level\":{},\"msg\":{},\"time\":{}}}\n",
            serde_json::Value::from(level),
            serde_json::Value::from(msg),
            serde_json::Value::from(time)
        ),
        Format::Text => format!(
            "time={} level={level} msg={}\n",
            logfmt_value(time),
            logfmt_value(msg)
        ),
    }
}

/// A value of logrus's text format: bare when it is made only of letters,
/// digits and `-._/@^+`, otherwise quoted the way Go's `%q` quotes.
fn logfmt_value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_are_logrus_lines() {
        let t = "2026-01-02T03:04:05Z";
        assert_eq!(
            format_line(Format::Text, "debug", "create phases: a=1", t),
            "time=\"2026-01-02T03:04:05Z\" level=debug msg=\"create phases: a=1\"\n"
        );
        assert_eq!(
            format_line(Format::Text, "warning", "done", t),
            "time=\"2026-01-02T03:04:05Z\" level=warning msg=done\n"
        );
        assert_eq!(
            logfmt_value("say \"hi\"\n\u{1}é"),
            "\"say \\\"hi\\\"\\n\\x01é\""
        );
        assert_eq!(logfmt_value(""), "\"\"");
    }

    #[test]
    fn json_lines_are_logrus_json() {
        let line = format_line(Format::Json, "debug", "a \"b\"", "2026-01-02T03:04:05Z");
        assert_eq!(
            line,
            "{\"level\":\"debug\",\"msg\":\"a \\\"b\\\"\",\"time\":\"2026-01-02T03:04:05Z\"}\n"
        );
    }
}
