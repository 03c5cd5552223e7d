use std::io;
use std::path::PathBuf;

/// Everything that can go wrong compiling, loading or handing over a filter.
///
/// Profile errors name the offending field with its full path in the OCI
/// config, e.g. `linux.seccomp.syscalls[3].args[0].index: 6 is out of range (0-5)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A profile value that runc/libseccomp would refuse, or that the
    /// runtime-spec forbids.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the field in the OCI config.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An architecture the compiler has no syscall table for.
    #[error("{field}: unsupported architecture {arch} (supported: {supported})")]
    UnsupportedArchitecture {
        /// Path of the field in the OCI config.
        field: String,
        /// The architecture as written in the config.
        arch: String,
        /// Comma-separated list of the supported ones.
        supported: String,
    },

    /// The machine this runs on has no syscall table in this crate.
    #[error("linux.seccomp: seccomp filters cannot be built for this host's architecture")]
    UnsupportedHost,

    /// The program exceeds the kernel's limit on classic BPF programs.
    #[error(
        "linux.seccomp: the compiled filter has {len} instructions, more than the kernel limit of {max}"
    )]
    TooLong {
        /// Instructions generated.
        len: usize,
        /// `BPF_MAXINSNS`.
        max: usize,
    },

    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("loading the seccomp filter (flags {flags:#x}): {source}")]
    Load {
        /// The `SECCOMP_FILTER_FLAG_*` bits of the failing call.
        flags: u32,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// Handing the notify listener to the seccomp agent failed.
    #[error("sending the seccomp listener fd to {}: {source}", path.display())]
    SendListener {
        /// `linux.seccomp.listenerPath`.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
