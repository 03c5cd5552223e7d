//! Events to containerd: forwarded over its ttrpc socket (TTRPC_ADDRESS)
//! by one thread, in the order they were published, retried across a
//! containerd restart so that no exit is lost.

use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::EventsClient;
use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::Message;

pub fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// An Any as containerd's typeurl makes it for a proto message: the type
/// URL is the message's full name, `package.Name`. Named here rather than
/// taken from protobuf's reflection, which would build every descriptor of
/// the file in the shim's heap.
pub fn any<M: Message>(package: &str, m: &M) -> Any {
    let mut a = Any::new();
    a.type_url = format!("{package}.{}", M::NAME);
    a.value = m.write_to_bytes().unwrap_or_default();
    a
}

enum Msg {
    Event(Envelope),
    /// Answered once every event queued before it was forwarded.
    Flush(Sender<()>),
}

pub struct Publisher {
    tx: Mutex<Sender<Msg>>,
    namespace: String,
}

impl Publisher {
    pub fn start(namespace: &str) -> Publisher {
        let (tx, rx) = channel();
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(move || forward_loop(&address, rx))
            .expect("spawning the events thread");
        Publisher {
            tx: Mutex::new(tx),
            namespace: namespace.to_string(),
        }
    }

    /// Publishes one of containerd's task events (package containerd.events).
    pub fn publish<M: Message>(&self, topic: &str, event: &M) {
        let mut env = Envelope::new();
        env.timestamp = protobuf::MessageField::some(now());
        env.namespace = self.namespace.clone();
        env.topic = topic.to_string();
        env.event = protobuf::MessageField::some(any("containerd.events", event));
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Event(env));
    }

    /// Waits (at most `timeout`) until every event published so far has
    /// been forwarded: what the shim does before it exits.
    pub fn flush(&self, timeout: Duration) {
        let (tx, rx) = channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Flush(tx));
        if sent.is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let s = UnixStream::connect(path).ok()?;
    ttrpc::Client::new(s.into_raw_fd())
        .ok()
        .map(EventsClient::new)
}

fn forward_loop(address: &str, rx: Receiver<Msg>) {
    let mut client: Option<EventsClient> = None;
    for msg in rx {
        let env = match msg {
            Msg::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            // Nobody to tell (started by hand, not by containerd).
            Msg::Event(_) if address.is_empty() => continue,
            Msg::Event(env) => env,
        };
        let mut req = ForwardRequest::new();
        req.envelope = protobuf::MessageField::some(env);
        let give_up = Instant::now() + Duration::from_secs(120);
        let mut pause = Duration::from_millis(50);
        loop {
            if client.is_none() {
                client = connect(address);
            }
            if let Some(c) = &client {
                match c.forward(ttrpc::context::with_timeout(5_000_000_000), &req) {
                    Ok(_) => break,
                    Err(e) => {
                        berth::logging::warn(&format!("publishing an event: {e}"));
                        client = None;
                    }
                }
            }
            if Instant::now() > give_up {
                berth::logging::warn("dropping an event: containerd unreachable for 2 minutes");
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
