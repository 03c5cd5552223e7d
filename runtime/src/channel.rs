//! The parent/init conversation: length-prefixed JSON messages over a unix
//! stream socket pair. The init reports every failure as a message before it
//! exits, so `create` can print what went wrong inside the container.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::init::Bootstrap;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// parent → init: what to build.
    Bootstrap(Box<Bootstrap>),
    /// init → parent: the user namespace exists, write its id maps.
    UsernsReady,
    /// parent → init: maps written / hooks ran; carry on.
    Continue,
    /// init → parent: the pid (in the parent's pid namespace) of the process
    /// that will become the container's process.
    Pid {
        pid: i32,
    },
    /// init → parent: namespaces and mounts are ready; run the prestart and
    /// createRuntime hooks now.
    RunHooks,
    /// parent → init: the hooks ran; this is the state JSON for the hooks
    /// the init runs itself (createContainer, startContainer).
    HooksDone {
        state: String,
    },
    /// init → parent: a seccomp notify listener follows as one byte with
    /// the fd attached.
    SeccompListener,
    /// init → parent: everything is set up; the init now waits for `start`
    /// (or, for exec, is about to run the program).
    Ready,
    Error {
        msg: String,
    },
}

pub struct Channel {
    sock: UnixStream,
}

impl Channel {
    pub fn new(sock: UnixStream) -> Self {
        Channel { sock }
    }

    pub fn pair() -> Result<(Channel, UnixStream)> {
        let (a, b) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
        Ok((Channel { sock: a }, b))
    }

    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    pub fn send(&mut self, msg: &Msg) -> Result<()> {
        let body = serde_json::to_vec(msg).expect("messages always serialise");
        let mut buf = Vec::with_capacity(body.len() + 4);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&body);
        self.sock
            .write_all(&buf)
            .map_err(|e| Error::sys("sending to the container's init", e))
    }

    /// Receives one message; `None` when the other side closed the socket.
    pub fn recv(&mut self) -> Result<Option<Msg>> {
        let mut len = [0u8; 4];
        match self.sock.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::sys("reading from the container's init", e)),
        }
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        self.sock
            .read_exact(&mut body)
            .map_err(|e| Error::sys("reading from the container's init", e))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::Init(format!("malformed message from init: {e}")))
    }

    /// Receives a message and turns the init's `Error` (or a closed socket)
    /// into an `Err`.
    pub fn expect(&mut self, what: &str) -> Result<Msg> {
        match self.recv()? {
            Some(Msg::Error { msg }) => Err(Error::Init(msg)),
            Some(m) => Ok(m),
            None => Err(Error::Init(format!(
                "container init exited unexpectedly while waiting for {what}"
            ))),
        }
    }
}
