//! containerd-shim-berth-v2 driven directly over ttrpc, without containerd:
//! what containerd cannot easily show, such as hooks (which come only from
//! config.json) in one container of a shim while another one exits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use containerd_shim_protos::shim::oci::Options;
use containerd_shim_protos::shim::shim::{
    CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, WaitRequest,
};
use containerd_shim_protos::TaskClient;
use protobuf::Message;
use serde_json::json;

fn shim_bin() -> PathBuf {
    berth_bin().with_file_name("containerd-shim-berth-v2")
}

/// Starts a shim daemon the way containerd does (`start` in the bundle)
/// and connects to it.
fn start_shim(b: &Bundle, id: &str) -> TaskClient {
    let out = Command::new(shim_bin())
        .args(["-namespace", "t", "-id", id, "-address"])
        .arg(b.dir.join("no-containerd.sock"))
        .arg("start")
        .current_dir(&b.dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "shim start failed");
    let addr = String::from_utf8(out.stdout).unwrap();
    let client = ttrpc::Client::connect(addr.trim()).expect("connect to the shim");
    TaskClient::new(client)
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(0)
}

fn create(c: &TaskClient, b: &Bundle, id: &str, state: &Path) {
    let mut o = Options::new();
    o.root = state.display().to_string();
    let mut any = protobuf::well_known_types::any::Any::new();
    any.type_url = "containerd.runc.v1.Options".into();
    any.value = o.write_to_bytes().unwrap();
    let mut req = CreateTaskRequest::new();
    req.id = id.into();
    req.bundle = b.dir.display().to_string();
    req.stdout = format!("file://{}", b.dir.join("out.log").display());
    req.stderr = req.stdout.clone();
    req.options = protobuf::MessageField::some(any);
    c.create(ctx(), &req).expect("Create");
}

fn start(c: &TaskClient, id: &str) {
    let mut req = StartRequest::new();
    req.id = id.into();
    c.start(ctx(), &req).expect("Start");
}

#[test]
fn a_slow_hook_in_one_container_does_not_hold_up_anothers_exit() {
    let mut a = Bundle::new("shim-a");
    let mut b = Bundle::new("shim-b");
    let state = a.dir.join("shim-state");
    // A's poststart hook keeps A's Start call busy for a while.
    a.config["hooks"] = json!({"poststart": [{"path": "/bin/sleep", "args": ["sleep", "3"]}]});
    a.args(&["/bin/sleep", "60"]);
    a.write_config();
    b.args(&["/bin/sh", "-c", "exit 7"]);
    b.write_config();
    let (ida, idb) = (a.id("a"), b.id("b"));
    let client = start_shim(&a, &ida);
    create(&client, &a, &ida, &state);
    create(&client, &b, &idb, &state);

    let a_started = Arc::new(AtomicBool::new(false));
    let starter = {
        let (client, ida, done) = (client.clone(), ida.clone(), a_started.clone());
        std::thread::spawn(move || {
            start(&client, &ida);
            done.store(true, Ordering::SeqCst);
        })
    };
    // A's Start is inside its hook (it cannot be done before the hook's
    // three seconds); B is started and its exit must come back meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(300));
    start(&client, &idb);
    let mut w = WaitRequest::new();
    w.id = idb.clone();
    let exit = client.wait(ctx(), &w).expect("Wait");
    assert_eq!(exit.exit_status, 7);
    assert!(
        !a_started.load(Ordering::SeqCst),
        "B's exit was only reported after A's poststart hook finished"
    );
    starter.join().unwrap();

    for id in [&idb, &ida] {
        let mut k = containerd_shim_protos::shim::shim::KillRequest::new();
        k.id = id.to_string();
        k.signal = 9;
        let _ = client.kill(ctx(), &k);
        let mut w = WaitRequest::new();
        w.id = id.to_string();
        client.wait(ctx(), &w).expect("Wait");
        let mut d = DeleteRequest::new();
        d.id = id.to_string();
        client.delete(ctx(), &d).expect("Delete");
    }
    let mut s = ShutdownRequest::new();
    s.id = ida.clone();
    let _ = client.shutdown(ctx(), &s);
    a.ids.clear();
    b.ids.clear();
}
