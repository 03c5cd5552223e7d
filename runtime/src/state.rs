//! Per-container state under the runtime root: a directory per container
//! holding `state.json`, the start socket, and a lock that serialises commands
//! on the same container.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys;

pub const STATE_FILE: &str = "state.json";
/// The socket a created container's init listens on until `start`.
pub const START_SOCK: &str = "start.sock";
/// What `create` writes before it makes anything outside the state
/// directory (the cgroup): enough for `delete --force` to find and remove
/// it if `create` dies before `state.json` exists.
pub const PENDING_FILE: &str = "creating.json";

/// The record of a `create` still under way (see [`PENDING_FILE`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub cgroup: berth_cgroups::Manager,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `create` records for later commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` in clock ticks, to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner_uid: u32,
    pub cgroup: Option<berth_cgroups::Manager>,
    pub config: Spec,
    #[serde(default)]
    pub extras: crate::spec::Extras,
}

/// runc's `state` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The OCI state handed to hooks on stdin.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a HashMap<String, String>>,
}

pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id == "." || id.contains("..") {
        return bad("it contains \"..\"");
    }
    if id.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

pub struct Store {
    pub root: PathBuf,
}

/// An exclusive flock on a container's directory, released on drop.
pub struct Lock {
    _file: File,
}

fn flock(file: &File) -> Result<()> {
    loop {
        // SAFETY: flock on a valid fd.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::sys("locking the container state", e));
        }
    }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Makes a new container's directory, refusing an ID in use, and locks it.
    pub fn create(&self, id: &str) -> Result<Lock> {
        validate_id(id)?;
        // 0700 like runc: state.json holds the whole config, secrets in
        // process.env included.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| Error::io(&self.root, e))?;
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let f = File::open(&dir).map_err(|e| Error::io(&dir, e))?;
        flock(&f)?;
        Ok(Lock { _file: f })
    }

    /// Locks an existing container.
    pub fn lock(&self, id: &str) -> Result<Lock> {
        validate_id(id)?;
        let dir = self.dir(id);
        let f = File::open(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
            _ => Error::io(&dir, e),
        })?;
        flock(&f)?;
        // It may have been deleted (and even made anew) while we waited:
        // the lock must be on the directory that is there now.
        let held = f.metadata().map_err(|e| Error::io(&dir, e))?;
        match std::fs::metadata(&dir) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => Ok(Lock { _file: f }),
            _ => Err(Error::NotFound(id.to_string())),
        }
    }

    pub fn save(&self, s: &Saved) -> Result<()> {
        self.write_atomic(
            &s.id,
            STATE_FILE,
            &serde_json::to_vec(s).expect("state serialises"),
        )
    }

    /// Writes `name` in the container's directory through a temporary file
    /// and a rename, so a reader never sees half of it.
    fn write_atomic(&self, id: &str, name: &str, data: &[u8]) -> Result<()> {
        let dir = self.dir(id);
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let fd = sys::open(
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )
        .map_err(|e| Error::io(&tmp, e))?;
        sys::write_all_fd(std::os::fd::AsFd::as_fd(&fd), data).map_err(|e| Error::io(&tmp, e))?;
        drop(fd);
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| Error::io(&dir, e))
    }

    /// Records a `create` under way (before it makes its cgroup).
    pub fn save_pending(&self, id: &str, p: &Pending) -> Result<()> {
        self.write_atomic(
            id,
            PENDING_FILE,
            &serde_json::to_vec(p).expect("serialises"),
        )
    }

    /// The record of a `create` that never finished, if there is one.
    pub fn load_pending(&self, id: &str) -> Option<Pending> {
        let data = std::fs::read(self.dir(id).join(PENDING_FILE)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn load(&self, id: &str) -> Result<Saved> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
            _ => Error::io(&path, e),
        })?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::State(format!("{}: corrupt state: {e}", path.display())))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&dir, e)),
        }
    }

    pub fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        for ent in rd.flatten() {
            if ent.path().join(STATE_FILE).exists() {
                if let Some(n) = ent.file_name().to_str() {
                    ids.push(n.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The container's status, derived from its init process, start socket
    /// and freezer, never from what a previous command wrote.
    pub fn status(&self, s: &Saved) -> Status {
        if !init_alive(s) {
            return Status::Stopped;
        }
        // Frozen first: a created container can be paused too (runc).
        if let Some(cg) = &s.cgroup {
            if matches!(cg.freezer_state(), Ok(berth_cgroups::FreezerState::Frozen)) {
                return Status::Paused;
            }
        }
        if self.dir(&s.id).join(START_SOCK).exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn owner_of(&self, id: &str) -> u32 {
        std::fs::metadata(self.dir(id)).map_or(0, |m| m.uid())
    }
}

pub fn init_alive(s: &Saved) -> bool {
    if s.pid <= 0 {
        return false;
    }
    match sys::proc_start_time(s.pid) {
        Ok((start, zombie)) => start == s.pid_start && !zombie,
        Err(_) => false,
    }
}

pub fn state_output(store: &Store, s: &Saved) -> StateOutput {
    let status = store.status(s);
    StateOutput {
        oci_version: s.config.version().clone(),
        id: s.id.clone(),
        pid: if status == Status::Stopped { 0 } else { s.pid },
        status,
        bundle: s.bundle.clone(),
        rootfs: s.rootfs.clone(),
        created: s.created.clone(),
        owner: user_name(s.owner_uid),
        annotations: s.config.annotations().clone().unwrap_or_default(),
    }
}

/// The host user name for a uid, as runc's `owner` field shows it.
pub fn user_name(uid: u32) -> String {
    if let Ok(pw) = std::fs::read_to_string("/etc/passwd") {
        for line in pw.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 && f[2].parse() == Ok(uid) {
                return f[0].to_string();
            }
        }
    }
    format!("#{uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_slashes_dots_or_empty_are_refused() {
        for bad in ["", "a/b", "..", "a..b", ".", "x y", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "a-b_c.d+e", "123"] {
            assert!(validate_id(good).is_ok(), "{good:?}");
        }
    }
}
