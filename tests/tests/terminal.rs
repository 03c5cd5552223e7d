//! Terminals, pid files and the other create flags.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn console_socket_receives_the_pty_master() {
    let mut b = Bundle::new("tty");
    let sock = b.dir.join("console.sock");
    let receiver = console_socket(&sock);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    b.args(&[
        "/bin/sh",
        "-c",
        "/probe setsid-tty; /probe stat /dev/console",
    ]);
    let id = b.id("t");
    b.write_config();
    let out = b.detached(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (name, master) = receiver.join().unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    assert!(b.cmd(&["start", &id]).status.success());
    let text = read_master(master).replace('\r', "");
    let mut lines = text.lines();
    let tty: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(tty["isatty"], true, "{tty}");
    assert_eq!(
        (tty["rows"].as_u64(), tty["cols"].as_u64()),
        (Some(33), Some(101))
    );
    assert_eq!(tty["has_ctty"], true);
    assert!(tty["ttyname"].as_str().unwrap().starts_with("/dev/pts/"));
    let st: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        st["/dev/console"]["kind"], "char",
        "/dev/console is not the pty: {st}"
    );
    assert_eq!(st["/dev/console"]["major"], 136);
}

#[test]
fn run_with_a_terminal_and_no_socket_relays_through_berth() {
    let mut b = Bundle::new("runtty");
    b.config["process"]["terminal"] = json!(true);
    b.args(&["/probe", "setsid-tty"]);
    let (code, out, err) = b.run("r");
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.replace('\r', "").trim()).unwrap();
    assert_eq!(v["isatty"], true);
}

#[test]
fn pid_file_holds_the_init_pid() {
    let mut b = Bundle::new("pidfile");
    b.args(&["/probe", "sleep", "30"]);
    let id = b.id("p");
    b.write_config();
    let pidfile = b.dir.join("init.pid");
    let out = b.detached(&[
        "create",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, b.state(&id)["pid"].as_i64().unwrap());
}

#[test]
fn no_pivot_personality_and_root_propagation() {
    let mut b = Bundle::new("nopivot");
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.config["linux"]["rootfsPropagation"] = json!("rprivate");
    let id = b.id("n");
    b.write_config();
    let out = b.detached(&[
        "run",
        "--no-pivot",
        "--no-new-keyring",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["personality"], 8, "LINUX32 personality not set");
    let root = mount(&r, "/").unwrap();
    assert!(
        root["optional"].as_array().unwrap().is_empty(),
        "rprivate root has propagation: {root}"
    );

    let mut b = Bundle::new("shared");
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    let r = b.report();
    let root = mount(&r, "/").unwrap();
    assert!(
        root["optional"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().starts_with("shared:")),
        "{root}"
    );
}

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
fn session_keyring_of(b: &mut Bundle, extra: &[&str]) -> i64 {
    b.args(&["/probe", "syscall", "250", "0", "-3", "0"]);
    let id = b.id("k");
    b.write_config();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    let dir = b.dir.to_str().unwrap().to_string();
    args.extend_from_slice(&["--bundle", &dir, &id]);
    let out = b.detached(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ret"].as_i64().unwrap()
}

#[test]
fn each_container_gets_its_own_session_keyring_unless_told_not_to() {
    // SAFETY: keyctl with integer arguments.
    let mine = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
    let mut b = Bundle::new("keyring");
    let a = session_keyring_of(&mut b, &[]);
    let c = session_keyring_of(&mut b, &[]);
    assert!(a > 0 && c > 0);
    assert_ne!(a, c, "two containers share a session keyring");
    assert_ne!(a, mine);
    let inherited = session_keyring_of(&mut b, &["--no-new-keyring"]);
    assert_eq!(
        inherited, mine,
        "--no-new-keyring must keep berth's session keyring"
    );
}
