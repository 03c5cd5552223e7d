//! Bad input: one clear line naming the field, exit status 1, nothing left.

mod common;

use common::*;
use serde_json::json;

fn create_fails(b: &mut Bundle, name: &str, expect: &[&str]) {
    let (id, out) = b.create(name);
    assert_eq!(out.status.code(), Some(1), "create {name} succeeded");
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "more than one line: {e}");
    for x in expect {
        assert!(e.contains(x), "{name}: {e:?} does not mention {x:?}");
    }
    assert_nothing_left(b, &id);
}

#[test]
fn invalid_json_reports_line_and_column() {
    let mut b = Bundle::new("json");
    let id = b.id("j");
    std::fs::write(
        b.dir.join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {,\n}",
    )
    .unwrap();
    let out = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("config.json") && e.contains("line 3") && e.contains("column"),
        "{e}"
    );
    assert_nothing_left(&b, &id);
}

#[test]
fn unsupported_oci_version() {
    let mut b = Bundle::new("ver");
    b.config["ociVersion"] = json!("2.0.0");
    create_fails(&mut b, "v", &["ociVersion", "2.0.0"]);
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::new("noroot");
    b.config["root"]["path"] = json!("does-not-exist");
    create_fails(&mut b, "r", &["root.path", "does-not-exist"]);
}

#[test]
fn unknown_namespace_type() {
    let mut b = Bundle::new("nstype");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    create_fails(&mut b, "n", &["linux.namespaces", "bogus"]);
}

#[test]
fn invalid_mounts() {
    let mut b = Bundle::new("mnt");
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}));
    create_fails(&mut b, "src", &["mounts[7].source", "/no/such/source"]);

    let mut b = Bundle::new("mnt2");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    create_fails(&mut b, "fs", &["mounts[7]", "nosuchfs"]);

    let mut b = Bundle::new("mnt3");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x/../../etc", "type": "tmpfs", "source": "tmpfs"}));
    create_fails(&mut b, "dotdot", &["mounts[7].destination"]);
}

#[test]
fn missing_executable_is_named() {
    let mut b = Bundle::new("noexe");
    b.args(&["/no/such/program", "arg"]);
    create_fails(&mut b, "abs", &["/no/such/program"]);
    b.args(&["nosuchprogram"]);
    create_fails(&mut b, "path", &["nosuchprogram", "$PATH"]);
    b.args(&[]);
    create_fails(&mut b, "empty", &["process.args"]);
}

#[test]
fn invalid_ids_are_refused() {
    let b = Bundle::new("ids");
    for id in ["", "a/b", "..", "x..y"] {
        let out = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert_eq!(out.status.code(), Some(1), "{id:?}");
        assert!(
            stderr(&out).contains("invalid container id"),
            "{id:?}: {}",
            stderr(&out)
        );
    }
    assert!(!b.root.exists() || std::fs::read_dir(&b.root).unwrap().next().is_none());
}

#[test]
fn bad_field_values_are_named() {
    let mut b = Bundle::new("fields");
    b.config["process"]["cwd"] = json!("relative");
    create_fails(&mut b, "cwd", &["process.cwd"]);

    let mut b = Bundle::new("rlim");
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
    create_fails(&mut b, "rlimit", &["process.rlimits[0]"]);

    let mut b = Bundle::new("sysctl");
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    create_fails(&mut b, "sysctl", &["linux.sysctl.vm.swappiness"]);

    let mut b = Bundle::new("userns");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    create_fails(&mut b, "maps", &["linux.uidMappings"]);

    let mut b = Bundle::new("nopath");
    b.config["linux"]["namespaces"].as_array_mut().unwrap()[0]["path"] =
        json!("/proc/999999/ns/pid");
    create_fails(&mut b, "nspath", &["linux.namespaces[0].path"]);

    let mut b = Bundle::new("hook");
    b.config["hooks"] = json!({"prestart": [{"path": "/no/hook"}]});
    create_fails(&mut b, "hook", &["hooks.prestart[0].path"]);

    let mut b = Bundle::new("tty");
    b.config["process"]["terminal"] = json!(true);
    create_fails(&mut b, "tty", &["process.terminal", "--console-socket"]);

    // A cwd that exists as a file cannot be entered.
    let mut b = Bundle::new("cwdfile");
    b.config["process"]["cwd"] = json!("/probe/sub");
    create_fails(&mut b, "cwd2", &["process.cwd", "/probe/sub"]);
}

#[test]
fn systemd_cgroup_is_refused_without_systemd() {
    let mut b = Bundle::new("systemd");
    let id = b.id("s");
    b.write_config();
    let out = b.cmd(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("systemd"), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
}

#[test]
fn host_namespaces_and_missing_lsm_support_are_refused() {
    let mut b = Bundle::new("hostnet");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(format!("/proc/{}/ns/net", std::process::id()));
        }
    }
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    create_fails(
        &mut b,
        "sysctl",
        &["linux.sysctl.net.ipv4.ip_forward", "host"],
    );

    let mut b = Bundle::new("apparmor");
    b.config["process"]["apparmorProfile"] = json!("docker-default");
    create_fails(&mut b, "aa", &["process.apparmorProfile"]);
    let mut b = Bundle::new("selinux");
    b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    create_fails(&mut b, "se", &["linux.mountLabel"]);
}
