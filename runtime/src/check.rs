//! `berth check`: what this host gives a container runtime, and what berth
//! will therefore do. Each item is probed, not guessed from a version: the
//! syscalls are called, the files read.

use serde::Serialize;

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Item {
    pub name: &'static str,
    /// "ok", "missing" or "partial".
    pub status: &'static str,
    /// What was found.
    pub detail: String,
    /// What it means for containers.
    pub consequence: String,
    /// berth cannot work without it.
    pub required: bool,
}

fn item(
    name: &'static str,
    ok: bool,
    detail: impl Into<String>,
    consequence: impl Into<String>,
    required: bool,
) -> Item {
    Item {
        name,
        status: if ok { "ok" } else { "missing" },
        detail: detail.into(),
        consequence: consequence.into(),
        required,
    }
}

/// Whether a syscall exists: called with arguments it must refuse, any
/// answer but ENOSYS says it is there.
fn syscall_exists(nr: libc::c_long, args: [libc::c_long; 5]) -> bool {
    // SAFETY: every probe passes arguments the kernel rejects (bad fds, null
    // pointers with size 0) or that only read.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if r >= 0 {
        // A probe that succeeded returned an fd or 0: close a positive one.
        if r > 2 {
            // SAFETY: closing the fd the probe just opened.
            unsafe { libc::close(r as i32) };
        }
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Every item, probed now.
pub fn run() -> Vec<Item> {
    let mut out = Vec::new();
    let root = c"/".as_ptr() as libc::c_long;

    // Kernel interfaces berth uses unconditionally.
    let how = [0u64; 3];
    out.push(item(
        "openat2",
        syscall_exists(
            libc::SYS_openat2,
            [-100, root, how.as_ptr() as libc::c_long, 24, 0],
        ),
        "openat2(2) (Linux 5.6)",
        "every path inside a container's rootfs is resolved with it (no symlink out of the rootfs)",
        true,
    ));
    out.push(item(
        "mount API",
        syscall_exists(libc::SYS_open_tree, [-1, root, 0, 0, 0])
            && syscall_exists(libc::SYS_move_mount, [-1, 0, -1, 0, 0])
            && syscall_exists(libc::SYS_mount_setattr, [-1, 0, 0, 0, 0]),
        "open_tree, move_mount, mount_setattr (Linux 5.12)",
        "bind mounts are made on file descriptors; recursive mount options and idmapped mounts need mount_setattr",
        true,
    ));
    // Idmapped mounts: mount_setattr with MOUNT_ATTR_IDMAP (5.12); a
    // kernel without it refuses the attribute with EINVAL.
    let idmap = syscall_exists(libc::SYS_mount_setattr, [-1, 0, 0, 0, 0]);
    out.push(item(
        "idmapped mounts",
        idmap,
        "mount_setattr(2) with MOUNT_ATTR_IDMAP (Linux 5.12; the filesystem must support it too)",
        "the idmap and ridmap mount options and mounts' own uid/gid mappings",
        false,
    ));
    out.push(item(
        "pidfd",
        syscall_exists(libc::SYS_pidfd_open, [-1, 0, 0, 0, 0]),
        "pidfd_open(2) (Linux 5.3)",
        "signals reach exactly the container's process; without it berth falls back to kill(2) after checking the pid's start time",
        false,
    ));
    let clone3 = syscall_exists(libc::SYS_clone3, [0, 0, 0, 0, 0]);
    let layout = berth_cgroups::detect_layout();
    let unified = matches!(layout, Ok(berth_cgroups::Layout::Unified));
    out.push(item(
        "clone3 into a cgroup",
        clone3 && unified,
        format!(
            "clone3(2): {}; cgroup v2: {}",
            if clone3 { "yes" } else { "no" },
            if unified { "yes" } else { "no" }
        ),
        "a container's init is born in its cgroup (CLONE_INTO_CGROUP); otherwise it is moved there before it runs anything",
        false,
    ));

    // Namespaces.
    let ns = ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"];
    let have: Vec<&str> = ns
        .iter()
        .copied()
        .filter(|n| std::path::Path::new(&format!("/proc/self/ns/{n}")).exists())
        .collect();
    let missing: Vec<&str> = ns.iter().copied().filter(|n| !have.contains(n)).collect();
    out.push(Item {
        name: "namespaces",
        status: if missing.is_empty() {
            "ok"
        } else if missing.iter().all(|n| matches!(*n, "time" | "cgroup")) {
            "partial"
        } else {
            "missing"
        },
        detail: format!("have: {}", have.join(", ")),
        consequence: if missing.is_empty() {
            "every namespace type of the runtime-spec can be created or joined".into()
        } else {
            format!("configs asking for {} fail", missing.join(", "))
        },
        required: !missing.contains(&"mnt") || !missing.contains(&"pid"),
    });
    let max_userns = read("/proc/sys/user/max_user_namespaces")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let unpriv = read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v == "1");
    out.push(item(
        "user namespaces",
        max_userns > 0,
        format!("max_user_namespaces {max_userns}, unprivileged: {unpriv}"),
        if unpriv {
            "user-namespaced containers, and rootless berth".to_string()
        } else {
            "user-namespaced containers as root only; rootless berth cannot run".to_string()
        },
        false,
    ));
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let user = crate::state::user_name(uid);
    let sub = read("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{user}:")) || l.starts_with(&format!("{uid}:")));
    let helpers = std::path::Path::new("/usr/bin/newuidmap").exists();
    out.push(item(
        "subordinate ids",
        uid == 0 || (sub && helpers),
        if uid == 0 {
            "running as root: not needed".to_string()
        } else {
            format!("/etc/subuid range for {user}: {sub}; newuidmap: {helpers}")
        },
        "rootless containers with more than one mapped id (newuidmap/newgidmap, Debian's uidmap)",
        false,
    ));

    // cgroups.
    let (ok, detail, consequence) = match &layout {
        Ok(berth_cgroups::Layout::Unified) => {
            let ctrls = read("/sys/fs/cgroup/cgroup.subtree_control").unwrap_or_default();
            (
                true,
                format!("cgroup v2 (enabled at the root: {ctrls})"),
                "limits through cgroup v2; the freezer and cgroup.kill for pause and teardown",
            )
        }
        Ok(berth_cgroups::Layout::Hybrid) => (
            true,
            format!(
                "cgroup v1 controllers ({}) with a cgroup2 mount beside them (hybrid)",
                v1_controllers()
            ),
            "limits through the v1 controllers",
        ),
        Ok(berth_cgroups::Layout::Legacy) => (
            true,
            format!("cgroup v1 ({})", v1_controllers()),
            "limits through the v1 controllers",
        ),
        Err(e) => (
            false,
            format!("{e}"),
            "no cgroup can be made: limits, pause and teardown of leftover processes do not work",
        ),
    };
    out.push(item("cgroups", ok, detail, consequence, true));
    if uid != 0 {
        let own = read("/proc/self/cgroup").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(String::from))
        });
        let writable = unified
            && own.as_ref().is_some_and(|p| {
                let dir = format!("/sys/fs/cgroup{p}");
                let c = std::ffi::CString::new(dir).unwrap_or_default();
                // SAFETY: access(2) on a valid C string.
                unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
            });
        out.push(item(
            "delegated cgroup",
            writable,
            format!("own cgroup {}", own.unwrap_or_default()),
            "a rootless container gets no cgroup without one: limits are refused, pause does not work",
            false,
        ));
    }
    out.push(item(
        "systemd",
        std::path::Path::new("/run/systemd/system").is_dir(),
        "PID 1 is systemd",
        "--systemd-cgroup (containerd's SystemdCgroup = true) makes transient scopes over D-Bus",
        false,
    ));

    // Security.
    let actions = read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    out.push(item(
        "seccomp",
        !actions.is_empty(),
        format!(
            "actions: {actions}; filter flags: {}",
            berth_seccomp::supported_flags().join(", ")
        ),
        if actions.contains("user_notif") {
            "seccomp profiles, SCMP_ACT_NOTIFY included"
        } else {
            "seccomp profiles; SCMP_ACT_NOTIFY refused"
        },
        false,
    ));
    out.push(item(
        "AppArmor",
        crate::lsm::apparmor_enabled(),
        "the AppArmor LSM",
        "process.apparmorProfile applied; without it a profile other than unconfined is refused",
        false,
    ));
    out.push(item(
        "SELinux",
        crate::lsm::selinux_enabled(),
        "the SELinux LSM (selinuxfs)",
        "process.selinuxLabel and linux.mountLabel applied; without it a label is refused",
        false,
    ));
    let criu = std::process::Command::new("criu")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        });
    out.push(item(
        "CRIU",
        criu.is_some(),
        criu.unwrap_or_else(|| "criu not found".into()),
        "checkpoint and restore are not implemented by berth yet",
        false,
    ));
    out
}

/// The v1 controllers the kernel has enabled (/proc/cgroups).
fn v1_controllers() -> String {
    read("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as people read it: one line an item.
pub fn render(items: &[Item]) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(&format!(
            "{:<8} {:<22} {}\n{:<31} -> {}\n",
            i.status, i.name, i.detail, "", i.consequence
        ));
    }
    s
}

/// Something berth cannot work without is missing.
pub fn fatal(items: &[Item]) -> bool {
    items.iter().any(|i| i.required && i.status == "missing")
}
