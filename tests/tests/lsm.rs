//! AppArmor and SELinux. On this host (neither LSM) a profile or label is
//! refused clearly and leaves nothing behind; the #[ignore]d tests run in
//! QEMU guests that have them (hack/lsm-guest.sh), which load the test
//! profile `berth-test` (denying writes under /denied) or SELinux's
//! reference policy first, and set BERTH_TEST_LSM.

mod common;

use common::*;
use serde_json::json;

const LABEL: &str = "system_u:system_r:unconfined_t:s0:c1,c2";
const MOUNT_LABEL: &str = "system_u:object_r:tmpfs_t:s0:c1,c2";

fn lsm_is(name: &str) -> bool {
    std::env::var("BERTH_TEST_LSM").is_ok_and(|v| v == name)
}

#[test]
fn a_profile_or_label_on_a_host_without_the_lsm_is_refused_by_name() {
    if std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists()
        || std::path::Path::new("/sys/fs/selinux/enforce").exists()
    {
        return; // a host with an LSM: the guest tests cover it
    }
    for (field, set) in [
        (
            "process.apparmorProfile",
            json!({"apparmorProfile": "docker-default"}),
        ),
        ("process.selinuxLabel", json!({"selinuxLabel": LABEL})),
    ] {
        let mut b = Bundle::new("nolsm");
        for (k, v) in set.as_object().unwrap() {
            b.config["process"][k] = v.clone();
        }
        let (id, out) = b.create("p");
        assert!(!out.status.success(), "{field} accepted");
        let e = stderr(&out);
        assert!(e.contains(field) && e.contains("not enabled"), "{e}");
        assert_nothing_left(&b, &id);
    }
    let mut b = Bundle::new("nolsm-mount");
    b.config["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    let (id, out) = b.create("m");
    assert!(
        stderr(&out).contains("linux.mountLabel"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&b, &id);

    // "unconfined" asks for nothing: it runs.
    let mut b = Bundle::new("unconfined");
    b.config["process"]["apparmorProfile"] = json!("unconfined");
    b.args(&["/probe", "echo", "ran"]);
    let (code, out, err) = b.run("u");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ran");

    // features says berth supports both.
    let out = b.cmd(&["features"]);
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["apparmor"]["enabled"], true);
    assert_eq!(f["linux"]["selinux"]["enabled"], true);
}

fn inside(b: &mut Bundle, script: &str) -> String {
    b.args(&["/bin/sh", "-c", script]);
    let (code, out, err) = b.run("in");
    assert_eq!(code, 0, "{err}\n{out}");
    out
}

#[test]
#[ignore = "needs AppArmor: hack/lsm-guest.sh"]
fn apparmor_profile_confines_the_process_and_exec() {
    assert!(lsm_is("apparmor"), "run by hack/lsm-guest.sh");
    let mut b = Bundle::new("aa");
    b.config["root"]["readonly"] = json!(false);
    std::fs::create_dir_all(b.rootfs().join("denied")).unwrap();
    b.config["process"]["apparmorProfile"] = json!("berth-test");
    let out = inside(
        &mut b,
        "cat /proc/self/attr/current; echo; \
         touch /tmp/ok && echo allowed; touch /denied/x 2>/dev/null || echo denied",
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        ["berth-test (enforce)", "allowed", "denied"],
        "{out}"
    );

    // exec gets the container's profile, or the one --apparmor names.
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("e");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let out = b.cmd(&["exec", &id, "/bin/cat", "/proc/self/attr/current"]);
    assert!(
        stdout(&out).starts_with("berth-test (enforce)"),
        "{}",
        stderr(&out)
    );
    let out = b.cmd(&[
        "exec",
        "--apparmor",
        "unconfined",
        &id,
        "/bin/cat",
        "/proc/self/attr/current",
    ]);
    assert!(stdout(&out).starts_with("unconfined"), "{}", stderr(&out));
    assert!(b.cmd(&["delete", "--force", &id]).status.success());

    // A profile that is not loaded: named, nothing left.
    b.config["process"]["apparmorProfile"] = json!("berth-no-such-profile");
    let (id, out) = b.create("n");
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("process.apparmorProfile") && e.contains("berth-no-such-profile"),
        "{e}"
    );
    assert_nothing_left(&b, &id);
}

#[test]
#[ignore = "needs SELinux: hack/lsm-guest.sh"]
fn selinux_labels_the_process_and_its_mounts() {
    assert!(lsm_is("selinux"), "run by hack/lsm-guest.sh");
    let mut b = Bundle::new("se");
    b.config["process"]["selinuxLabel"] = json!(LABEL);
    b.config["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    let out = inside(
        &mut b,
        "cat /proc/self/attr/current; echo; grep -E ' /dev/shm | /dev ' /proc/self/mountinfo",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap().trim_end_matches('\0'), LABEL, "{out}");
    let rest: Vec<&str> = lines.collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("/dev/shm") && l.contains("context=")),
        "{out}"
    );

    // exec: the container's label, or --process-label's.
    b.args(&["/probe", "sleep", "600"]);
    let (id, out) = b.create("e");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.cmd(&["start", &id]).status.success());
    let other = "system_u:system_r:unconfined_t:s0:c3,c4";
    let out = b.cmd(&[
        "exec",
        "--process-label",
        other,
        &id,
        "/bin/cat",
        "/proc/self/attr/current",
    ]);
    assert_eq!(
        stdout(&out).trim_end_matches('\0'),
        other,
        "{}",
        stderr(&out)
    );
    assert!(b.cmd(&["delete", "--force", &id]).status.success());

    // An invalid label: named, nothing left.
    b.config["process"]["selinuxLabel"] = json!("system_u:system_r:no_such_t:s0");
    let (id, out) = b.create("bad");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("process.selinuxLabel"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&b, &id);
}
