//! OOM notifications for one cgroup.
//!
//! v1: an eventfd registered on memory.oom_control through
//! cgroup.event_control; the kernel signals it on every OOM in the cgroup,
//! and once more when the cgroup is removed. v2: inotify on memory.events,
//! whose `oom_kill` counter is compared with the last one seen, and on the
//! cgroup directory, whose deletion ends the watch.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::fs::{io_err, keyed, read_opt, write};
use crate::{Error, Result};

pub struct OomWatcher {
    inner: Inner,
    removed: bool,
}

enum Inner {
    V1 {
        efd: EventFd,
        // Registered with the kernel by fd number: kept open for as long as
        // the registration is meant to last.
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: Inotify,
        dir: PathBuf,
        /// The cgroup's name in its parent, whose deletion ends the watch.
        name: std::ffi::OsString,
        last: u64,
    },
}

impl std::fmt::Debug for OomWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, dir) = match &self.inner {
            Inner::V1 { dir, .. } => ("v1", dir),
            Inner::V2 { dir, .. } => ("v2", dir),
        };
        f.debug_struct("OomWatcher")
            .field("kind", &kind)
            .field("dir", dir)
            .field("removed", &self.removed)
            .finish()
    }
}

fn errno_err(path: &Path, e: Errno) -> Error {
    io_err(path, std::io::Error::from_raw_os_error(e as i32))
}

fn oom_kill_count_in(file: &Path) -> Result<Option<u64>> {
    Ok(read_opt(file)?.map(|t| keyed(&t, "oom_kill").unwrap_or(0)))
}

impl OomWatcher {
    /// `dir` is the container's directory in the v1 memory hierarchy.
    pub(crate) fn v1(dir: &Path) -> Result<OomWatcher> {
        let control_path = dir.join("memory.oom_control");
        let control = File::open(&control_path).map_err(|e| io_err(&control_path, e))?;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| errno_err(&control_path, e))?;
        write(
            &dir.join("cgroup.event_control"),
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(OomWatcher {
            inner: Inner::V1 {
                efd,
                _oom_control: control,
                dir: dir.to_path_buf(),
            },
            removed: false,
        })
    }

    /// `dir` is the container's cgroup2 directory.
    pub(crate) fn v2(dir: &Path) -> Result<OomWatcher> {
        let events = dir.join("memory.events");
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| errno_err(&events, e))?;
        inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| errno_err(&events, e))?;
        // kernfs reports neither the removal of its files nor (before the
        // last dentry reference goes) the directory's own deletion; rmdir(2)
        // always reports the deletion to a watch on the parent.
        let parent = dir.parent().unwrap_or(dir);
        inotify
            .add_watch(parent, AddWatchFlags::IN_DELETE | AddWatchFlags::IN_ONLYDIR)
            .map_err(|e| errno_err(parent, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let last = oom_kill_count_in(&events)?.unwrap_or(0);
        Ok(OomWatcher {
            inner: Inner::V2 {
                inotify,
                dir: dir.to_path_buf(),
                name,
                last,
            },
            removed: false,
        })
    }

    /// Waits up to `timeout` (`None`: for ever) for an OOM in the cgroup.
    /// `Ok(true)`: one (or more) happened since the last call; `Ok(false)`:
    /// the time ran out, or the cgroup was removed ([`Self::cgroup_removed`]
    /// then says so, and later calls return at once).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool> {
        if self.removed {
            return Ok(false);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up: a 0 ms poll for 0.4 ms left would spin.
                    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let ready = {
                let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
                match nix::poll::poll(&mut fds, left) {
                    Ok(n) => n > 0,
                    Err(Errno::EINTR) => false,
                    Err(e) => return Err(errno_err(self.dir(), e)),
                }
            };
            if ready && self.consume()? {
                return Ok(true);
            }
            if self.removed {
                return Ok(false);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Drains the fd; whether what it said was an OOM.
    fn consume(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::V1 { efd, dir, .. } => {
                let count = match efd.read() {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) => return Ok(false),
                    Err(e) => return Err(errno_err(dir, e)),
                };
                // The same eventfd announces the cgroup's removal, adding
                // one to the count: more than that means an OOM came first
                // (a watcher scheduled late reads both at once).
                if !dir.join("cgroup.event_control").exists() {
                    self.removed = true;
                    return Ok(count >= 2);
                }
                Ok(true)
            }
            Inner::V2 {
                inotify,
                dir,
                name,
                last,
            } => {
                let events = match inotify.read_events() {
                    Ok(ev) => ev,
                    Err(Errno::EAGAIN) => Vec::new(),
                    Err(e) => return Err(errno_err(dir, e)),
                };
                if events.iter().any(|e| {
                    e.mask.contains(AddWatchFlags::IN_DELETE) && e.name.as_ref() == Some(name)
                }) {
                    self.removed = true;
                }
                let Some(now) = oom_kill_count_in(&dir.join("memory.events"))? else {
                    self.removed = true;
                    return Ok(false);
                };
                if now > *last {
                    *last = now;
                    return Ok(true);
                }
                Ok(false)
            }
        }
    }

    /// How many processes the kernel's OOM killer has killed in the cgroup
    /// (v1: memory.oom_control's oom_kill, kernels >= 4.13; v2:
    /// memory.events' oom_kill).
    pub fn oom_kill_count(&self) -> Result<u64> {
        let file = match &self.inner {
            Inner::V1 { dir, .. } => dir.join("memory.oom_control"),
            Inner::V2 { dir, .. } => dir.join("memory.events"),
        };
        oom_kill_count_in(&file)?
            .ok_or_else(|| io_err(&file, std::io::Error::from_raw_os_error(libc::ENOENT)))
    }

    /// Whether the watched cgroup is gone.
    pub fn cgroup_removed(&self) -> bool {
        self.removed
    }

    fn dir(&self) -> &Path {
        match &self.inner {
            Inner::V1 { dir, .. } | Inner::V2 { dir, .. } => dir,
        }
    }
}

/// The fd to poll for readability in an event loop; call
/// [`OomWatcher::wait`] with a zero timeout when it is readable.
impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::V1 { efd, .. } => efd.as_fd(),
            Inner::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}
