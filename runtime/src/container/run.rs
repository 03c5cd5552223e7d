//! `run`: create, start, wait for the exit, delete.

use std::os::unix::net::UnixStream;

use super::signals::{block_forwarded_signals, wait_forwarding_signals};
use super::*;
use crate::error::{Error, Result};
use crate::spec;

impl Runtime {
    /// `run`: create, start, wait, delete. Returns the exit status to exit with.
    pub fn run(&self, o: &CreateOptions, detach: bool) -> Result<i32> {
        self.run_keep(o, detach, false)
    }

    /// `run`, keeping the stopped container (runc's `--keep`) when asked.
    pub fn run_keep(&self, o: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        let bundle_spec =
            spec::load(&std::fs::canonicalize(&o.bundle).unwrap_or(o.bundle.clone())).ok();
        let terminal = bundle_spec
            .as_ref()
            .and_then(|s| s.process().as_ref())
            .and_then(|p| p.terminal())
            == Some(true);
        let mut console_pair = None;
        let override_sock = if terminal && o.console_socket.is_none() {
            if detach {
                return Err(Error::Config(
                    "process.terminal is true: run --detach needs --console-socket".into(),
                ));
            }
            let (a, b) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
            console_pair = Some(a);
            Some(b)
        } else {
            None
        };
        if !o.no_subreaper {
            // SAFETY: prctl with integer args.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        if !detach {
            block_forwarded_signals();
        }
        let created = self.create_inner(o, override_sock, None)?;
        let tty = relay_console(console_pair)?;
        if let Err(e) = self.start(&o.id) {
            let _ = self.delete(&o.id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = wait_forwarding_signals(created.pid);
        drop(tty);
        if !keep {
            self.delete(&o.id, true)?;
        }
        Ok(code)
    }
}
