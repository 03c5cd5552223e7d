//! A process's stdio as containerd asks for it: FIFO paths (the usual
//! case), `file://` paths, `binary://` loggers, or nothing; and a terminal.
//!
//! Without a terminal the container's output goes to the FIFOs themselves,
//! with no copy thread in between: nothing buffered in the shim can be lost
//! when it exits. The shim holds a reader on each output FIFO so that a
//! container never takes SIGPIPE while containerd restarts. Input goes
//! through a pipe fed by a thread that opens the stdin FIFO blocking: the
//! container cannot read end-of-file before containerd's writer attaches,
//! and does read it once that writer closes or CloseIO comes, whichever is
//! first (clients do not always send CloseIO).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim keeps of a process's IO while it lives.
#[derive(Default)]
pub struct Io {
    stdin: Mutex<Option<StdinCopy>>,
    keep: Mutex<Vec<OwnedFd>>,
    master: Option<Arc<OwnedFd>>,
    out_done: Mutex<Option<Receiver<()>>>,
}

/// IO set up before the process exists; `finish` once it does.
pub struct Pending {
    io: Io,
    console: Option<UnixStream>,
    stdin: Option<String>,
    out: Option<OwnedFd>,
}

/// Copies containerd's stdin FIFO into the process's input until either
/// side ends or CloseIO. CloseIO does not cut the copy short: what the
/// client wrote before it is still in the FIFO, and is drained first
/// (`docker exec -i db psql < dump.sql` must get all of the dump).
struct StdinCopy {
    path: String,
    /// Written once by CloseIO: wakes the copier to drain and finish.
    wake: OwnedFd,
}

impl StdinCopy {
    fn start(path: &str, target: Arc<OwnedFd>) -> Result<StdinCopy, String> {
        let (wake_r, wake_w) = pipe()?;
        let p = path.to_string();
        let _ = std::thread::Builder::new()
            .name("stdin".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Blocks until containerd's writer is there (or CloseIO
                // opens one for a moment).
                let Ok(fifo) = open(Path::new(&p), libc::O_RDONLY) else {
                    return;
                };
                feed_stdin(&fifo, &wake_r, &target);
            });
        Ok(StdinCopy {
            path: path.to_string(),
            wake: wake_w,
        })
    }

    fn close(&self) {
        let _ = berth::sys::write_all_fd(self.wake.as_fd(), b"x");
        // A copier still waiting in open() for a writer that never came:
        // be that writer for a moment, so it gets past the open.
        let _ = open(Path::new(&self.path), libc::O_WRONLY | libc::O_NONBLOCK);
    }
}

/// The copier's loop: FIFO to the process until end-of-file, a failed
/// write (the process is gone), or CloseIO; on CloseIO whatever is in the
/// FIFO still goes to the process before its input is closed. Returning
/// drops the last reference to the process's end: it reads end-of-file.
fn feed_stdin(fifo: &OwnedFd, wake: &OwnedFd, target: &OwnedFd) {
    let mut buf = [0u8; 16 * 1024];
    let read = |buf: &mut [u8]| {
        // SAFETY: reading into a buffer valid for its length.
        unsafe {
            libc::read(
                fifo.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        }
    };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two valid pollfds; no timeout: the FIFO's writer
        // closing or CloseIO ends the wait.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            let n = read(&mut buf);
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 || berth::sys::write_all_fd(target.as_fd(), &buf[..n as usize]).is_err() {
                return;
            }
            continue;
        }
        if fds[1].revents != 0 {
            // CloseIO: drain what the FIFO holds, without waiting for more.
            set_nonblock(fifo);
            loop {
                let n = read(&mut buf);
                if n <= 0 || berth::sys::write_all_fd(target.as_fd(), &buf[..n as usize]).is_err() {
                    return;
                }
            }
        }
    }
}

fn set_nonblock(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn open(path: &Path, flags: i32) -> Result<OwnedFd, String> {
    berth::sys::open(path, flags | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn clear_nonblock(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
}

fn dev_null(flags: i32) -> Result<OwnedFd, String> {
    open(Path::new("/dev/null"), flags)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    berth::sys::pipe().map_err(|e| format!("pipe: {e}"))
}

/// The container's stdin: /dev/null, or the read end of a pipe the shim
/// feeds from containerd's FIFO.
fn open_stdin(path: &str) -> Result<(OwnedFd, Option<StdinCopy>), String> {
    if path.is_empty() {
        return Ok((dev_null(libc::O_RDONLY)?, None));
    }
    let (r, w) = pipe()?;
    Ok((r, Some(StdinCopy::start(path, Arc::new(w))?)))
}

enum Output {
    Fd(OwnedFd),
    Binary { path: String, args: Vec<String> },
}

/// Opens one output target. FIFO: a reader kept by the shim, then the
/// writer for the container.
fn open_output(uri: &str, keep: &mut Vec<OwnedFd>) -> Result<Output, String> {
    if uri.is_empty() {
        return Ok(Output::Fd(dev_null(libc::O_WRONLY)?));
    }
    if let Some(rest) = uri.strip_prefix("binary://") {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut args = Vec::new();
        let mut pairs: Vec<&str> = query.split('&').filter(|s| !s.is_empty()).collect();
        pairs.sort();
        for kv in pairs {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            args.push(k.to_string());
            if !v.is_empty() {
                args.push(v.to_string());
            }
        }
        return Ok(Output::Binary {
            path: path.to_string(),
            args,
        });
    }
    if let Some(path) = uri.strip_prefix("file://") {
        let p = Path::new(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("{path}: {e}"))?;
        return Ok(Output::Fd(f.into()));
    }
    let path = uri.strip_prefix("fifo://").unwrap_or(uri);
    let p = Path::new(path);
    keep.push(open(p, libc::O_RDONLY | libc::O_NONBLOCK)?);
    let w = open(p, libc::O_WRONLY | libc::O_NONBLOCK)?;
    clear_nonblock(&w);
    Ok(Output::Fd(w))
}

/// Starts a `binary://` logger: the container's stdout and stderr reach it
/// as fds 3 and 4, and it closes fd 5 once it is ready.
fn start_logger(
    path: &str,
    args: &[String],
    id: &str,
    ns: &str,
) -> Result<(OwnedFd, OwnedFd), String> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", ns)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: sigprocmask, fcntl and dup2 are async-signal-safe; the
    // sources are open in the child.
    unsafe {
        cmd.pre_exec(move || {
            berth::sys::reset_signal_mask()?;
            // Move the sources above the targets first so none is clobbered.
            let mut high = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting logger {path}: {e}"))?;
    // The shim's reaper reaps it when it exits.
    crate::reaper::watch(child.id() as i32, |_| {});
    std::mem::forget(child);
    drop((out_r, err_r, ready_w));
    // Ready when the logger closes fd 5 (or exits); a logger that never
    // says so must not hang the Create call.
    let mut pfd = libc::pollfd {
        fd: ready_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    if unsafe { libc::poll(&mut pfd, 1, 10_000) } <= 0 {
        return Err(format!("logger {path} did not get ready within 10s"));
    }
    Ok((out_w, err_w))
}

pub fn prepare(s: &Stdio, id: &str, ns: &str) -> Result<(berth::ProcessIo, Pending), String> {
    let mut io = Io::default();
    let mut keep = Vec::new();
    if s.terminal {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let stdin = (!s.stdin.is_empty()).then(|| s.stdin.clone());
        let out = match open_output(&s.stdout, &mut keep)? {
            Output::Fd(fd) => Some(fd),
            Output::Binary { path, args } => Some(start_logger(&path, &args, id, ns)?.0),
        };
        *io.keep.get_mut().unwrap() = keep;
        let null = [
            dev_null(libc::O_RDONLY)?,
            dev_null(libc::O_WRONLY)?,
            dev_null(libc::O_WRONLY)?,
        ];
        return Ok((
            berth::ProcessIo {
                stdio: Some(null),
                console: Some(theirs),
            },
            Pending {
                io,
                console: Some(ours),
                stdin,
                out,
            },
        ));
    }
    let (stdin, copier) = open_stdin(&s.stdin)?;
    *io.stdin.get_mut().unwrap() = copier;
    let (out, err) = match open_output(&s.stdout, &mut keep)? {
        Output::Binary { path, args } => start_logger(&path, &args, id, ns)?,
        Output::Fd(out) => {
            let err = if s.stderr == s.stdout && !s.stdout.is_empty() {
                out.try_clone().map_err(|e| format!("dup: {e}"))?
            } else {
                match open_output(&s.stderr, &mut keep)? {
                    Output::Fd(fd) => fd,
                    Output::Binary { path, args } => start_logger(&path, &args, id, ns)?.1,
                }
            };
            (out, err)
        }
    };
    *io.keep.get_mut().unwrap() = keep;
    Ok((
        berth::ProcessIo {
            stdio: Some([stdin, out, err]),
            console: None,
        },
        Pending {
            io,
            console: None,
            stdin: None,
            out: None,
        },
    ))
}

/// Copies `from` chunk by chunk into `write` until end-of-file, an error,
/// or `write` says stop.
fn copy(from: OwnedFd, mut write: impl FnMut(&[u8]) -> bool) {
    let mut from = File::from(from);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if !write(&buf[..n]) => break,
            Ok(_) => {}
        }
    }
}

impl Pending {
    /// Once the process exists: takes the pty master it sent and starts
    /// copying between it and containerd's FIFOs.
    pub fn finish(mut self) -> Result<Io, String> {
        let Some(sock) = self.console.take() else {
            return Ok(self.io);
        };
        let (_, master) = berth::sys::recv_fd(sock.as_fd(), 4096)
            .map_err(|e| format!("receiving the pty master: {e}"))?;
        let master = Arc::new(master.ok_or("no pty master received")?);
        if let Some(out) = self.out.take() {
            let (done, rx) = channel::<()>();
            let from = master.try_clone().map_err(|e| format!("dup: {e}"))?;
            let _ = std::thread::Builder::new()
                .name("pty-out".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    copy(from, |chunk| {
                        berth::sys::write_all_fd(out.as_fd(), chunk).is_ok()
                    });
                    // Dropping `out` here is containerd's end-of-file.
                    drop(out);
                    drop(done);
                });
            *self.io.out_done.get_mut().unwrap() = Some(rx);
        }
        if let Some(path) = self.stdin.take() {
            *self.io.stdin.get_mut().unwrap() = Some(StdinCopy::start(&path, master.clone())?);
        }
        self.io.master = Some(master);
        Ok(self.io)
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.close_stdin();
    }
}

impl Io {
    pub fn close_stdin(&self) {
        if let Some(c) = self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take() {
            c.close();
        }
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        let Some(m) = &self.master else {
            return Err("the process has no terminal".into());
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize we own.
        if unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(format!(
                "resizing the pty: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// After the process exited: waits (bounded) for the terminal's last
    /// output to reach containerd, so it is never cut off.
    pub fn drain(&self) {
        if let Some(rx) = self
            .out_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
        self.close_stdin();
    }

    /// On delete: lets go of every FIFO end.
    pub fn close(&self) {
        self.close_stdin();
        self.keep.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
