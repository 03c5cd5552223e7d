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
