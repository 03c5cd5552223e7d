//! File access to cgroupfs, with errors that name the file and the errno.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

pub(crate) fn io_err(path: &Path, err: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Writes `value` with a single write(2): cgroupfs parses each write as one
/// complete value, so a value split over two writes would be two values.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|err| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        err,
    })
}

pub(crate) fn write_raw(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    loop {
        match f.write(value.as_bytes()) {
            Ok(n) if n == value.len() => return Ok(()),
            Ok(_) => return Err(std::io::Error::from(ErrorKind::WriteZero)),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

/// Like [`read`], but a missing file (a controller or feature the kernel
/// lacks) is `None` rather than an error.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Reads a single number; "max" (v2's "no limit") reads as `u64::MAX`.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>> {
    let Some(s) = read_opt(path)? else {
        return Ok(None);
    };
    parse_u64(s.trim()).map(Some).ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("not a number: {:?}", s.trim()),
    })
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
/// Lines that do not fit are skipped: newer kernels add keys, and a value
/// berth cannot read must not hide the others.
pub(crate) fn parse_flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = parse_u64(it.next()?)?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    parse_flat_keyed(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Every pid listed in `cgroup.procs` of `dir` and of its descendants.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        // The cgroup was removed under us (ENODEV: it is being removed,
        // e.g. by systemd once its scope emptied): it holds nothing.
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV) => {
            return Ok(())
        }
        Err(e) => return Err(io_err(&procs, e)),
    }
    for child in subdirs(dir)? {
        procs_recursive(&child, out)?;
    }
    Ok(())
}

pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err(dir, e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// mkdir -p below `mount`, remembering which directories this call made.
/// An ENOENT half-way means a concurrent teardown removed a parent that was
/// just seen to exist (another container's `destroy` of a shared `/berth`):
/// the walk starts again rather than failing the create.
pub(crate) fn mkdir_path(
    mount: &Path,
    components: &[&str],
    created: &mut Vec<PathBuf>,
    mut before_mkdir: impl FnMut(&Path) -> Result<()>,
) -> Result<()> {
    let mut attempts = 0;
    'outer: loop {
        let mut dir = mount.to_path_buf();
        for c in components {
            before_mkdir(&dir)?;
            dir.push(c);
            match std::fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 5 => {
                    attempts += 1;
                    continue 'outer;
                }
                Err(e) => return Err(io_err(&dir, e)),
            }
        }
        return Ok(());
    }
}

/// Removes a cgroup directory and, when `recursive`, the cgroups nested in
/// it (made by the container itself) first. A busy cgroup is retried for a
/// while: the last tasks of a killed cgroup leave it asynchronously.
pub(crate) fn rmdir_cgroup(dir: &Path, recursive: bool, retries: u32) -> Result<()> {
    if recursive {
        for child in subdirs(dir)? {
            rmdir_cgroup(&child, true, retries)?;
        }
    }
    let mut delay = Duration::from_millis(1);
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < retries => {
                attempt += 1;
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(io_err(dir, e)),
        }
    }
}

/// Sleeps with a growing delay until `done` says yes or `limit` passes.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_micros(200);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// The end of a `create`: on failure remove the directories this attempt
/// made (deepest first); on success remember them as ours, once each, so
/// teardown removes exactly what berth made.
pub(crate) fn settle_created(
    res: Result<()>,
    made: Vec<std::path::PathBuf>,
    owned: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    if let Err(e) = res {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e);
    }
    for d in made {
        if !owned.contains(&d) {
            owned.push(d);
        }
    }
    Ok(())
}
