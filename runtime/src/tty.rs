//! `berth run` with a terminal and no console socket: berth holds the pty
//! master itself and relays between it and its own stdin/stdout, with the
//! caller's terminal in raw mode for the duration.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use crate::error::Result;

pub struct Proxy {
    saved: Option<libc::termios>,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(master: OwnedFd) -> Result<Proxy> {
        let saved = make_raw(0);
        if let Some(ws) = window_size(0) {
            // SAFETY: valid winsize pointer on our master fd.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
        let raw = master.into_raw_fd();
        // SAFETY: `raw` came from into_raw_fd; we make two owners by dup'ing.
        let out = unsafe { File::from_raw_fd(raw) };
        let input = out.try_clone().ok();
        let output = std::thread::spawn(move || {
            let mut out = out;
            let mut stdout = std::io::stdout();
            let mut buf = [0u8; 8192];
            // EIO ends the loop once the container's side of the pty closes.
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        });
        if let Some(mut input) = input {
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin();
                let mut buf = [0u8; 8192];
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 || input.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proxy {
            saved,
            output: Some(output),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The relay ends when the container's side of the pty is closed;
        // waiting for it keeps the program's last output.
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
        if let Some(t) = &self.saved {
            // SAFETY: restoring the attributes read from the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

fn make_raw(fd: i32) -> Option<libc::termios> {
    // SAFETY: zeroed termios is a valid out-buffer; calls on fd 0.
    unsafe {
        if libc::isatty(fd) != 1 {
            return None;
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return None;
        }
        let saved = t;
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        Some(saved)
    }
}

fn window_size(fd: i32) -> Option<libc::winsize> {
    // SAFETY: zeroed winsize is a valid out-buffer.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}
