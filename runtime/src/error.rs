//! The runtime library's error type. Every variant carries enough context to
//! print one line that names the field, path or container at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is not valid or asks for something berth refuses.
    #[error("{}", one_line(.0))]
    Config(String),
    #[error("{}: {source}", one_line(&path.display().to_string()))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", one_line(context))]
    Sys {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// runc's words, which containerd, Docker and CRI-O look for.
    #[error("container does not exist: {0:?}")]
    NotFound(String),
    #[error("container with given ID already exists: {0:?}")]
    Exists(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("{}", one_line(.0))]
    State(String),
    /// An error the container's init process reported before it could run
    /// the user program.
    #[error("{}", one_line(.0))]
    Init(String),
    #[error("{}", one_line(.0))]
    Hook(String),
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn sys(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Sys {
            context: context.into(),
            source,
        }
    }
}

/// Attaches a context string to io results.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(context(), e))
    }
}

/// A message kept to one line: control characters a config value carried
/// into it (a newline in a path, a NUL) are shown escaped.
pub fn one_line(msg: &str) -> String {
    if !msg.chars().any(char::is_control) {
        return msg.to_string();
    }
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An error message as clients that drive runc read it: they look for Go's
/// lowercase errno texts ("no such file or directory", "permission
/// denied", case-sensitive in containerd and the docker CLI), which Rust
/// prints capitalised and followed by "(os error N)". This rewrites those
/// texts, and nothing else, the way runc would have printed them.
pub fn for_clients(msg: &str) -> String {
    let mut out = msg.to_string();
    if out.contains("(os error ") {
        for n in 1..=133 {
            let full = std::io::Error::from_raw_os_error(n).to_string();
            if out.contains(&full) {
                let text = full
                    .strip_suffix(&format!(" (os error {n})"))
                    .unwrap_or(&full);
                out = out.replace(&full, &lower_first(text));
            }
        }
    }
    // The same texts where berth names the errno itself ("ENOENT: No such
    // file or directory"), which clients must find as well.
    for n in [
        libc::ENOENT,
        libc::EACCES,
        libc::EPERM,
        libc::ENOTDIR,
        libc::EISDIR,
        libc::ESRCH,
        libc::ENOEXEC,
    ] {
        let full = std::io::Error::from_raw_os_error(n).to_string();
        let text = full
            .strip_suffix(&format!(" (os error {n})"))
            .unwrap_or(&full);
        if out.contains(text) {
            out = out.replace(text, &lower_first(text));
        }
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_texts_read_as_runc_prints_them() {
        let e = Error::io("/x", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(for_clients(&e.to_string()), "/x: no such file or directory");
        assert_eq!(
            for_clients("cgroup /a: EACCES: Permission denied"),
            "cgroup /a: EACCES: permission denied"
        );
        assert_eq!(
            for_clients("Not a directory (os error 20) and Is a directory (os error 21)"),
            "not a directory and is a directory"
        );
        assert_eq!(for_clients("nothing to change"), "nothing to change");
    }
}
