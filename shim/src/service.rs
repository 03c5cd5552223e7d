//! The shim daemon: containerd's task API (v2 for containerd 1.x, v3 for
//! 2.x: the same messages under two service names) over ttrpc, served by
//! calling berth's library in this process. One daemon serves every
//! container of a pod.

use std::collections::HashMap;
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use berth::state::Status as BerthStatus;
use berth::{CreateOptions, ExecOptions, Runtime};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::shim::oci::{Options as RuncOptions, ProcessDetails};
use containerd_shim_protos::shim::shim::*;
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use containerd_shim_protos::Task;
use protobuf::well_known_types::empty::Empty;
use protobuf::{Message, MessageField};
use ttrpc::{Code, TtrpcContext};

use crate::events::{any, timestamp, Publisher};
use crate::flags::Flags;
use crate::stdio::{Io, Stdio};
use crate::{manager, metrics, reaper, rootfs, stdio};

type RpcResult<T> = ttrpc::Result<T>;

fn rpc_err(code: Code, msg: impl std::fmt::Display) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.to_string()))
}

fn berth_err(e: berth::Error) -> ttrpc::Error {
    let code = match &e {
        berth::Error::NotFound(_) => Code::NOT_FOUND,
        berth::Error::Exists(_) => Code::ALREADY_EXISTS,
        berth::Error::State(_) => Code::FAILED_PRECONDITION,
        berth::Error::Config(_) => Code::INVALID_ARGUMENT,
        _ => Code::UNKNOWN,
    };
    // containerd and Docker read the text for runc's phrases.
    rpc_err(code, berth::error::for_clients(&e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PStatus {
    Created,
    Running,
    Stopped,
}

struct PState {
    pid: i32,
    status: PStatus,
    exit_status: u32,
    exited_at: Option<SystemTime>,
    /// Its TaskExit is on its way to containerd (or it never started).
    published: bool,
}

/// A container's init or one of its exec'd processes.
struct Proc {
    exec_id: String,
    stdio: Stdio,
    spec: Option<oci_spec::runtime::Process>,
    st: Mutex<PState>,
    cv: Condvar,
    io: Mutex<Option<Arc<Io>>>,
    /// Held from starting the process until its start event is published,
    /// and by whoever publishes its exit: TaskExit never overtakes
    /// TaskCreate, TaskStart or TaskExecStarted.
    order: Mutex<()>,
}

impl Proc {
    fn new(exec_id: &str, stdio: Stdio) -> Proc {
        Proc {
            exec_id: exec_id.into(),
            stdio,
            spec: None,
            st: Mutex::new(PState {
                pid: 0,
                status: PStatus::Created,
                exit_status: 0,
                exited_at: None,
                published: false,
            }),
            cv: Condvar::new(),
            io: Mutex::new(None),
            order: Mutex::new(()),
        }
    }

    fn io(&self) -> Option<Arc<Io>> {
        lock(&self.io).clone()
    }

    fn pid(&self) -> i32 {
        lock(&self.st).pid
    }

    fn stopped(&self) -> bool {
        lock(&self.st).status == PStatus::Stopped
    }

    fn set_exited(&self, code: i32) {
        let mut st = lock(&self.st);
        st.status = PStatus::Stopped;
        st.exit_status = code as u32;
        st.exited_at = Some(SystemTime::now());
        self.cv.notify_all();
    }

    fn set_published(&self) {
        lock(&self.st).published = true;
        self.cv.notify_all();
    }

    /// A process that will never run (its start failed, or it is deleted
    /// before it started): waiters get `code` and no TaskExit is sent.
    fn abandon(&self, code: i32) {
        let mut st = lock(&self.st);
        if st.status == PStatus::Created {
            st.status = PStatus::Stopped;
            st.exit_status = code as u32;
            st.exited_at = Some(SystemTime::now());
        }
        st.published = true;
        self.cv.notify_all();
    }

    /// Being started, running, or exited with its TaskExit not yet sent.
    fn exit_pending(&self) -> bool {
        if self.order.try_lock().is_err() {
            return true;
        }
        let st = lock(&self.st);
        st.status == PStatus::Running || (st.status == PStatus::Stopped && !st.published)
    }

    /// Waits until the exit is known (`published`: and its TaskExit sent);
    /// None when `timeout` ran out first.
    fn wait_for(&self, published: bool, timeout: Option<Duration>) -> Option<(u32, SystemTime)> {
        let mut st = lock(&self.st);
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let done = |st: &PState| st.status == PStatus::Stopped && (!published || st.published);
        while !done(&st) {
            match deadline {
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return None;
                    }
                    st = self
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        Some((st.exit_status, st.exited_at.unwrap_or_else(SystemTime::now)))
    }

    /// Waits for the exit, however long it takes.
    fn wait_exit(&self) -> (u32, SystemTime) {
        self.wait_for(false, None)
            .expect("no deadline, so the exit came")
    }
}

struct Container {
    id: String,
    bundle: PathBuf,
    rootfs_mounted: bool,
    rt: Arc<Runtime>,
    init: Arc<Proc>,
    execs: Mutex<HashMap<String, Arc<Proc>>>,
    /// Without a pid namespace of its own, the container's other processes
    /// do not die with its init: the shim kills them, as runc's does.
    own_pid_ns: bool,
}

pub struct Shim {
    namespace: String,
    socket: String,
    events: Publisher,
    unified: bool,
    containers: Mutex<HashMap<String, Arc<Container>>>,
}

impl Shim {
    fn container(&self, id: &str) -> RpcResult<Arc<Container>> {
        lock(&self.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))
    }

    fn process(&self, id: &str, exec_id: &str) -> RpcResult<(Arc<Container>, Arc<Proc>)> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            let p = c.init.clone();
            return Ok((c, p));
        }
        let p = lock(&c.execs).get(exec_id).cloned().ok_or_else(|| {
            rpc_err(
                Code::NOT_FOUND,
                format!("process {exec_id} of container {id} not found"),
            )
        })?;
        Ok((c, p))
    }

    /// What happens when a process of a container is reaped. Runs on the
    /// reaper: records the exit at once (so State, Wait and Kill see it),
    /// and sends TaskExit after the process's own start events, once a
    /// terminal's last output is through and, for an init, once the exits
    /// of the container's other processes have gone first. Anything that
    /// may wait happens on a thread of its own.
    fn on_exit(self: &Arc<Self>, c: &Arc<Container>, p: &Arc<Proc>, code: i32) {
        p.set_exited(code);
        let is_init = p.exec_id.is_empty();
        let slow = p.stdio.terminal
            || (is_init && (!c.own_pid_ns || lock(&c.execs).values().any(|e| e.exit_pending())));
        if !slow {
            if let Ok(_order) = p.order.try_lock() {
                self.send_exit(c, p);
                return;
            }
        }
        let (shim, c2, p2) = (self.clone(), c.clone(), p.clone());
        let spawned = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let (c, p) = (c2, p2);
                let _order = lock(&p.order);
                if let Some(io) = p.io() {
                    io.drain();
                }
                if p.exec_id.is_empty() {
                    if !c.own_pid_ns {
                        // Nothing else kills them: no pid namespace dies here.
                        let _ = c.rt.kill(&c.id, libc::SIGKILL, true);
                    }
                    let execs: Vec<Arc<Proc>> = lock(&c.execs).values().cloned().collect();
                    for e in execs {
                        // An exec being started: let its Start finish.
                        drop(lock(&e.order));
                        if lock(&e.st).status != PStatus::Created {
                            e.wait_for(true, Some(Duration::from_secs(5)));
                        }
                    }
                }
                shim.send_exit(&c, &p);
            });
        if spawned.is_err() {
            // No thread to wait on: the exit still goes out, order aside.
            self.send_exit(c, p);
        }
    }

    fn send_exit(&self, c: &Container, p: &Proc) {
        // Called once the exit is recorded: this returns at once.
        let (status, at) = p.wait_exit();
        let mut e = TaskExit::new();
        e.container_id = c.id.clone();
        e.id = if p.exec_id.is_empty() {
            c.id.clone()
        } else {
            p.exec_id.clone()
        };
        e.pid = p.pid() as u32;
        e.exit_status = status;
        e.exited_at = MessageField::some(timestamp(at));
        self.events.publish("/tasks/exit", &e);
        p.set_published();
    }

    fn watch_oom(self: &Arc<Self>, c: &Container) {
        let Ok(mut w) = c.rt.oom_watcher(&c.id) else {
            return;
        };
        let id = c.id.clone();
        let shim = self.clone();
        let _ = std::thread::Builder::new()
            .name("oom".into())
            .stack_size(256 * 1024)
            .spawn(move || loop {
                match w.wait(None) {
                    Ok(true) => {
                        let mut e = TaskOOM::new();
                        e.container_id = id.clone();
                        shim.events.publish("/tasks/oom", &e);
                    }
                    Ok(false) if w.cgroup_removed() => break,
                    Ok(false) => {}
                    Err(_) => break,
                }
            });
    }
}

/// The Task service; a newtype so the Arc can be handed to ttrpc while the
/// exit callbacks keep their own.
struct Service(Arc<Shim>);

/// The runtime a container's Create asks for: its state root and whether
/// its cgroup is a systemd scope. runc's options (containerd's runc
/// handlers) say so directly; other handler types get containerd's generic
/// `runtimeoptions.v1.Options`, whose TOML text (inline, or in the file it
/// names) carries `SystemdCgroup = true`; and a client that sends nothing
/// (Docker) is known by its systemd-style cgroups path on a systemd host.
fn runtime_for(
    ns: &str,
    options: &MessageField<protobuf::well_known_types::any::Any>,
    bundle: &std::path::Path,
) -> Runtime {
    let mut root = manager::runtime_root(ns);
    let mut systemd = None;
    if let Some(o) = options.as_ref() {
        if o.type_url.ends_with("containerd.runc.v1.Options") {
            if let Ok(opts) = RuncOptions::parse_from_bytes(&o.value) {
                if !opts.root.is_empty() {
                    root = PathBuf::from(opts.root).join(ns);
                }
                systemd = Some(opts.systemd_cgroup);
            }
        } else if o.type_url.ends_with("runtimeoptions.v1.Options") {
            systemd = generic_options_systemd(&o.value);
        }
    }
    let systemd = systemd.unwrap_or_else(|| systemd_style_cgroups_path(bundle));
    Runtime::new(root, systemd)
}

/// `SystemdCgroup` from containerd's `runtimeoptions.v1.Options`: field 2
/// is a config file's path, field 3 the TOML text itself.
fn generic_options_systemd(msg: &[u8]) -> Option<bool> {
    let (mut path, mut body) = (None, None);
    let mut i = 0;
    let varint = |i: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *msg.get(*i)?;
            *i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    while i < msg.len() {
        let key = varint(&mut i)?;
        match key & 7 {
            0 => {
                varint(&mut i)?;
            }
            2 => {
                let len = varint(&mut i)? as usize;
                let bytes = msg.get(i..i.checked_add(len)?)?;
                i += len;
                let text = String::from_utf8_lossy(bytes).into_owned();
                match key >> 3 {
                    2 => path = Some(text),
                    3 => body = Some(text),
                    _ => {}
                }
            }
            _ => return None,
        }
    }
    let toml = match (
        body.filter(|b| !b.is_empty()),
        path.filter(|p| !p.is_empty()),
    ) {
        (Some(b), _) => b,
        (None, Some(p)) => std::fs::read_to_string(p).ok()?,
        (None, None) => return None,
    };
    toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "SystemdCgroup").then(|| v.trim() == "true")
    })
}

/// A cgroups path like `system.slice:docker:ID` or
/// `kubepods-besteffort.slice:cri-containerd:ID` on a host run by systemd:
/// the client means a systemd scope (as kata does, since Docker sends no
/// options at all).
fn systemd_style_cgroups_path(bundle: &std::path::Path) -> bool {
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        return false;
    }
    let Ok(data) = std::fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return false;
    };
    v.pointer("/linux/cgroupsPath")
        .and_then(|p| p.as_str())
        .is_some_and(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            parts.len() == 3 && parts[0].ends_with(".slice") && !parts[0].contains('/')
        })
}

impl Task for Service {
    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> RpcResult<CreateTaskResponse> {
        let shim = &self.0;
        if !req.checkpoint.is_empty() {
            return Err(rpc_err(
                Code::UNIMPLEMENTED,
                "berth cannot restore checkpoints",
            ));
        }
        if lock(&shim.containers).contains_key(&req.id) {
            return Err(rpc_err(
                Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let rt = Arc::new(runtime_for(&shim.namespace, &req.options, &bundle));
        let rootfs_path = bundle.join("rootfs");
        rootfs::mount_all(&req.rootfs, &rootfs_path)
            .map_err(|e| rpc_err(Code::INVALID_ARGUMENT, e))?;
        let mounted = !req.rootfs.is_empty();
        let undo_mount = || {
            if mounted {
                rootfs::unmount(&rootfs_path);
            }
        };
        let sio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let (pio, pending) = stdio::prepare(&sio, &req.id, &shim.namespace).map_err(|e| {
            undo_mount();
            rpc_err(Code::INVALID_ARGUMENT, format!("stdio: {e}"))
        })?;
        let opts = CreateOptions {
            id: req.id.clone(),
            bundle: bundle.clone(),
            ..Default::default()
        };
        let init = Arc::new(Proc::new("", sio));
        // `delete` after a lost shim must find the state where it is.
        let _ = std::fs::write(
            bundle.join(manager::ROOT_FILE),
            rt.store.root.as_os_str().as_encoded_bytes(),
        );
        let g = lock(&init.order);
        let created = match rt.create_with_io(&opts, pio) {
            Ok(c) => c,
            Err(e) => {
                drop(g);
                undo_mount();
                return Err(berth_err(e));
            }
        };
        let pid = created.pid;
        lock(&init.st).pid = pid;
        match pending.finish() {
            Ok(io) => *lock(&init.io) = Some(Arc::new(io)),
            Err(e) => {
                let _ = rt.delete(&req.id, true);
                reaper::watch(pid, |_| {});
                drop(g);
                undo_mount();
                return Err(rpc_err(Code::UNKNOWN, e));
            }
        }
        let c = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            rootfs_mounted: mounted,
            rt: rt.clone(),
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            own_pid_ns: created.own_pid_ns,
        });
        let (s2, c2, p2) = (shim.clone(), c.clone(), init.clone());
        reaper::watch(pid, move |code| s2.on_exit(&c2, &p2, code));
        lock(&shim.containers).insert(req.id.clone(), c.clone());
        let mut e = TaskCreate::new();
        e.container_id = req.id.clone();
        e.bundle = req.bundle.clone();
        e.rootfs = req.rootfs.clone();
        let mut tio = TaskIO::new();
        tio.stdin = req.stdin.clone();
        tio.stdout = req.stdout.clone();
        tio.stderr = req.stderr.clone();
        tio.terminal = req.terminal;
        e.io = MessageField::some(tio);
        e.pid = pid as u32;
        shim.events.publish("/tasks/create", &e);
        drop(g);
        shim.watch_oom(&c);
        let mut resp = CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> RpcResult<StartResponse> {
        let shim = &self.0;
        let (c, p) = shim.process(&req.id, &req.exec_id)?;
        let mut resp = StartResponse::new();
        if req.exec_id.is_empty() {
            let g = lock(&p.order);
            c.rt.start(&c.id).map_err(berth_err)?;
            {
                let mut st = lock(&p.st);
                if st.status == PStatus::Created {
                    st.status = PStatus::Running;
                }
                resp.pid = st.pid as u32;
            }
            let mut e = TaskStart::new();
            e.container_id = c.id.clone();
            e.pid = resp.pid;
            shim.events.publish("/tasks/start", &e);
            drop(g);
            return Ok(resp);
        }
        // Taken before the check: two Starts, or a Start and a Delete, of
        // one exec are serialised here.
        let g = lock(&p.order);
        if lock(&p.st).status != PStatus::Created {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("process {} was already started or deleted", p.exec_id),
            ));
        }
        let spec = p.spec.clone().expect("exec processes have a spec");
        let (pio, pending) = match stdio::prepare(&p.stdio, &c.id, &shim.namespace) {
            Ok(x) => x,
            Err(e) => {
                p.abandon(255);
                return Err(rpc_err(Code::INVALID_ARGUMENT, format!("stdio: {e}")));
            }
        };
        let o = ExecOptions {
            cgroup: Vec::new(),
            id: c.id.clone(),
            process: spec,
            console_socket: None,
            pid_file: None,
            detach: true,
            preserve_fds: 0,
            ignore_paused: false,
        };
        let pid = match c.rt.exec_with_io(&o, pio) {
            Ok(pid) => pid,
            Err(e) => {
                // Its Wait must not hang for ever.
                p.abandon(255);
                return Err(berth_err(e));
            }
        };
        {
            let mut st = lock(&p.st);
            st.pid = pid;
            st.status = PStatus::Running;
        }
        let (s2, c2, p2) = (shim.clone(), c.clone(), p.clone());
        match pending.finish() {
            Ok(io) => *lock(&p.io) = Some(Arc::new(io)),
            Err(e) => berth::logging::warn(&format!("exec {}: {e}", p.exec_id)),
        }
        reaper::watch(pid, move |code| s2.on_exit(&c2, &p2, code));
        let mut e = TaskExecStarted::new();
        e.container_id = c.id.clone();
        e.exec_id = p.exec_id.clone();
        e.pid = pid as u32;
        shim.events.publish("/tasks/exec-started", &e);
        drop(g);
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> RpcResult<DeleteResponse> {
        let shim = &self.0;
        let (c, p) = shim.process(&req.id, &req.exec_id)?;
        let mut resp = DeleteResponse::new();
        if !req.exec_id.is_empty() {
            // Not while a Start of it is under way.
            let _order = lock(&p.order);
            let status = lock(&p.st).status;
            if status == PStatus::Running {
                return Err(rpc_err(
                    Code::FAILED_PRECONDITION,
                    format!("process {} is still running", p.exec_id),
                ));
            }
            p.abandon(255);
            lock(&c.execs).remove(&req.exec_id);
            if let Some(io) = p.io() {
                io.close();
            }
            let st = lock(&p.st);
            resp.pid = st.pid as u32;
            resp.exit_status = st.exit_status;
            resp.exited_at =
                MessageField::some(timestamp(st.exited_at.unwrap_or_else(SystemTime::now)));
            return Ok(resp);
        }
        if lock(&p.st).status == PStatus::Running {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("container {} must be stopped before it is deleted", c.id),
            ));
        }
        if let Err(e) = c.rt.delete(&c.id, true) {
            if !matches!(e, berth::Error::NotFound(_)) {
                return Err(berth_err(e));
            }
        }
        // A container deleted before it started was killed just now; its
        // TaskExit goes before TaskDelete.
        let Some((status, at)) = p.wait_for(true, Some(Duration::from_secs(10))) else {
            return Err(rpc_err(
                Code::DEADLINE_EXCEEDED,
                format!("container {}: its init's exit was not seen", c.id),
            ));
        };
        if c.rootfs_mounted {
            rootfs::unmount(&c.bundle.join("rootfs"));
        }
        if let Some(io) = p.io() {
            io.close();
        }
        lock(&shim.containers).remove(&c.id);
        resp.pid = p.pid() as u32;
        resp.exit_status = status;
        resp.exited_at = MessageField::some(timestamp(at));
        let mut e = TaskDelete::new();
        e.container_id = c.id.clone();
        e.id = c.id.clone();
        e.pid = resp.pid;
        e.exit_status = status;
        e.exited_at = resp.exited_at.clone();
        shim.events.publish("/tasks/delete", &e);
        Ok(resp)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> RpcResult<PidsResponse> {
        let c = self.0.container(&req.id)?;
        let pids = c.rt.pids(&c.id).map_err(berth_err)?;
        let execs: HashMap<i32, String> = lock(&c.execs)
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let mut resp = PidsResponse::new();
        for pid in pids {
            let mut pi = ProcessInfo::new();
            pi.pid = pid as u32;
            if let Some(exec_id) = execs.get(&pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = exec_id.clone();
                pi.info = MessageField::some(any("containerd.runc.v1", &d));
            }
            resp.processes.push(pi);
        }
        Ok(resp)
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> RpcResult<Empty> {
        let c = self.0.container(&req.id)?;
        c.rt.pause(&c.id).map_err(berth_err)?;
        let mut e = TaskPaused::new();
        e.container_id = c.id.clone();
        self.0.events.publish("/tasks/paused", &e);
        Ok(Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> RpcResult<Empty> {
        let c = self.0.container(&req.id)?;
        c.rt.resume(&c.id).map_err(berth_err)?;
        let mut e = TaskResumed::new();
        e.container_id = c.id.clone();
        self.0.events.publish("/tasks/resumed", &e);
        Ok(Empty::new())
    }

    fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> RpcResult<Empty> {
        Err(rpc_err(
            Code::UNIMPLEMENTED,
            "berth does not checkpoint containers",
        ))
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> RpcResult<Empty> {
        let (c, p) = self.0.process(&req.id, &req.exec_id)?;
        let sig = req.signal as i32;
        let finished = || rpc_err(Code::NOT_FOUND, "process already finished");
        if !req.exec_id.is_empty() {
            // Under the marks lock a process is either alive or already
            // marked exited: its pid cannot have been reaped and reused
            // unseen.
            let _m = reaper::marks();
            if p.stopped() || lock(&p.st).status == PStatus::Created {
                return Err(finished());
            }
            let fd = berth::sys::pidfd_open(p.pid()).map_err(|_| finished())?;
            berth::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig)
                .map_err(|e| rpc_err(Code::UNKNOWN, e))?;
            return Ok(Empty::new());
        }
        if p.stopped() && !req.all {
            return Err(finished());
        }
        match c.rt.kill(&c.id, sig, req.all) {
            Ok(()) => Ok(Empty::new()),
            Err(berth::Error::State(_)) => Err(finished()),
            Err(e) => Err(berth_err(e)),
        }
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> RpcResult<Empty> {
        let c = self.0.container(&req.id)?;
        if c.init.stopped() {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("container {} is stopped", c.id),
            ));
        }
        let value = req.spec.as_ref().map(|a| a.value.as_slice()).unwrap_or(b"");
        let spec: oci_spec::runtime::Process = serde_json::from_slice(value)
            .map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("exec spec: {e}")))?;
        let mut execs = lock(&c.execs);
        if execs.contains_key(&req.exec_id) {
            return Err(rpc_err(
                Code::ALREADY_EXISTS,
                format!("process {} already exists", req.exec_id),
            ));
        }
        let mut p = Proc::new(
            &req.exec_id,
            Stdio {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        p.spec = Some(spec);
        execs.insert(req.exec_id.clone(), Arc::new(p));
        drop(execs);
        let mut e = TaskExecAdded::new();
        e.container_id = c.id.clone();
        e.exec_id = req.exec_id.clone();
        self.0.events.publish("/tasks/exec-added", &e);
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> RpcResult<Empty> {
        let (_, p) = self.0.process(&req.id, &req.exec_id)?;
        let io = p
            .io()
            .ok_or_else(|| rpc_err(Code::FAILED_PRECONDITION, "the process has not started"))?;
        io.resize(req.width, req.height)
            .map_err(|e| rpc_err(Code::FAILED_PRECONDITION, e))?;
        Ok(Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> RpcResult<Empty> {
        let (_, p) = self.0.process(&req.id, &req.exec_id)?;
        if req.stdin {
            if let Some(io) = p.io() {
                io.close_stdin();
            }
        }
        Ok(Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> RpcResult<Empty> {
        let c = self.0.container(&req.id)?;
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or(b"{}");
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(value)
            .map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("resources: {e}")))?;
        c.rt.update(&c.id, &res).map_err(berth_err)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> RpcResult<WaitResponse> {
        let (_, p) = self.0.process(&req.id, &req.exec_id)?;
        let (status, at) = p.wait_exit();
        let mut resp = WaitResponse::new();
        resp.exit_status = status;
        resp.exited_at = MessageField::some(timestamp(at));
        Ok(resp)
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> RpcResult<StatsResponse> {
        let c = self.0.container(&req.id)?;
        let s = c.rt.stats(&c.id).map_err(berth_err)?;
        let mut resp = StatsResponse::new();
        resp.stats = MessageField::some(metrics::to_any(&s, self.0.unified));
        Ok(resp)
    }

    fn state(&self, _: &TtrpcContext, req: StateRequest) -> RpcResult<StateResponse> {
        let (c, p) = self.0.process(&req.id, &req.exec_id)?;
        let mut resp = StateResponse::new();
        let (pid, status, exit_status, exited_at) = {
            let st = lock(&p.st);
            (st.pid, st.status, st.exit_status, st.exited_at)
        };
        resp.id = if req.exec_id.is_empty() {
            c.id.clone()
        } else {
            p.exec_id.clone()
        };
        resp.exec_id = req.exec_id.clone();
        resp.bundle = c.bundle.display().to_string();
        resp.pid = pid as u32;
        resp.status = match status {
            PStatus::Created => Status::CREATED,
            PStatus::Stopped => Status::STOPPED,
            PStatus::Running => {
                let paused =
                    c.rt.state(&c.id)
                        .is_ok_and(|s| s.status == BerthStatus::Paused);
                if paused {
                    Status::PAUSED
                } else {
                    Status::RUNNING
                }
            }
        }
        .into();
        resp.stdin = p.stdio.stdin.clone();
        resp.stdout = p.stdio.stdout.clone();
        resp.stderr = p.stdio.stderr.clone();
        resp.terminal = p.stdio.terminal;
        resp.exit_status = exit_status;
        if let Some(at) = exited_at {
            resp.exited_at = MessageField::some(timestamp(at));
        }
        Ok(resp)
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> RpcResult<ConnectResponse> {
        let mut resp = ConnectResponse::new();
        resp.shim_pid = std::process::id();
        if let Ok(c) = self.0.container(&req.id) {
            resp.task_pid = c.init.pid() as u32;
        }
        resp.version = env!("CARGO_PKG_VERSION").into();
        Ok(resp)
    }

    fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> RpcResult<Empty> {
        if !lock(&self.0.containers).is_empty() {
            return Ok(Empty::new());
        }
        // Exit after this reply is on its way and every event is out.
        let shim = self.0.clone();
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                shim.events.flush(Duration::from_secs(5));
                // SAFETY: signalling ourselves.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
            });
        Ok(Empty::new())
    }
}

/// The daemon `start` launched: serves until Shutdown.
pub fn serve(f: &Flags) -> Result<(), String> {
    // One malloc arena: the shim is mostly idle threads, and an arena per
    // thread costs memory in every pod for no speed that matters here.
    // SAFETY: mallopt before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let set = reaper::block_signals();
    berth::sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
        .map_err(|e| format!("becoming a subreaper: {e}"))?;
    // containerd reads the shim's log from the `log` FIFO in the bundle.
    if let Ok(fd) = berth::sys::open(
        std::path::Path::new("log"),
        libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        0,
    ) {
        // Blocking from here: a full FIFO must slow the log, not lose it.
        // SAFETY: fcntl and dup2 onto stderr of an fd we own.
        unsafe {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            libc::fcntl(raw, libc::F_SETFL, libc::O_WRONLY);
            libc::dup2(raw, 2);
        }
    }
    // No log file: cannot fail.
    let _ = berth::logging::init(None, berth::logging::Format::Text, f.debug);
    let listener = manager::inherited_listener()?;
    // Whatever containerd's environment leaked to us must not reach the
    // loggers and hooks the shim starts.
    berth::sys::cloexec_from(3).map_err(|e| format!("marking fds close-on-exec: {e}"))?;
    let shim = Arc::new(Shim {
        namespace: f.namespace.clone(),
        socket: f.socket.clone(),
        events: Publisher::start(&f.namespace),
        unified: matches!(
            berth_cgroups::detect_layout(),
            Ok(berth_cgroups::Layout::Unified)
        ),
        containers: Mutex::new(HashMap::new()),
    });
    let v3 = containerd_shim_protos::create_task(Arc::new(Service(shim.clone())));
    let v2: HashMap<_, _> = containerd_shim_protos::create_task(Arc::new(Service(shim.clone())))
        .into_iter()
        .map(|(k, v)| (k.replace("/containerd.task.v3.", "/containerd.task.v2."), v))
        .collect();
    let mut server = ttrpc::Server::new()
        .add_listener(listener.into_raw_fd())
        .map_err(|e| format!("ttrpc listener: {e}"))?
        .register_service(v3)
        .register_service(v2)
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        // The maximum counts idle workers only (a blocked Wait is busy):
        // a burst of calls leaves at most this many threads behind.
        .set_thread_count_max(3);
    server.start().map_err(|e| format!("ttrpc server: {e}"))?;
    reaper::run(&set);
    if !shim.socket.is_empty() {
        let _ = std::fs::remove_file(&shim.socket);
    }
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn systemd_cgroup_is_read_from_containerds_generic_options() {
        // Field 3 (the TOML body), as containerd's CRI sends it.
        let msg = |body: &[u8]| {
            let mut m = vec![0x1a, body.len() as u8];
            m.extend_from_slice(body);
            m
        };
        assert_eq!(
            super::generic_options_systemd(&msg(b"SystemdCgroup = true\n")),
            Some(true)
        );
        assert_eq!(
            super::generic_options_systemd(&msg(b"BinaryName = \"x\"\nSystemdCgroup = false\n")),
            Some(false)
        );
        assert_eq!(super::generic_options_systemd(&msg(b"")), None);
        assert_eq!(super::generic_options_systemd(&[]), None);
    }
}
