//! OCI hooks: each is run with the container's state JSON on stdin, and a
//! failing (or timed-out) hook fails the operation it belongs to, except a
//! poststart or poststop hook: that is a warning, and the hooks after it
//! still run.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn list(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let l = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        l.as_deref().unwrap_or_default()
    }
}

const ALL: [Kind; 6] = [
    Kind::Prestart,
    Kind::CreateRuntime,
    Kind::CreateContainer,
    Kind::StartContainer,
    Kind::Poststart,
    Kind::Poststop,
];

pub fn validate(hooks: &Hooks) -> Result<()> {
    for kind in ALL {
        for (i, h) in kind.list(hooks).iter().enumerate() {
            if !h.path().is_absolute() {
                return Err(Error::Config(format!(
                    "hooks.{}[{i}].path: {} is not absolute",
                    kind.name(),
                    h.path().display()
                )));
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::Config(format!(
                    "hooks.{}[{i}].timeout: must be positive",
                    kind.name()
                )));
            }
            // startContainer hooks resolve inside the container, so only the
            // host-side ones can be checked here.
            if kind != Kind::StartContainer && kind != Kind::CreateContainer {
                if let Err(e) = std::fs::metadata(h.path()) {
                    return Err(Error::Config(format!(
                        "hooks.{}[{i}].path: {}: {e}",
                        kind.name(),
                        h.path().display()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Runs every hook of `kind` in order, stopping at the first failure.
pub fn run(hooks: Option<&Hooks>, kind: Kind, state_json: &[u8]) -> Result<()> {
    run_with_env(hooks, kind, state_json, None)
}

/// [`run`], with `default_env` for hooks whose config names no `env`
/// (runc gives startContainer hooks the container process's).
pub fn run_with_env(
    hooks: Option<&Hooks>,
    kind: Kind,
    state_json: &[u8],
    default_env: Option<&[String]>,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for (i, h) in kind.list(hooks).iter().enumerate() {
        run_one(h, state_json, default_env).map_err(|e| hook_error(kind, i, h, e))?;
    }
    Ok(())
}

/// Runs every hook of `kind` in order whatever happens, for the kinds whose
/// failure the runtime-spec makes a warning (poststart, poststop): each
/// failure is logged as a warning and the remaining hooks still run.
/// Returns the failures, in order.
pub fn run_warn(hooks: Option<&Hooks>, kind: Kind, state_json: &[u8]) -> Vec<Error> {
    let Some(hooks) = hooks else {
        return Vec::new();
    };
    let mut failed = Vec::new();
    for (i, h) in kind.list(hooks).iter().enumerate() {
        if let Err(e) = run_one(h, state_json, None) {
            let e = hook_error(kind, i, h, e);
            crate::logging::warn(&e.to_string());
            failed.push(e);
        }
    }
    failed
}

fn hook_error(kind: Kind, i: usize, h: &Hook, e: String) -> Error {
    Error::Hook(format!(
        "hooks.{}[{i}] {}: {e}",
        kind.name(),
        h.path().display()
    ))
}

fn run_one(
    h: &Hook,
    state_json: &[u8],
    default_env: Option<&[String]>,
) -> std::result::Result<(), String> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    cmd.env_clear();
    let env: &[String] = match (h.env(), default_env) {
        (Some(e), _) => e,
        (None, Some(d)) => d,
        (None, None) => &[],
    };
    for e in env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A process group of its own, so that a hook that times out is killed
    // with everything it started (`sh -c "sleep 60"` leaves no sleep).
    cmd.process_group(0);
    // A hook starts with no signal blocked, whatever berth's caller (a
    // `run` forwarding signals, the shim's reaper) blocked.
    // SAFETY: the closure only calls sigprocmask, which is async-signal-safe.
    unsafe { cmd.pre_exec(crate::sys::reset_signal_mask) };
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    // Both pipes are served from threads so that a hook that neither reads
    // its stdin nor stops writing to stderr cannot block us past the timeout.
    let input = child.stdin.take().map(|mut stdin| {
        let data = state_json.to_vec();
        // A hook that does not read its stdin is not an error.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    // What the hook wrote to stderr (its first 64 KiB), kept where berth can
    // take it without waiting for end-of-file: a process the hook left
    // behind may hold the pipe open for ever.
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (eof_tx, eof_rx) = std::sync::mpsc::channel::<()>();
    if let Some(mut e) = child.stderr.take() {
        let buf = collected.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut chunk = [0u8; 4096];
            // Keep draining so the hook never blocks on a full pipe.
            while let Ok(n) = e.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                let room = (64 * 1024usize).saturating_sub(b.len());
                b.extend_from_slice(&chunk[..n.min(room)]);
            }
            drop(eof_tx);
        });
    }
    let pidfd = match crate::sys::pidfd_open(child.id() as i32) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.to_string());
        }
    };
    let timeout_ms = h
        .timeout()
        .map_or(-1, |t| t.saturating_mul(1000).min(i32::MAX as i64) as i32);
    use std::os::fd::AsFd;
    if !crate::sys::pidfd_wait_exit(pidfd.as_fd(), timeout_ms).map_err(|e| e.to_string())? {
        // The group first (its leader's pid is its id, and the leader is
        // still unreaped, so the id cannot have been reused), then reap.
        // SAFETY: plain syscall.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if let Some(t) = input {
        let _ = t.join();
    }
    // The hook has exited: its own output is in the pipe already.
    let _ = eof_rx.recv_timeout(std::time::Duration::from_millis(200));
    let stderr =
        String::from_utf8_lossy(&collected.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".into(),
    };
    let stderr = stderr.trim();
    if stderr.is_empty() {
        Err(how)
    } else {
        Err(format!("{how}: {stderr}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_warn_goes_on_after_a_failing_hook() {
        let mark = std::env::temp_dir().join(format!("berth-hooks-{}", std::process::id()));
        let _ = std::fs::remove_file(&mark);
        let hooks: Hooks = serde_json::from_value(serde_json::json!({"poststop": [
            {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", mark.display())]}
        ]}))
        .unwrap();
        let failed = run_warn(Some(&hooks), Kind::Poststop, b"{\"id\":\"x\"}");
        assert_eq!(failed.len(), 1);
        let e = failed[0].to_string();
        assert!(
            e.contains("hooks.poststop[0]") && e.contains("status 3"),
            "{e}"
        );
        assert_eq!(std::fs::read(&mark).unwrap(), b"{\"id\":\"x\"}");
        let _ = std::fs::remove_file(&mark);
        // `run` still stops at the first failure.
        assert!(run(Some(&hooks), Kind::Poststop, b"{}").is_err());
        assert!(!mark.exists());
    }
}
