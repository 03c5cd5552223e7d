//! The runtime library's error type. Every variant carries enough context to
//! print one line that names the field, path or container at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is not valid or asks for something berth refuses.
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("{0}")]
    State(String),
    /// An error the container's init process reported before it could run
    /// the user program.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
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
