//! Building the container's filesystem view inside its new mount namespace:
//! the rootfs bind, every configured mount, /dev, masked and read-only
//! paths, and finally pivot_root.
//!
//! All of it runs before pivot_root while the host's procfs is still at
//! /proc, so the `/proc/self/fd/N` mount targets go through a procfs the
//! container cannot have tampered with.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Context, Error, Result};
use crate::mounts::{self, Options};
use crate::{safepath, sys};

fn fdpath(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(sys::proc_fd_path(fd.as_raw_fd()))
}

pub struct Rootfs {
    pub path: PathBuf,
    pub fd: OwnedFd,
    /// Bind sources cloned by the parent, by index in `mounts`.
    pub pre_opened: std::collections::HashMap<usize, OwnedFd>,
    /// linux.mountLabel: the SELinux context of the mounts that take one.
    pub mount_label: Option<String>,
    /// Inside a user namespace device nodes cannot be made, so they are
    /// bind-mounted from the host instead (never re-owned on the host).
    pub in_userns: bool,
}

/// Sets the propagation of the host view and bind-mounts the rootfs onto
/// itself so it can be pivoted to.
pub fn prepare(spec: &Spec, rootfs: &Path, in_userns: bool) -> Result<Rootfs> {
    let linux = spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation_flag)
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    // Without this, every mount below would propagate back to the host.
    sys::mount(None, Path::new("/"), None, prop, None)
        .ctx(|| "setting the propagation of / in the container's mount namespace".into())?;
    // pivot_root refuses a shared parent mount, and a shared one would
    // carry the container's mounts back to the host: make it private
    // whatever propagation was asked for (runc does the same).
    make_parent_private(rootfs)?;
    sys::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .ctx(|| format!("bind-mounting the rootfs {}", rootfs.display()))?;
    let fd =
        sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| Error::io(rootfs, e))?;
    Ok(Rootfs {
        path: rootfs.to_path_buf(),
        fd,
        pre_opened: std::collections::HashMap::new(),
        mount_label: linux
            .and_then(|l| l.mount_label().clone())
            .filter(|l| !l.is_empty()),
        in_userns,
    })
}

fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "reading /proc/self/mountinfo".into())?;
    let mut best: Option<PathBuf> = None;
    for line in info.lines() {
        let mp = PathBuf::from(unescape(line.split(' ').nth(4).unwrap_or("")));
        if rootfs.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|b| mp.as_os_str().len() > b.as_os_str().len())
        {
            best = Some(mp);
        }
    }
    if let Some(mp) = best {
        sys::mount(None, &mp, None, libc::MS_PRIVATE, None)
            .ctx(|| format!("making {} private", mp.display()))?;
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Rootfs {
    fn root(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn mount_all(&self, spec: &Spec, bundle: &Path) -> Result<()> {
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            // Every mount error names the mount by index and destination.
            self.mount_one(i, m, bundle).map_err(|e| {
                let msg = match e {
                    Error::Config(m) => m,
                    other => other.to_string(),
                };
                Error::Config(format!(
                    "mounts[{i}] ({} on {}): {msg}",
                    m.typ().as_deref().unwrap_or("bind"),
                    m.destination().display()
                ))
            })?;
        }
        Ok(())
    }

    fn mount_one(&self, i: usize, m: &Mount, bundle: &Path) -> Result<()> {
        let opts =
            mounts::parse(m.options().as_deref().unwrap_or_default()).map_err(Error::Config)?;
        let dest = m.destination();
        // Under /proc and /sys a symlink in the destination would redirect
        // the mount (the CVE-2019-19921 class): refused with runc's words.
        if dest.starts_with("/proc") || dest.starts_with("/sys") {
            match safepath::open_in_root(self.root(), dest, true) {
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(Error::Config(format!(
                        "{}: must be mounted on ordinary directory (it is a symlink)",
                        dest.display()
                    )))
                }
                _ => {}
            }
        }
        if mounts::is_bind(m, &opts) {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            };
            if let Some(tree) = self.pre_opened.get(&i) {
                return self.attach_cloned(tree.as_fd(), &src, dest, &opts);
            }
            return self.bind(&src, dest, &opts);
        }
        let fstype = m.typ().as_deref().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            return self.mount_cgroup(dest, &opts);
        }
        // proc and sysfs destinations must be real directories: a symlink
        // there is the CVE-2019-19921 class.
        let strict = matches!(fstype, "proc" | "sysfs");
        // runc gives a tmpfs the mode of a directory that was there already.
        let existed = fstype == "tmpfs" && safepath::open_in_root(self.root(), dest, false).is_ok();
        let target = if strict {
            match safepath::open_in_root(self.root(), dest, true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    safepath::mkdir_all(self.root(), dest, 0o755).map_err(|e| Error::io(dest, e))?
                }
                Err(e) => return Err(Error::io(dest, e)),
            }
        } else {
            safepath::mkdir_all(self.root(), dest, 0o755).map_err(|e| Error::io(dest, e))?
        };
        if strict && !safepath::is_dir(target.as_fd()).map_err(|e| Error::io(dest, e))? {
            return Err(Error::Config(format!(
                "{}: {fstype} must be mounted on ordinary directory",
                dest.display()
            )));
        }
        // tmpcopyup: a readable handle on the directory about to be
        // covered, to copy from once the tmpfs is there.
        let covered = if opts.copy_up {
            Some(
                sys::open(
                    &fdpath(target.as_fd()),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
                .map_err(|e| Error::io(dest, e))?,
            )
        } else {
            None
        };
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(fstype));
        let mut flags = opts.flags & !libc::MS_REMOUNT;
        // Writable while a copy is made into it, or (a tmpfs /dev) while
        // the mounts and device nodes that go under it are made; read-only
        // after, if asked ([`Rootfs::finish_dev`] for /dev).
        let dev_later = fstype == "tmpfs" && dest == Path::new("/dev");
        if covered.is_some() || dev_later {
            flags &= !libc::MS_RDONLY;
        }
        let mut data =
            crate::lsm::mount_data(fstype, &opts.data_string(), self.mount_label.as_deref());
        // runc: a tmpfs without mode= takes the mode of the directory it
        // covers (not the kernel's 1777).
        if existed && !opts.data.iter().any(|d| d.starts_with("mode=")) {
            if let Ok(st) = sys::fstat(target.as_fd()) {
                let mode = format!("mode={:o}", st.st_mode & 0o7777);
                data = if data.is_empty() {
                    mode
                } else {
                    format!("{data},{mode}")
                };
            }
        }
        let r = sys::mount(
            Some(&source),
            &fdpath(target.as_fd()),
            Some(fstype),
            flags,
            Some(&data),
        );
        match r {
            Ok(()) => {}
            // sysfs belongs to the network namespace: without a private one
            // (typical in a user namespace) the kernel refuses a fresh mount,
            // so bind the host's, as runc does.
            Err(e) if fstype == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                let mut o = opts.clone();
                o.recursive_bind = true;
                o.rec_set |=
                    libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
                drop(target);
                return self.bind(Path::new("/sys"), dest, &o);
            }
            Err(e) => return Err(Error::sys(format!("mounting {fstype}"), e)),
        }
        if fstype == "mqueue" && self.mount_label.is_some() {
            let root =
                safepath::open_in_root(self.root(), dest, true).map_err(|e| Error::io(dest, e))?;
            crate::lsm::label_mount_root(&fdpath(root.as_fd()), self.mount_label.as_deref())?;
        }
        if let Some(from) = covered {
            let to = safepath::open_in_root(self.root(), dest, true)
                .and_then(|fd| {
                    sys::open(&fdpath(fd.as_fd()), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                })
                .map_err(|e| Error::io(dest, e))?;
            crate::copyup::copy_tree(from.as_fd(), to.as_fd())
                .map_err(|e| Error::sys("tmpcopyup: copying the covered directory", e))?;
            if opts.flags & libc::MS_RDONLY != 0 {
                sys::mount_setattr(to.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
                    .ctx(|| "making the copied-up tmpfs read-only".into())?;
            }
        }
        if !opts.propagation.is_empty() || opts.rec_set != 0 || opts.rec_clear != 0 {
            let mnt =
                safepath::open_in_root(self.root(), dest, false).map_err(|e| Error::io(dest, e))?;
            self.finish(mnt.as_fd(), &opts)?;
        }
        Ok(())
    }

    /// Applies recursive attributes and propagation to a mount, given an fd
    /// of its root.
    fn finish(&self, mnt: BorrowedFd<'_>, opts: &Options) -> Result<()> {
        if opts.rec_set != 0 || opts.rec_clear != 0 {
            sys::mount_setattr(mnt, true, opts.rec_set, opts.rec_clear, 0)
                .ctx(|| "setting recursive mount attributes".into())?;
        }
        for p in &opts.propagation {
            sys::mount(None, &fdpath(mnt), None, *p, None)
                .ctx(|| "setting mount propagation".into())?;
        }
        Ok(())
    }

    /// A bind mount built entirely on fds: open_tree(2) clones the source,
    /// mount_setattr(2) applies the flags on the detached copy, and
    /// move_mount(2) attaches it to the target resolved inside the rootfs.
    pub fn bind(&self, src: &Path, dest: &Path, opts: &Options) -> Result<()> {
        let csrc = CString::new(src.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Config(format!("{}: NUL in path", src.display())))?;
        let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
        if opts.recursive_bind {
            flags |= libc::AT_RECURSIVE as u32;
        }
        let tree = sys::open_tree(libc::AT_FDCWD, &csrc, flags)
            .map_err(|e| Error::Config(format!("bind source {}: {e}", src.display())))?;
        let is_dir = safepath::is_dir(tree.as_fd()).map_err(|e| Error::io(src, e))?;
        let target = if is_dir {
            safepath::mkdir_all(self.root(), dest, 0o755)
        } else {
            safepath::ensure_file(self.root(), dest)
        }
        .map_err(|e| Error::io(dest, e))?;
        let (set, clear) = ms_to_attr(opts.flags, opts.cleared);
        if set != 0 || clear != 0 {
            // Plain flags apply to the top mount only, like runc's remount.
            sys::mount_setattr(tree.as_fd(), false, set, clear, 0)
                .ctx(|| format!("setting mount flags on {}", dest.display()))?;
        }
        sys::move_mount_fd(tree.as_fd(), target.as_fd())
            .ctx(|| format!("attaching bind mount of {}", src.display()))?;
        self.finish(tree.as_fd(), opts)
    }

    /// A bind mount whose source the parent cloned from the host: attached
    /// first (the detached tree belongs to the host's user namespace, so
    /// its attributes can only be set once it is in ours), then given the
    /// options' flags and propagation.
    fn attach_cloned(
        &self,
        tree: BorrowedFd<'_>,
        src: &Path,
        dest: &Path,
        opts: &Options,
    ) -> Result<()> {
        let is_dir = safepath::is_dir(tree).map_err(|e| Error::io(src, e))?;
        let target = if is_dir {
            safepath::mkdir_all(self.root(), dest, 0o755)
        } else {
            safepath::ensure_file(self.root(), dest)
        }
        .map_err(|e| Error::io(dest, e))?;
        sys::move_mount_fd(tree, target.as_fd())
            .ctx(|| format!("attaching bind mount of {}", src.display()))?;
        let (set, clear) = ms_to_attr(opts.flags, opts.cleared);
        if set != 0 || clear != 0 {
            sys::mount_setattr(tree, false, set, clear, 0)
                .ctx(|| format!("setting mount flags on {}", dest.display()))?;
        }
        self.finish(tree, opts)
    }

    /// `cgroup` mounts: a cgroup2 mount on unified hosts; on v1 hosts a tmpfs
    /// with one directory per hierarchy, as runc builds it. Outside a cgroup
    /// namespace each hierarchy is a bind of the container's own cgroup, so
    /// the rest of the host's tree stays invisible.
    fn mount_cgroup(&self, dest: &Path, opts: &Options) -> Result<()> {
        let target =
            safepath::mkdir_all(self.root(), dest, 0o755).map_err(|e| Error::io(dest, e))?;
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .ctx(|| "reading /proc/self/mountinfo".into())?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ctx(|| "reading /proc/self/cgroup".into())?;
        let in_cgroupns = own.lines().all(|l| l.ends_with(":/"));
        let ro = opts.flags & libc::MS_RDONLY != 0;
        let base = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // The host's hierarchies only: an earlier cgroup mount of this very
        // container (under its rootfs) is in mountinfo too.
        let hier: Vec<Hierarchy> = hierarchies(&info)
            .into_iter()
            .filter(|h| !h.mount_point.starts_with(&self.path))
            .collect();
        if let Some(v2) = hier
            .iter()
            .find(|h| h.fstype == "cgroup2" && h.mount_point == Path::new("/sys/fs/cgroup"))
        {
            let _ = v2;
            let flags = base | if ro { libc::MS_RDONLY } else { 0 };
            if in_cgroupns {
                sys::mount(
                    Some(Path::new("cgroup2")),
                    &fdpath(target.as_fd()),
                    Some("cgroup2"),
                    flags,
                    None,
                )
                .ctx(|| "mounting cgroup2".into())?;
                return Ok(());
            }
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/");
            let src = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
            drop(target);
            let mut o = Options {
                flags,
                ..Default::default()
            };
            o.bind = true;
            return self.bind(&src, dest, &o);
        }
        sys::mount(
            Some(Path::new("tmpfs")),
            &fdpath(target.as_fd()),
            Some("tmpfs"),
            base,
            Some("mode=755"),
        )
        .ctx(|| "mounting tmpfs for cgroup hierarchies".into())?;
        for h in hier.iter().filter(|h| h.fstype == "cgroup") {
            let name = h.mount_point.file_name().unwrap_or_default();
            let sub = dest.join(name);
            // Which cgroup this process is in, in that hierarchy (as the
            // host names it, from before the cgroup namespace).
            let host = HOST_CGROUPS.get().map_or(own.as_str(), String::as_str);
            let rel = cgroup_of(if in_cgroupns { host } else { &own }, &h.options);
            let flags = base | if ro { libc::MS_RDONLY } else { 0 };
            let mounted = in_cgroupns && {
                let t = safepath::mkdir_all(self.root(), &sub, 0o755)
                    .map_err(|e| Error::io(&sub, e))?;
                let data: Vec<&str> = h
                    .options
                    .iter()
                    .map(|s| s.as_str())
                    .filter(|o| *o != "rw" && *o != "ro")
                    .collect();
                // A v1 hierarchy cannot be mounted afresh from a user
                // namespace (EPERM, or EBUSY with a read-only root): then
                // the container's own cgroup is bound instead, as runc does.
                sys::mount(
                    Some(Path::new("cgroup")),
                    &fdpath(t.as_fd()),
                    Some("cgroup"),
                    flags,
                    Some(&data.join(",")),
                )
                .is_ok()
            };
            if !mounted {
                let src = h.mount_point.join(rel.trim_start_matches('/'));
                let mut o = Options {
                    flags,
                    ..Default::default()
                };
                o.bind = true;
                self.bind(&src, &sub, &o)?;
            }
            // Comounted hierarchies (cpu,cpuacct) get their per-controller
            // symlinks, as on the host.
            let n = name.to_string_lossy();
            if n.contains(',') {
                let dir = safepath::mkdir_all(self.root(), dest, 0o755)
                    .map_err(|e| Error::io(dest, e))?;
                let dirfd = reopen_dir(dir.as_fd()).map_err(|e| Error::io(dest, e))?;
                for c in n.split(',') {
                    let _ = sys::symlinkat(Path::new(&*n), dirfd.as_fd(), Path::new(c));
                }
            }
        }
        if ro {
            let mnt =
                safepath::open_in_root(self.root(), dest, false).map_err(|e| Error::io(dest, e))?;
            sys::mount_setattr(mnt.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
                .ctx(|| "making the cgroup tmpfs read-only".into())?;
        }
        Ok(())
    }

    /// A read-only tmpfs /dev becomes read-only only now, once /dev/pts,
    /// /dev/shm, the device nodes and links are in it (runc's order).
    pub fn finish_dev(&self, spec: &Spec) -> Result<()> {
        let ro_dev = spec.mounts().iter().flatten().any(|m| {
            m.destination() == Path::new("/dev")
                && m.typ().as_deref() == Some("tmpfs")
                && mounts::parse(m.options().as_deref().unwrap_or_default())
                    .is_ok_and(|o| o.flags & libc::MS_RDONLY != 0)
        });
        if !ro_dev {
            return Ok(());
        }
        let dev = safepath::open_in_root(self.root(), Path::new("/dev"), true)
            .map_err(|e| Error::io("/dev", e))?;
        sys::mount_setattr(dev.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
            .ctx(|| "making /dev read-only".into())
    }

    /// Creates process.cwd inside the rootfs when it is missing (runc does;
    /// images whose WORKDIR does not exist, `ctr --cwd` and Kubernetes'
    /// `workingDir` rely on it), resolving every component inside the
    /// rootfs and before a read-only root is made read-only.
    pub fn ensure_cwd(&self, cwd: &Path) -> Result<()> {
        match safepath::open_in_root(self.root(), cwd, false) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                safepath::mkdir_all(self.root(), cwd, 0o755)
                    .map(drop)
                    .map_err(|e| {
                        Error::Config(format!("process.cwd {}: creating it: {e}", cwd.display()))
                    })
            }
            // Anything else (a file there, no permission) is for the
            // chdir to report.
            _ => Ok(()),
        }
    }

    /// The standard device nodes and /dev symlinks, unless /dev is a bind
    /// of the host's.
    pub fn setup_dev(&self, spec: &Spec) -> Result<()> {
        let dev_bound = spec.mounts().iter().flatten().any(|m| {
            m.destination() == Path::new("/dev")
                && (m.typ().as_deref() == Some("bind")
                    || m.options()
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind"))
        });
        let devdir = safepath::mkdir_all(self.root(), Path::new("/dev"), 0o755)
            .map_err(|e| Error::io("/dev", e))?;
        let devdir = reopen_dir(devdir.as_fd()).map_err(|e| Error::io("/dev", e))?;
        if !dev_bound {
            for (name, major, minor) in DEFAULT_DEVICES {
                let d = DeviceNode {
                    path: PathBuf::from(format!("/dev/{name}")),
                    kind: libc::S_IFCHR,
                    major: *major,
                    minor: *minor,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                };
                self.create_device(&d)?;
            }
            for (link, target) in DEV_SYMLINKS {
                // runc's rule: /dev/core only where the kernel has a
                // /proc/kcore for it to point at, never a dangling link.
                if *link == "core" && !Path::new("/proc/kcore").exists() {
                    continue;
                }
                match sys::symlinkat(Path::new(target), devdir.as_fd(), Path::new(link)) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(Error::sys(format!("creating /dev/{link}"), e)),
                }
            }
            for dir in ["pts", "shm"] {
                match sys::mkdirat(devdir.as_fd(), Path::new(dir), 0o755) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(Error::sys(format!("creating /dev/{dir}"), e)),
                }
            }
            // ptmx points at the container's own devpts instance.
            let _ = unlinkat(devdir.as_fd(), "ptmx");
            sys::symlinkat(Path::new("pts/ptmx"), devdir.as_fd(), Path::new("ptmx"))
                .ctx(|| "creating /dev/ptmx".into())?;
        }
        if dev_bound {
            // The host's /dev: never create or re-own nodes there.
            return Ok(());
        }
        let linux = spec.linux().as_ref();
        for (i, d) in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let node = DeviceNode::from_spec(d)
                .map_err(|e| Error::Config(format!("linux.devices[{i}]: {e}")))?;
            self.create_device(&node).map_err(|e| {
                Error::Config(format!("linux.devices[{i}] {}: {e}", d.path().display()))
            })?;
        }
        Ok(())
    }

    fn create_device(&self, d: &DeviceNode) -> Result<()> {
        let rel = safepath::relative(&d.path).map_err(|e| Error::io(&d.path, e))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        let pfd =
            safepath::mkdir_all(self.root(), parent, 0o755).map_err(|e| Error::io(parent, e))?;
        let pdir = reopen_dir(pfd.as_fd()).map_err(|e| Error::io(parent, e))?;
        if self.in_userns {
            // mknod is not allowed in a user namespace; bind the host's node.
            let target =
                safepath::ensure_file(self.root(), &d.path).map_err(|e| Error::io(&d.path, e))?;
            let host = sys::open(&d.path, libc::O_PATH, 0).map_err(|e| Error::io(&d.path, e))?;
            let tree = sys::open_tree(
                host.as_raw_fd(),
                c"",
                libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
            )
            .ctx(|| format!("cloning host device {}", d.path.display()))?;
            return sys::move_mount_fd(tree.as_fd(), target.as_fd())
                .ctx(|| format!("binding device {}", d.path.display()));
        }
        let _ = unlinkat(pdir.as_fd(), &name.to_string_lossy());
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        sys::mknodat(
            pdir.as_fd(),
            Path::new(name),
            d.kind | (d.mode & 0o7777),
            dev,
        )
        .ctx(|| format!("mknod {}", d.path.display()))?;
        let fd = sys::openat2(
            Some(pdir.as_fd()),
            Path::new(name),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )
        .ctx(|| format!("opening {}", d.path.display()))?;
        // mknod is subject to the umask: set the mode exactly as asked.
        sys::fchmod_path(fd.as_fd(), d.mode & 0o7777)
            .ctx(|| format!("chmod {}", d.path.display()))?;
        sys::fchownat_empty(fd.as_fd(), d.uid, d.gid).ctx(|| format!("chown {}", d.path.display()))
    }

    /// maskedPaths: files get the host's /dev/null bound over them (after
    /// checking it really is the 1:3 character device), directories an
    /// empty read-only tmpfs. Missing paths are skipped, as runc does.
    pub fn mask_paths(&self, paths: &[String], devnull: BorrowedFd<'_>) -> Result<()> {
        for p in paths {
            let target = match safepath::open_in_root(self.root(), Path::new(p), true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::Config(format!("linux.maskedPaths {p}: {e}"))),
            };
            if safepath::is_dir(target.as_fd()).map_err(|e| Error::io(p, e))? {
                sys::mount(
                    Some(Path::new("tmpfs")),
                    &fdpath(target.as_fd()),
                    Some("tmpfs"),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )
                .ctx(|| format!("masking {p}"))?;
            } else {
                let tree = sys::open_tree(
                    devnull.as_raw_fd(),
                    c"",
                    libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
                )
                .ctx(|| "cloning /dev/null".into())?;
                sys::move_mount_fd(tree.as_fd(), target.as_fd()).ctx(|| format!("masking {p}"))?;
            }
        }
        Ok(())
    }

    /// readonlyPaths: a read-only recursive bind of the path over itself.
    pub fn readonly_paths(&self, paths: &[String]) -> Result<()> {
        for p in paths {
            let target = match safepath::open_in_root(self.root(), Path::new(p), true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::Config(format!("linux.readonlyPaths {p}: {e}"))),
            };
            let tree = sys::open_tree(
                target.as_raw_fd(),
                c"",
                libc::OPEN_TREE_CLONE
                    | libc::OPEN_TREE_CLOEXEC
                    | libc::AT_EMPTY_PATH as u32
                    | libc::AT_RECURSIVE as u32,
            )
            .ctx(|| format!("cloning {p}"))?;
            sys::mount_setattr(tree.as_fd(), true, libc::MOUNT_ATTR_RDONLY, 0, 0)
                .ctx(|| format!("making {p} read-only"))?;
            sys::move_mount_fd(tree.as_fd(), target.as_fd())
                .ctx(|| format!("remounting {p} read-only"))?;
        }
        Ok(())
    }

    /// pivot_root into the rootfs, then lazily detach the old root. With
    /// `no_pivot` (for ramfs roots, where pivot_root cannot work) fall back to
    /// MS_MOVE + chroot.
    pub fn pivot(&self, no_pivot: bool) -> Result<()> {
        std::env::set_current_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if no_pivot {
            hide_host_proc_and_sys(&self.path)?;
            sys::mount(Some(&self.path), Path::new("/"), None, libc::MS_MOVE, None)
                .ctx(|| "moving the rootfs to /".into())?;
            let dot = sys::cstring(".").expect("no NUL");
            // SAFETY: valid C string.
            if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
                return Err(Error::sys("chroot", std::io::Error::last_os_error()));
            }
        } else {
            // pivot_root(".", ".") stacks the old root on top of the new one;
            // unmounting "." then removes it without needing a directory for it.
            sys::pivot_root(Path::new("."), Path::new(".")).ctx(|| "pivot_root".into())?;
            // Make sure the detach does not propagate to the host.
            sys::mount(
                None,
                Path::new("."),
                None,
                libc::MS_SLAVE | libc::MS_REC,
                None,
            )
            .ctx(|| "making the old root a slave".into())?;
            sys::umount2(Path::new("."), libc::MNT_DETACH)
                .ctx(|| "detaching the old root".into())?;
        }
        std::env::set_current_dir("/").map_err(|e| Error::io("/", e))
    }
}

/// `--no-pivot`: chroot leaves the host's mounts in the container's mount
/// namespace, only out of sight; a fully visible procfs or sysfs among them
/// would let the kernel allow a new, unmasked procfs mount inside (its
/// "mount too revealing" check looks at the whole namespace). So every
/// procfs and sysfs outside the rootfs is detached, or covered by an empty
/// read-only tmpfs where it cannot be (runc does the same).
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "reading /proc/self/mountinfo".into())?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let fstype = *f.get(dash + 1)?;
            let mp = PathBuf::from(unescape(f.get(4)?));
            (matches!(fstype, "proc" | "sysfs") && !mp.starts_with(rootfs)).then_some(mp)
        })
        .collect();
    // Deepest first, so a parent is not detached from under a child first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for mp in points {
        // A slave first: with a shared rootfsPropagation the detach would
        // otherwise reach the host's own /proc.
        let _ = sys::mount(None, &mp, None, libc::MS_SLAVE | libc::MS_REC, None);
        match sys::umount2(&mp, libc::MNT_DETACH) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {}
            Err(_) => sys::mount(
                Some(Path::new("tmpfs")),
                &mp,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0"),
            )
            .ctx(|| format!("covering {} for --no-pivot", mp.display()))?,
        }
    }
    Ok(())
}

/// The parent's part of bind mounts: cloned (open_tree) as the host's
/// root, by index in `mounts`: every bind source of a container with a new
/// user namespace (its root may not reach them), and every idmapped one,
/// which is given its id mapping here. A plain source that cannot be cloned
/// is left to the init, which reports what is wrong with it; an idmap that
/// cannot be made is an error.
pub fn clone_bind_sources(
    spec: &Spec,
    extras: &crate::spec::Extras,
    bundle: &Path,
    new_userns: bool,
) -> Result<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Ok(opts) = mounts::parse(m.options().as_deref().unwrap_or_default()) else {
            continue;
        };
        if !mounts::is_bind(m, &opts) {
            continue;
        }
        let idmap = crate::idmap::mappings(spec, extras, i, &opts);
        if idmap.is_none() && !new_userns {
            continue;
        }
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let Ok(c) = CString::new(src.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
        if opts.recursive_bind {
            flags |= libc::AT_RECURSIVE as u32;
        }
        match (sys::open_tree(libc::AT_FDCWD, &c, flags), idmap) {
            (Ok(fd), None) => out.push((i, fd)),
            (Ok(fd), Some((uid, gid))) => {
                let recursive = opts.idmap_recursive || opts.recursive_bind;
                crate::idmap::map_tree(i, &fd, &uid, &gid, recursive)?;
                out.push((i, fd));
            }
            (Err(_), None) => {}
            (Err(e), Some(_)) => {
                return Err(Error::Config(format!(
                    "mounts[{i}].source {}: {e}",
                    src.display()
                )))
            }
        }
    }
    Ok(out)
}

/// /proc/self/cgroup as the init saw it before it entered its cgroup
/// namespace: where the container's cgroups are in the host's hierarchies.
static HOST_CGROUPS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Called by the init before it unshares its namespaces.
pub fn remember_host_cgroups() {
    if let Ok(t) = std::fs::read_to_string("/proc/self/cgroup") {
        let _ = HOST_CGROUPS.set(t);
    }
}

/// The cgroup path in a /proc/self/cgroup text for the v1 hierarchy whose
/// mount options are `options` ("/" if none matches).
fn cgroup_of<'a>(text: &'a str, options: &[String]) -> &'a str {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _ = f.next();
            Some((f.next()?, f.next()?))
        })
        .find(|(ctrls, _)| {
            !ctrls.is_empty() && ctrls.split(',').all(|c| options.iter().any(|o| o == c))
        })
        .map(|(_, p)| p)
        .unwrap_or("/")
}

/// Remounts the container's `/` read-only (root.readonly).
pub fn readonly_root() -> Result<()> {
    let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::io("/", e))?;
    sys::mount_setattr(root.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
        .ctx(|| "making the root filesystem read-only".into())
}

/// Opens the host's /dev/null for masking, refusing anything that is not
/// the real 1:3 character device.
pub fn open_devnull() -> Result<OwnedFd> {
    let fd = sys::open(Path::new("/dev/null"), libc::O_PATH | libc::O_NOFOLLOW, 0)
        .map_err(|e| Error::io("/dev/null", e))?;
    let st = sys::fstat(fd.as_fd()).map_err(|e| Error::io("/dev/null", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(st.st_rdev) != 1
        || libc::minor(st.st_rdev) != 3
    {
        return Err(Error::State(
            "/dev/null is not the 1:3 character device; refusing to mask with it".into(),
        ));
    }
    Ok(fd)
}

fn reopen_dir(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    sys::openat2(
        Some(fd),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_BENEATH,
    )
}

fn unlinkat(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    let c = sys::cstring(name)?;
    // SAFETY: valid fd and C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("core", "/proc/kcore"),
];

struct DeviceNode {
    path: PathBuf,
    kind: u32,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl DeviceNode {
    fn from_spec(d: &LinuxDevice) -> std::result::Result<Self, String> {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err("type \"a\" is not a device node".into()),
        };
        if d.major() < 0 || d.minor() < 0 {
            return Err("major and minor must not be negative".into());
        }
        Ok(DeviceNode {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }
}

pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub options: Vec<String>,
}

/// The cgroup hierarchies mounted in this mount namespace.
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let _src = post.next();
        let opts = post.next().unwrap_or("");
        let mp = unescape(pre.split(' ').nth(4).unwrap_or(""));
        out.push(Hierarchy {
            mount_point: PathBuf::from(mp),
            fstype: fstype.to_string(),
            options: opts.split(',').map(|s| s.to_string()).collect(),
        });
    }
    out
}

/// Converts MS_* flags for a bind remount into mount_setattr(2) attributes.
fn ms_to_attr(set: libc::c_ulong, cleared: libc::c_ulong) -> (u64, u64) {
    let map = [
        (libc::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, libc::MOUNT_ATTR_NOSYMFOLLOW),
    ];
    let (mut s, mut c) = (0, 0);
    for (ms, attr) in map {
        if set & ms != 0 {
            s |= attr;
        }
        if cleared & ms != 0 {
            c |= attr;
        }
    }
    // The atime modes are one field: setting one means clearing the field.
    for (ms, attr) in [
        (libc::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
        (libc::MS_RELATIME, libc::MOUNT_ATTR_RELATIME),
        (libc::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
    ] {
        if set & ms != 0 {
            s |= attr;
            c |= libc::MOUNT_ATTR__ATIME;
        }
    }
    (s, c)
}
