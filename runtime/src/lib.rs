//! berth: an OCI container runtime. This library holds the whole container
//! lifecycle; the `berth` binary is a thin command line over it, and the
//! containerd shim links it directly.

pub mod channel;
pub mod check;
pub mod container;
pub mod copyup;
pub mod error;
pub mod features;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod logging;
pub mod lsm;
pub mod mounts;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod safepath;
pub mod sched;
pub mod selfexe;
pub mod spawn;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;
pub mod util;

pub use container::{CreateOptions, ExecOptions, ProcessIo, Runtime, DEFAULT_ROOT};
pub use error::{Error, Result};
