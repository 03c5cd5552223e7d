//! Just enough of the D-Bus wire protocol for the systemd cgroup driver:
//! SASL EXTERNAL authentication, method calls with their replies or errors,
//! and signals, over a blocking Unix socket.
//!
//! Hand-written rather than libdbus or zbus: berth links statically and
//! starts a process per command, so neither a C library nor an async
//! runtime belongs in it, and the driver needs a handful of calls.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A D-Bus value. Arrays carry their element signature, so an empty array
/// still marshals with the right type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    /// `(sv)`: one entry of a property list.
    pub fn property(name: &str, v: Value) -> Value {
        Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("D-Bus {}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("D-Bus {}: {what}", path.display())]
    Protocol { what: String, path: PathBuf },
    /// The peer answered with an error message.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("D-Bus {}: no answer within {timeout:?}", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
}

fn align_of(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Splits the first complete type off a signature.
fn first_type(sig: &str) -> Option<(&str, &str)> {
    let b = sig.as_bytes();
    let mut i = 0;
    while *b.get(i)? == b'a' {
        i += 1;
    }
    let end = match b[i] {
        // An empty struct marshals to nothing: an array of them would never
        // end.
        b'(' | b'{' if matches!(b.get(i + 1), Some(b')' | b'}')) => return None,
        b'(' | b'{' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'(' | b'{' => depth += 1,
                    b')' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => i + 1,
    };
    Some(sig.split_at(end))
}

/// Appends values to a buffer whose offset 0 is 8-aligned in the message
/// (the header and the body both start so), which is what alignment is
/// relative to.
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(*b as u32),
            Value::I32(i) => self.u32(*i as u32),
            Value::U32(u) => self.u32(*u),
            Value::I64(i) => {
                self.pad(8);
                self.buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::U64(u) => {
                self.pad(8);
                self.buf.extend_from_slice(&u.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.str(s),
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the first element is not part of the length.
                self.pad(align_of(elem.as_bytes()[0]));
                let start = self.buf.len();
                for it in items {
                    self.put(it);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f);
                }
            }
            Value::Variant(inner) => {
                self.put(&Value::Sig(inner.signature()));
                self.put(inner);
            }
        }
    }
}

/// Reads values of a message in either byte order.
struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl Dec<'_> {
    fn err(what: &str) -> String {
        format!("malformed message: {what}")
    }

    fn pad(&mut self, n: usize) -> Result<(), String> {
        let to = self.pos.div_ceil(n) * n;
        if to > self.buf.len() {
            return Err(Self::err("truncated"));
        }
        self.pos = to;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| Self::err("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// An aligned N-byte integer, as a u64 in this machine's order.
    fn uint<const N: usize>(&mut self) -> Result<u64, String> {
        self.pad(N)?;
        let mut b = [0u8; 8];
        let big = self.big;
        let src = self.take(N)?;
        if big {
            b[8 - N..].copy_from_slice(src);
            Ok(u64::from_be_bytes(b))
        } else {
            b[..N].copy_from_slice(src);
            Ok(u64::from_le_bytes(b))
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(self.uint::<4>()? as u32)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.uint::<8>()
    }

    fn string(&mut self, len: usize) -> Result<String, String> {
        let s = self.take(len + 1)?;
        String::from_utf8(s[..len].to_vec()).map_err(|_| Self::err("string is not UTF-8"))
    }

    /// One value of the complete type `sig`.
    fn get(&mut self, sig: &str, depth: u32) -> Result<Value, String> {
        if depth > 32 {
            return Err(Self::err("nested too deeply"));
        }
        let code = *sig
            .as_bytes()
            .first()
            .ok_or_else(|| Self::err("empty type"))?;
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'n' | b'q' => Value::U32(self.uint::<2>()? as u32),
            b'x' => Value::I64(self.u64()? as i64),
            b't' | b'd' => Value::U64(self.u64()?),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.string(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = self.take(1)?[0] as usize;
                Value::Sig(self.string(len)?)
            }
            b'v' => {
                let Value::Sig(inner) = self.get("g", depth + 1)? else {
                    unreachable!()
                };
                match first_type(&inner) {
                    Some((t, "")) => Value::Variant(Box::new(self.get(t, depth + 1)?)),
                    _ => return Err(Self::err("variant signature is not one type")),
                }
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem = &sig[1..];
                self.pad(align_of(
                    *elem.as_bytes().first().ok_or_else(|| Self::err("array"))?,
                ))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(|| Self::err("array overruns the message"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    let at = self.pos;
                    items.push(self.get(elem, depth + 1)?);
                    if self.pos == at {
                        return Err(Self::err("array element of no size"));
                    }
                }
                if self.pos != end {
                    return Err(Self::err("array length"));
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.pad(8)?;
                let mut rest = &sig[1..sig.len() - 1];
                let mut fields = Vec::new();
                while !rest.is_empty() {
                    let (t, r) = first_type(rest).ok_or_else(|| Self::err("struct type"))?;
                    fields.push(self.get(t, depth + 1)?);
                    rest = r;
                }
                Value::Struct(fields)
            }
            _ => return Err(Self::err("unknown type code")),
        })
    }

    fn get_all(&mut self, mut sig: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (t, rest) = first_type(sig).ok_or_else(|| Self::err("signature"))?;
            out.push(self.get(t, 0)?);
            sig = rest;
        }
        Ok(out)
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A received message, its header fields decoded.
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: String,
    pub interface: String,
    pub member: String,
    pub error_name: String,
    /// The unique bus name of the sender (empty on a peer-to-peer socket).
    pub sender: String,
    pub body: Vec<Value>,
}

fn encode_call(
    serial: u32,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Enc::default();
    for a in args {
        body.put(a);
    }
    let sig: String = args.iter().map(Value::signature).collect();
    let field =
        |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
    let mut fields = vec![
        field(1, Value::Path(path.into())),
        field(2, Value::Str(iface.into())),
        field(3, Value::Str(member.into())),
    ];
    if let Some(d) = dest {
        fields.push(field(6, Value::Str(d.into())));
    }
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut m = Enc::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.put(&Value::Array("(yv)".into(), fields));
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// How many bytes the message at the start of `buf` takes, once its fixed
/// 16-byte start is there.
fn message_len(buf: &[u8]) -> Result<Option<usize>, String> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let big = match buf[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err("bad byte-order mark".into()),
    };
    let word = |i: usize| {
        let b: [u8; 4] = buf[i..i + 4].try_into().expect("4 bytes");
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (body, fields) = (word(4) as usize, word(12) as usize);
    let total = (16 + fields).div_ceil(8) * 8 + body;
    if total > 128 << 20 {
        return Err("message larger than D-Bus allows".into());
    }
    Ok(Some(total))
}

fn decode(buf: &[u8]) -> Result<Message, String> {
    let big = buf[0] == b'B';
    let mut d = Dec { buf, pos: 4, big };
    let body_len = d.u32()? as usize;
    let _serial = d.u32()?;
    let mut m = Message {
        kind: buf[1],
        ..Message::default()
    };
    let mut sig = String::new();
    let Value::Array(_, fields) = d.get("a(yv)", 0)? else {
        unreachable!()
    };
    for f in fields {
        let Value::Struct(mut kv) = f else { continue };
        let (Some(Value::Variant(v)), Some(Value::Byte(code))) = (kv.pop(), kv.pop()) else {
            continue;
        };
        match (code, *v) {
            (1, Value::Path(s)) => m.path = s,
            (2, Value::Str(s)) => m.interface = s,
            (3, Value::Str(s)) => m.member = s,
            (4, Value::Str(s)) => m.error_name = s,
            (5, Value::U32(s)) => m.reply_serial = Some(s),
            (7, Value::Str(s)) => m.sender = s,
            (8, Value::Sig(s)) => sig = s,
            _ => {}
        }
    }
    d.pad(8)?;
    if d.buf.len() - d.pos != body_len {
        return Err(Dec::err("body length"));
    }
    m.body = d.get_all(&sig)?;
    Ok(m)
}

/// A connection to a bus (or to systemd's private peer-to-peer socket).
pub struct Conn {
    path: PathBuf,
    sock: UnixStream,
    serial: u32,
    rx: Vec<u8>,
    timeout: Duration,
    /// Signals that arrived while a reply was awaited.
    pending: VecDeque<Message>,
    /// A message bus is on the other side (not a peer).
    pub bus: bool,
}

impl Conn {
    /// Connects and authenticates as this process's uid; `bus` says a
    /// message bus is on the other side, which must be greeted (`Hello`).
    pub fn connect(path: &Path, bus: bool, timeout: Duration) -> Result<Conn, Error> {
        let io = |err| Error::Io {
            path: path.to_path_buf(),
            err,
        };
        let sock = UnixStream::connect(path).map_err(io)?;
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        sock.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut c = Conn {
            path: path.to_path_buf(),
            sock,
            serial: 0,
            rx: Vec::new(),
            timeout,
            pending: VecDeque::new(),
            bus,
        };
        c.auth()?;
        if bus {
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(c)
    }

    fn io(&self, err: std::io::Error) -> Error {
        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            return Error::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            };
        }
        Error::Io {
            path: self.path.clone(),
            err,
        }
    }

    fn protocol(&self, what: impl Into<String>) -> Error {
        Error::Protocol {
            what: what.into(),
            path: self.path.clone(),
        }
    }

    fn auth(&mut self) -> Result<(), Error> {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let hello = format!("\0AUTH EXTERNAL {hex}\r\n");
        self.sock
            .write_all(hello.as_bytes())
            .map_err(|e| self.io(e))?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(self.protocol(format!("authentication refused: {line:?}")));
        }
        self.sock.write_all(b"BEGIN\r\n").map_err(|e| self.io(e))
    }

    fn read_line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        // Byte by byte: nothing after the line may be consumed here, and
        // the line is short.
        while !line.ends_with(b"\r\n") {
            match self.sock.read(&mut b) {
                Ok(0) => return Err(self.protocol("connection closed during authentication")),
                Ok(_) => line.push(b[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
            if line.len() > 512 {
                return Err(self.protocol("overlong authentication line"));
            }
        }
        Ok(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned())
    }

    fn recv(&mut self, deadline: Instant) -> Result<Message, Error> {
        loop {
            if let Some(len) = message_len(&self.rx).map_err(|e| self.protocol(e))? {
                if self.rx.len() >= len {
                    let m = decode(&self.rx[..len]).map_err(|e| self.protocol(e))?;
                    self.rx.drain(..len);
                    return Ok(m);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io(ErrorKind::TimedOut.into()));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| self.io(e))?;
            let mut chunk = [0u8; 8192];
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(self.protocol("connection closed")),
                Ok(n) => self.rx.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    /// Calls a method and waits for its reply's body; an error reply is
    /// [`Error::Remote`].
    pub fn call(
        &mut self,
        dest: Option<&str>,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, Error> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.sock.write_all(&msg).map_err(|e| self.io(e))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.recv(deadline)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    return Err(Error::Remote {
                        name: m.error_name,
                        message,
                    });
                }
                SIGNAL => self.pending.push_back(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal that `want` accepts, those received earlier
    /// included.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&Message) -> bool,
    ) -> Result<Message, Error> {
        if let Some(i) = self.pending.iter().position(&mut want) {
            return Ok(self.pending.remove(i).expect("index is in range"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline)?;
            if m.kind == SIGNAL && want(&m) {
                return Ok(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_split_into_complete_types() {
        assert_eq!(first_type("ssa(sv)"), Some(("s", "sa(sv)")));
        assert_eq!(first_type("a(sa(sv))u"), Some(("a(sa(sv))", "u")));
        assert_eq!(first_type("a{sv}"), Some(("a{sv}", "")));
        assert_eq!(first_type("a(s"), None);
        assert_eq!(first_type("a()"), None);
        assert_eq!(first_type("a{}"), None);
        assert_eq!(first_type("a"), None);
    }

    #[test]
    fn values_round_trip_with_alignment() {
        let args = vec![
            Value::Str("berth-x.scope".into()),
            Value::Array(
                "(sv)".into(),
                vec![
                    Value::property("PIDs", Value::Array("u".into(), vec![Value::U32(42)])),
                    Value::property("MemoryMax", Value::U64(1 << 30)),
                    Value::property("Delegate", Value::Bool(true)),
                    Value::property(
                        "AllowedCPUs",
                        Value::Array("y".into(), vec![Value::Byte(3)]),
                    ),
                ],
            ),
            Value::Array("(sa(sv))".into(), vec![]),
            Value::Path("/org/freedesktop/systemd1/job/7".into()),
        ];
        let mut e = Enc::default();
        e.put(&Value::Byte(1)); // misaligns what follows
        for a in &args {
            e.put(a);
        }
        let sig: String = args.iter().map(Value::signature).collect();
        assert_eq!(sig, "sa(sv)a(sa(sv))o");
        let mut d = Dec {
            buf: &e.buf,
            pos: 0,
            big: false,
        };
        assert_eq!(d.get("y", 0).unwrap(), Value::Byte(1));
        assert_eq!(d.get_all(&sig).unwrap(), args);
        assert_eq!(d.pos, e.buf.len());
    }

    #[test]
    fn a_method_call_decodes_as_sent() {
        let buf = encode_call(
            7,
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            &[Value::Str("a.scope".into()), Value::Str("replace".into())],
        );
        assert_eq!(message_len(&buf).unwrap(), Some(buf.len()));
        let m = decode(&buf).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.path, "/org/freedesktop/systemd1");
        assert_eq!(m.member, "StopUnit");
        assert_eq!(
            m.body,
            vec![Value::Str("a.scope".into()), Value::Str("replace".into())]
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let buf = encode_call(1, None, "/", "a.b", "C", &[Value::Str("x".into())]);
        for cut in 16..buf.len() {
            let mut b = buf[..cut].to_vec();
            // Claim the full length so decode sees a short body.
            b.resize(buf.len(), 0xff);
            let _ = decode(&b);
        }
        let mut b = buf.clone();
        b[0] = b'X';
        assert!(message_len(&b).is_err());
        // An array claiming 1000 bytes of empty structs.
        let mut d = Dec {
            buf: &[0xe8, 3, 0, 0, 0, 0, 0, 0],
            pos: 0,
            big: false,
        };
        assert!(d.get("a()", 0).is_err());
    }
}
