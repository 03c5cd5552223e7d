//! Mount options clients pass, checked from inside the container.

mod common;

use std::ffi::CString;
use std::os::unix::fs::{symlink, PermissionsExt};

use common::*;
use serde_json::{json, Value};

/// Runs the probe's `stat` on `paths` inside the container.
fn stat_inside(b: &mut Bundle, paths: &[&str]) -> Value {
    let mut args = vec!["/probe", "stat"];
    args.extend_from_slice(paths);
    b.args(&args);
    let (code, out, err) = b.run("stat");
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).unwrap()
}

fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of its length.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_the_directory_it_covers() {
    let mut b = Bundle::new("copyup");
    let data = b.rootfs().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a"), "alpha").unwrap();
    std::fs::set_permissions(data.join("a"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(data.join("a"), Some(1000), Some(1001)).unwrap();
    std::fs::write(data.join("sub/b"), "beta").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    set_xattr(&data.join("sub/b"), "user.berth", b"kept");
    // Absolute and relative links are copied as links, never followed.
    symlink("/etc/passwd", data.join("abs")).unwrap();
    symlink("../../../../../../etc/shadow", data.join("rel")).unwrap();
    let fifo = CString::new(data.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "tmpcopyup", "ro"]
    }));
    b.config["root"]["readonly"] = json!(true);
    let s = stat_inside(
        &mut b,
        &[
            "/data",
            "/data/a",
            "/data/sub/b",
            "/data/abs",
            "/data/rel",
            "/data/fifo",
        ],
    );
    assert_eq!(s["/data"]["perm"], 0o750);
    assert_eq!(s["/data/a"]["perm"], 0o640);
    assert_eq!(s["/data/a"]["uid"], 1000);
    assert_eq!(s["/data/a"]["gid"], 1001);
    assert_eq!(s["/data/a"]["size"], 5);
    assert_eq!(s["/data/sub/b"]["size"], 4);
    assert_eq!(s["/data/abs"]["link"], "/etc/passwd");
    assert_eq!(s["/data/rel"]["link"], "../../../../../../etc/shadow");
    assert_eq!(s["/data/fifo"]["kind"], "fifo");

    // It is a tmpfs, read-only as asked, and the xattr came along.
    b.args(&["/probe", "report"]);
    let r = b.report();
    let m = mount(&r, "/data").expect("no /data mount");
    assert_eq!(m["fstype"], "tmpfs", "{m}");
    assert!(has_opt(m, "ro"), "{m}");
    b.args(&["/probe", "xattr", "/data/sub/b", "user.berth"]);
    let (code, out, err) = b.run("xattr");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "kept");
}

#[test]
fn tmpcopyup_is_refused_where_it_cannot_apply() {
    let mut b = Bundle::new("copyupbad");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": "/tmp",
        "options": ["rbind", "tmpcopyup"]
    }));
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(
        err.contains("mounts[") && err.contains("tmpcopyup"),
        "{err}"
    );
    let id = b.ids.last().unwrap().clone();
    assert_nothing_left(&b, &id);
}

#[test]
fn idmapped_bind_mounts_keep_file_owners_as_the_container_sees_them() {
    let mut b = Bundle::new("idmap");
    with_userns(&mut b);
    let vol = b.dir.join("vol");
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    std::fs::write(vol.join("f"), "root's").unwrap();
    std::fs::write(vol.join("g"), "user's").unwrap();
    std::os::unix::fs::chown(vol.join("g"), Some(1000), Some(1000)).unwrap();
    // A mount under the source, for ridmap's recursion.
    let sub = vol.join("sub");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(sub.join("h"), "nested").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts
        .push(json!({"destination": "/plain", "type": "bind", "source": vol, "options": ["bind"]}));
    mounts.push(
        json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["bind", "idmap"]}),
    );
    mounts.push(json!({"destination": "/ridm", "type": "bind", "source": vol, "options": ["rbind", "ridmap"]}));
    // Mappings of its own (the same as the container's here).
    mounts.push(
        json!({"destination": "/own", "type": "bind", "source": vol, "options": ["bind"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}),
    );
    b.args(&[
        "/probe",
        "stat",
        "/plain/f",
        "/idm/f",
        "/idm/g",
        "/ridm/sub/h",
        "/own/f",
    ]);
    let (code, out, err) = b.run("i");
    let _ = std::process::Command::new("umount").arg(&sub).status();
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["/plain/f"]["uid"], 65534, "unmapped without idmap: {s}");
    assert_eq!(s["/idm/f"]["uid"], 0, "{s}");
    assert_eq!(s["/idm/g"]["uid"], 1000, "{s}");
    assert_eq!(s["/ridm/sub/h"]["uid"], 0, "{s}");
    assert_eq!(s["/own/f"]["uid"], 0, "{s}");

    // features says so.
    let out = b.cmd(&["features"]);
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
}

#[test]
fn idmap_without_mappings_or_on_a_non_bind_mount_is_refused() {
    let mut b = Bundle::new("idmapbad");
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}),
    );
    let (id, out) = b.create("n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("uidMappings"), "{}", stderr(&out));
    assert_nothing_left(&b, &id);
    let mut b = Bundle::new("idmaptmpfs");
    with_userns(&mut b);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
    );
    let (id, out) = b.create("t");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bind mounts only"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&b, &id);
}
