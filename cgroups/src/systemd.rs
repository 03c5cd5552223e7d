//! The systemd cgroup driver (`--systemd-cgroup`).
//!
//! On a systemd host, systemd owns the cgroup tree: a container's cgroup is
//! a transient scope unit (`<prefix>-<name>.scope` in the given slice),
//! started over D-Bus with the init's pid, `Delegate=yes`, and the limits
//! systemd knows as unit properties, so that a `daemon-reload` re-applies
//! the container's limits instead of resetting them. Everything else (the
//! remaining limits, devices, freezer, stats, teardown's kill) is done on
//! the scope's directories by the cgroupfs driver, as runc does.

use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::dbus::{self, Conn, Value};
use crate::resources::{blkio_weight_to_io_weight, parse_cpuset, shares_to_weight, swap_to_v2};
use crate::{Error, Layout, Result};

const FIELD: &str = "linux.cgroupsPath";
const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const IFACE: &str = "org.freedesktop.systemd1.Manager";
/// Bounds each D-Bus call and each job's completion: systemd answers in
/// milliseconds, but a loaded host (or an emulated test guest) is slower.
const TIMEOUT: Duration = Duration::from_secs(30);
/// D-Bus's "infinity" for limits.
const INFINITY: u64 = u64::MAX;

/// The unit behind a systemd-driver container cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    pub(crate) unit: String,
    pub(crate) slice: String,
    pub(crate) id: String,
    /// The cgroupfs view of the scope's directories. Its leaves count as
    /// berth's own: systemd makes them for this container alone.
    pub(crate) fs: Box<crate::Manager>,
    /// Whether systemd accepted the unit from this container: from then
    /// on stopping it is this container's to do.
    #[serde(default)]
    pub(crate) started: bool,
    /// The inode of the scope's cgroup directory once it exists: a later
    /// scope of the same name (the name is free again once systemd
    /// collected this one) is another container's, not to be touched.
    #[serde(default)]
    pub(crate) ino: Option<u64>,
}

/// Checks what systemd accepts in a unit name.
fn check_unit_chars(field: &str, what: &str, part: &str) -> Result<()> {
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
    {
        return Err(Error::invalid(
            field,
            format!("{what}: {c:?} cannot be part of a systemd unit name"),
        ));
    }
    // systemd's limit on unit names (256 with the ".scope" suffix).
    if part.len() > 240 {
        return Err(Error::invalid(
            field,
            format!("{what}: too long for a systemd unit name"),
        ));
    }
    Ok(())
}

/// Splits `slice:prefix:name` (empty: `system.slice:berth:<id>`).
pub(crate) fn parse_path(cgroups_path: Option<&str>, id: &str) -> Result<(String, String, String)> {
    let Some(p) = cgroups_path.filter(|p| !p.is_empty()) else {
        check_unit_chars("container id", &format!("{id:?}"), id)?;
        return Ok(("system.slice".into(), "berth".into(), id.into()));
    };
    let parts: Vec<&str> = p.split(':').collect();
    if parts.len() != 3 {
        return Err(Error::invalid(
            FIELD,
            format!("{p:?}: the systemd cgroup driver expects \"slice:prefix:name\""),
        ));
    }
    for part in &parts {
        if part.contains('/') {
            return Err(Error::invalid(
                FIELD,
                format!("{p:?}: systemd unit names cannot contain '/'"),
            ));
        }
        check_unit_chars(FIELD, &format!("{p:?}"), part)?;
    }
    let slice = if parts[0].is_empty() {
        "system.slice"
    } else {
        parts[0]
    };
    if !slice.ends_with(".slice") {
        return Err(Error::invalid(
            FIELD,
            format!("{p:?}: {slice:?} is not a slice name (\"*.slice\")"),
        ));
    }
    if parts[2].is_empty() {
        return Err(Error::invalid(FIELD, format!("{p:?}: the name is empty")));
    }
    Ok((slice.into(), parts[1].into(), parts[2].into()))
}

/// The cgroup path of a slice: systemd nests `a-b-c.slice` in `a-b.slice`
/// in `a.slice`; `-.slice` is the root.
pub(crate) fn slice_path(slice: &str) -> Result<String> {
    let bad = || Error::invalid(FIELD, format!("{slice:?} is not a valid slice name"));
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

fn unit_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    }
}

/// Whether systemd runs the host, the way sd_booted(3) decides it.
fn booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

fn err(what: impl std::fmt::Display, e: dbus::Error) -> Error {
    Error::Systemd(format!("{what}: {e}"))
}

/// A connection to systemd: the system bus, or where no bus runs (early
/// boot, a bus-less host), systemd's private socket.
fn connect() -> Result<Conn> {
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| {
            a.split(';')
                .filter_map(|one| one.strip_prefix("unix:"))
                .flat_map(|kv| kv.split(','))
                .find_map(|kv| kv.strip_prefix("path=").map(str::to_string))
        })
        .unwrap_or_else(|| "/run/dbus/system_bus_socket".into());
    match Conn::connect(bus.as_ref(), true, TIMEOUT) {
        Ok(c) => Ok(c),
        Err(e @ dbus::Error::Io { .. }) => {
            Conn::connect("/run/systemd/private".as_ref(), false, TIMEOUT)
                .map_err(|_| err("connecting to systemd", e))
        }
        Err(e) => Err(err("connecting to systemd", e)),
    }
}

/// The string (or object path) at `i` of a reply or signal body; empty
/// where there is none.
fn str_at(body: &[Value], i: usize) -> String {
    body.get(i)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn manager_call(
    c: &mut Conn,
    member: &str,
    args: &[Value],
) -> std::result::Result<Vec<Value>, dbus::Error> {
    c.call(Some(DEST), PATH, IFACE, member, args)
}

/// A job systemd accepted: its object path, and who may report its end.
struct Job {
    path: String,
    /// systemd's unique name on the bus (empty on its private socket,
    /// where nobody else can speak).
    sender: String,
}

/// Calls a job-returning method; its end is awaited by [`wait_job`].
fn submit_job(c: &mut Conn, member: &str, args: &[Value]) -> std::result::Result<Job, dbus::Error> {
    // Without a subscription systemd sends job signals only to some
    // clients; with it, to this one. On the bus, the match rule lets the
    // bus deliver them.
    manager_call(c, "Subscribe", &[])?;
    let mut sender = String::new();
    if c.bus {
        let bus = |c: &mut Conn, member: &str, arg: String| {
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                member,
                &[Value::Str(arg)],
            )
        };
        let rule = format!(
            "type='signal',sender='{DEST}',path='{PATH}',interface='{IFACE}',member='JobRemoved'"
        );
        bus(c, "AddMatch", rule)?;
        // Any local peer may send signals to this connection: only
        // systemd's own count.
        sender = str_at(&bus(c, "GetNameOwner", DEST.into())?, 0);
    }
    let path = str_at(&manager_call(c, member, args)?, 0);
    Ok(Job { path, sender })
}

/// Waits until systemd has finished `job`; returns its result ("done",
/// "failed", ...).
fn wait_job(c: &mut Conn, job: &Job) -> std::result::Result<String, dbus::Error> {
    // JobRemoved(u id, o job, s unit, s result)
    let m = c.wait_signal(TIMEOUT, |m| {
        m.member == "JobRemoved"
            && m.interface == IFACE
            && m.path == PATH
            && m.sender == job.sender
            && str_at(&m.body, 1) == job.path
    })?;
    Ok(str_at(&m.body, 3))
}

/// The cgroup systemd gave a unit (its `ControlGroup` property): systemd
/// escapes some names, so it is read rather than computed.
fn control_group(c: &mut Conn, unit: &str) -> std::result::Result<String, dbus::Error> {
    let obj = str_at(&manager_call(c, "GetUnit", &[Value::Str(unit.into())])?, 0);
    let v = c.call(
        Some(DEST),
        &obj,
        "org.freedesktop.DBus.Properties",
        "Get",
        &[
            Value::Str("org.freedesktop.systemd1.Scope".into()),
            Value::Str("ControlGroup".into()),
        ],
    )?;
    match v.first() {
        Some(Value::Variant(inner)) => Ok(inner.as_str().unwrap_or_default().to_string()),
        _ => Ok(String::new()),
    }
}

/// The inode of a directory, if it exists.
fn inode(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn is_remote(e: &dbus::Error, names: &[&str]) -> bool {
    matches!(e, dbus::Error::Remote { name, .. } if names.iter().any(|n| name.ends_with(n)))
}

/// The unit properties for `r`, by the names systemd gives them on the
/// host's cgroup version, with runc's conversions.
pub(crate) fn properties(r: &LinuxResources, v2: bool) -> Result<Vec<Value>> {
    let mut p = Vec::new();
    let mut put = |name: &str, v: Value| p.push(Value::property(name, v));
    let limit = |v: i64| if v < 0 { INFINITY } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            put(
                if v2 { "MemoryMax" } else { "MemoryLimit" },
                Value::U64(limit(l)),
            );
        }
        if v2 {
            if let Some(low) = m.reservation().filter(|l| *l > 0) {
                put("MemoryLow", Value::U64(low as u64));
            }
            if let Some(s) = swap_to_v2(m.swap(), m.limit())? {
                put("MemorySwapMax", Value::U64(limit(s)));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            if v2 {
                put("CPUWeight", Value::U64(shares_to_weight(s)));
            } else {
                put("CPUShares", Value::U64(s));
            }
        }
        let period = c.period().filter(|p| *p != 0);
        match c.quota() {
            Some(q) if q > 0 => {
                // systemd counts quota per second in 10 ms steps: round up,
                // so the unit never limits harder than the exact value
                // written below.
                let per = period.unwrap_or(100_000);
                let us = (q as u64).saturating_mul(1_000_000) / per;
                put(
                    "CPUQuotaPerSecUSec",
                    Value::U64(us.div_ceil(10_000) * 10_000),
                );
            }
            Some(-1) => put("CPUQuotaPerSecUSec", Value::U64(INFINITY)),
            _ => {}
        }
        if let Some(per) = period {
            put("CPUQuotaPeriodUSec", Value::U64(per));
        }
        if v2 {
            let mask = |list: &str, field: &str| -> Result<Value> {
                let f = || format!("linux.resources.cpu.{field}");
                let ids = parse_cpuset(list).map_err(|e| Error::invalid(f(), e))?;
                // systemd's own bound on CPU and node numbers.
                if let Some(big) = ids.iter().find(|i| **i >= 8192) {
                    return Err(Error::invalid(f(), format!("{big} is beyond 8191")));
                }
                let mut bytes = vec![0u8; ids.iter().max().map_or(0, |m| *m as usize / 8 + 1)];
                for id in ids {
                    bytes[id as usize / 8] |= 1 << (id % 8);
                }
                Ok(Value::Array(
                    "y".into(),
                    bytes.into_iter().map(Value::Byte).collect(),
                ))
            };
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                put("AllowedCPUs", mask(cpus, "cpus")?);
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                put("AllowedMemoryNodes", mask(mems, "mems")?);
            }
        }
    }
    if let Some(pids) = r.pids() {
        match pids.limit() {
            l if l > 0 => put("TasksMax", Value::U64(l as u64)),
            -1 => put("TasksMax", Value::U64(INFINITY)),
            _ => {}
        }
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        if v2 {
            put("IOWeight", Value::U64(blkio_weight_to_io_weight(w as u64)));
        } else {
            put("BlockIOWeight", Value::U64(w as u64));
        }
    }
    Ok(p)
}

impl Manager {
    /// Refuses clearly where the driver cannot work; touches nothing.
    pub(crate) fn new(cgroups_path: Option<&str>, id: &str) -> Result<Manager> {
        let (slice, prefix, name) = parse_path(cgroups_path, id)?;
        if name.ends_with(".slice") {
            return Err(Error::Unsupported(format!(
                "{FIELD}: {name:?}: a slice as a container's own cgroup is not supported \
                 by berth's systemd driver; name a scope (\"slice:prefix:name\")"
            )));
        }
        if !booted() {
            return Err(Error::Unsupported(
                "--systemd-cgroup: the systemd cgroup driver needs systemd as PID 1, \
                 and this host is not booted with systemd; run without --systemd-cgroup \
                 (cgroupfs driver)"
                    .into(),
            ));
        }
        let unit = unit_name(&prefix, &name);
        let path = format!("{}/{unit}", slice_path(&slice)?);
        let fs = crate::Manager::cgroupfs(path)?;
        Ok(Manager {
            unit,
            slice,
            id: id.into(),
            fs: Box::new(fs),
            started: false,
            ino: None,
        })
    }

    fn v2(&self) -> bool {
        self.fs.layout() == Layout::Unified
    }

    /// Starts the scope with `pid` in it and the limits of `r`, then sets
    /// up the rest through cgroupfs.
    pub(crate) fn start(&mut self, pid: i32, r: &LinuxResources) -> Result<()> {
        let mut props = vec![
            Value::property(
                "Description",
                Value::Str(format!("berth container {}", self.id)),
            ),
            Value::property("Slice", Value::Str(self.slice.clone())),
            Value::property(
                "PIDs",
                Value::Array("u".into(), vec![Value::U32(pid as u32)]),
            ),
            Value::property("Delegate", Value::Bool(true)),
            Value::property("DefaultDependencies", Value::Bool(false)),
            Value::property("MemoryAccounting", Value::Bool(true)),
            Value::property("CPUAccounting", Value::Bool(true)),
            Value::property("TasksAccounting", Value::Bool(true)),
        ];
        let io = if self.v2() {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        };
        props.push(Value::property(io, Value::Bool(true)));
        props.extend(properties(r, self.v2())?);
        if !self.v2() {
            props.extend(device_properties(r)?);
        }
        let mut c = connect()?;
        // A unit of the same name that failed earlier would block the name.
        let _ = manager_call(&mut c, "ResetFailedUnit", &[Value::Str(self.unit.clone())]);
        let args = [
            Value::Str(self.unit.clone()),
            Value::Str("replace".into()),
            Value::Array("(sv)".into(), props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        let what = || format!("systemd: starting {}", self.unit);
        // Directories already there (left over in hierarchies systemd does
        // not manage) are joined, never taken for this container's own.
        let before: Vec<std::path::PathBuf> =
            self.fs.dirs().into_iter().filter(|d| d.exists()).collect();
        let job = match submit_job(&mut c, "StartTransientUnit", &args) {
            Ok(job) => job,
            Err(e) if is_remote(&e, &[".UnitExists"]) => {
                return Err(Error::Systemd(format!(
                    "{}: the unit already exists (another container uses {FIELD} {}:…)",
                    what(),
                    self.slice
                )))
            }
            Err(e) => return Err(err(what(), e)),
        };
        // Accepted: from here on a failure must stop the unit again.
        self.started = true;
        match wait_job(&mut c, &job) {
            Ok(r) if r == "done" => {}
            Ok(r) => return Err(Error::Systemd(format!("{}: the job ended {r:?}", what()))),
            Err(e) => return Err(err(what(), e)),
        }
        let cg = control_group(&mut c, &self.unit).map_err(|e| err(what(), e))?;
        if !cg.is_empty() && cg != self.fs.path() {
            *self.fs = crate::Manager::cgroupfs(cg)?;
        }
        self.fs
            .own_leaves(&|d| d.exists() && !before.iter().any(|b| b == d));
        self.ino = self.fs.dirs().first().and_then(|d| inode(d));
        // v1: the hierarchies systemd does not manage (cpuset, freezer, ...)
        // get their directories here; the rest are joined as they are.
        self.fs.create()?;
        self.fs.add_process(pid)?;
        self.fs.apply(r)
    }

    /// `berth update`: the unit's properties first, so that systemd keeps
    /// them, then the files.
    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if self.started {
            let mut r = r.clone();
            // A new quota alone keeps the period the cgroup has: systemd's
            // per-second quota is computed against it.
            if let Some(cpu) = r
                .cpu()
                .as_ref()
                .filter(|c| c.quota().is_some() && c.period().is_none())
            {
                let mut cpu = cpu.clone();
                cpu.set_period(self.current_period());
                r.set_cpu(Some(cpu));
            }
            let props = properties(&r, self.v2())?;
            if !props.is_empty() {
                let mut c = connect()?;
                let args = [
                    Value::Str(self.unit.clone()),
                    Value::Bool(true),
                    Value::Array("(sv)".into(), props),
                ];
                manager_call(&mut c, "SetUnitProperties", &args)
                    .map_err(|e| err(format!("systemd: updating {}", self.unit), e))?;
            }
        }
        self.fs.apply(r)
    }

    /// Kills what is left through cgroupfs (SIGKILL at once, where stopping
    /// the unit would send SIGTERM and wait), then stops the unit; a unit
    /// systemd already collected is fine.
    pub(crate) fn destroy(&self) -> Result<()> {
        if !self.started {
            // Never started here: a unit of that name is someone else's.
            return Ok(());
        }
        let primary = self.fs.dirs().into_iter().next();
        let now = primary.as_deref().and_then(inode);
        match (self.ino, now) {
            // The scope went away with its last process: what is left is
            // what berth made beside it, removed only where empty, since
            // another container may have taken the name since.
            (Some(_), None) => return self.fs.remove_unused(),
            // Another scope of the same name: not this container's.
            (Some(a), Some(b)) if a != b => return Ok(()),
            _ => {}
        }
        let killed = self.fs.destroy();
        let mut c = connect()?;
        let args = [Value::Str(self.unit.clone()), Value::Str("replace".into())];
        match submit_job(&mut c, "StopUnit", &args).and_then(|job| wait_job(&mut c, &job)) {
            Ok(_) => {}
            Err(e) if is_remote(&e, &[".NoSuchUnit", ".UnitNotLoaded"]) => {}
            Err(e) => return Err(err(format!("systemd: stopping {}", self.unit), e)),
        }
        let _ = manager_call(&mut c, "ResetFailedUnit", &[Value::Str(self.unit.clone())]);
        killed
    }

    /// The CFS period of the cgroup now, in µs (the kernel's default when
    /// it cannot be read).
    fn current_period(&self) -> Option<u64> {
        let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
        let text = match &*self.fs {
            crate::Manager::V2(m) => read(m.dir().join("cpu.max"))
                .and_then(|t| t.split_whitespace().nth(1).map(str::to_string)),
            crate::Manager::V1(m) => m
                .controller_dir("cpu")
                .and_then(|d| read(d.join("cpu.cfs_period_us"))),
            crate::Manager::Systemd(_) => None,
        };
        text.and_then(|t| t.trim().parse().ok()).or(Some(100_000))
    }
}

/// v1 only: the device rules as `DevicePolicy`/`DeviceAllow`. systemd
/// rewrites a scope's devices cgroup from these on a reload, and with none
/// it writes "allow all": the container would gain every device. Only a
/// deny-by-default list has a systemd form (runc's limit too); other lists
/// stay with cgroupfs alone.
fn device_properties(r: &LinuxResources) -> Result<Vec<Value>> {
    use crate::devices::{access_string, rules_from_oci, DevType, DeviceState};
    let Some(devs) = r.devices() else {
        return Ok(Vec::new());
    };
    let mut state = DeviceState {
        default_allow: true,
        exceptions: Vec::new(),
    };
    state.apply_all(&rules_from_oci(devs)?);
    if state.default_allow {
        return Ok(Vec::new());
    }
    let names = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut allow = Vec::new();
    for e in &state.exceptions {
        let (kind, section) = match e.typ {
            DevType::Char => ("char", "Character devices:"),
            DevType::Block => ("block", "Block devices:"),
        };
        let spec = match (e.major, e.minor) {
            (Some(ma), Some(mi)) => format!("/dev/{kind}/{ma}:{mi}"),
            (None, _) => format!("{kind}-*"),
            // A whole major: systemd names it by its driver.
            (Some(ma), None) => match driver_name(&names, section, ma) {
                Some(n) => format!("{kind}-{n}"),
                None => continue,
            },
        };
        allow.push(Value::Struct(vec![
            Value::Str(spec),
            Value::Str(access_string(e.access)),
        ]));
    }
    Ok(vec![
        Value::property("DevicePolicy", Value::Str("strict".into())),
        Value::property("DeviceAllow", Value::Array("(ss)".into(), allow)),
    ])
}

/// The driver name of `major` in one section of /proc/devices.
fn driver_name(text: &str, section: &str, major: u32) -> Option<String> {
    text.split("\n\n")
        .find(|s| s.trim_start().starts_with(section))?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (m, name) = l.trim().split_once(' ')?;
            (m.parse() == Ok(major)).then(|| name.trim().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_slice_prefix_and_name() {
        assert_eq!(
            parse_path(Some("kubepods.slice:cri-containerd:abc"), "x").unwrap(),
            (
                "kubepods.slice".to_string(),
                "cri-containerd".to_string(),
                "abc".to_string()
            )
        );
        assert_eq!(parse_path(Some(":p:n"), "x").unwrap().0, "system.slice");
        assert_eq!(
            parse_path(None, "c1").unwrap(),
            ("system.slice".into(), "berth".into(), "c1".into())
        );
        for bad in [
            "a:b",
            "/a/b:c:d",
            "notaslice:c:d",
            "a.slice:p:",
            "a.slice:p:n m",
        ] {
            let e = parse_path(Some(bad), "x").unwrap_err();
            assert!(e.to_string().starts_with(FIELD), "{bad}: {e}");
        }
    }

    #[test]
    fn slices_nest_by_dashes() {
        assert_eq!(slice_path("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            slice_path("kubepods-besteffort-pod1.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
        );
        assert_eq!(slice_path("-.slice").unwrap(), "");
        for bad in ["a--b.slice", "-a.slice", "a-.slice", ".slice", "a.scope"] {
            assert!(slice_path(bad).is_err(), "{bad}");
        }
        assert_eq!(unit_name("berth", "c1"), "berth-c1.scope");
        assert_eq!(unit_name("", "c1"), "c1.scope");
    }

    #[test]
    fn resources_become_unit_properties_as_runc_converts_them() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":268435456,"reservation":1048576,"swap":536870912},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1,9","mems":"0"},
                "pids":{"limit":-1},"blockIO":{"weight":500}}"#,
        )
        .unwrap();
        let props = properties(&r, true).unwrap();
        let get = |name: &str| {
            props.iter().find_map(|p| match p {
                Value::Struct(f) if f[0] == Value::Str(name.into()) => match &f[1] {
                    Value::Variant(v) => Some((**v).clone()),
                    _ => None,
                },
                _ => None,
            })
        };
        assert_eq!(get("MemoryMax"), Some(Value::U64(268435456)));
        assert_eq!(get("MemoryLow"), Some(Value::U64(1048576)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(268435456)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(
            get("AllowedCPUs"),
            Some(Value::Array(
                "y".into(),
                vec![Value::Byte(0b11), Value::Byte(0b10)]
            ))
        );
        assert_eq!(get("TasksMax"), Some(Value::U64(u64::MAX)));
        assert_eq!(get("IOWeight"), Some(Value::U64(4950)));
        let v1 = properties(&r, false).unwrap();
        assert!(v1.iter().any(|p| p.signature() == "(sv)"));
        let names: Vec<String> = v1
            .iter()
            .filter_map(|p| match p {
                Value::Struct(f) => f[0].as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        assert!(names.contains(&"MemoryLimit".to_string()), "{names:?}");
        assert!(names.contains(&"CPUShares".to_string()), "{names:?}");
        assert!(names.contains(&"BlockIOWeight".to_string()), "{names:?}");
        assert!(!names.contains(&"AllowedCPUs".to_string()), "{names:?}");
    }

    #[test]
    fn a_deny_by_default_device_list_becomes_a_strict_policy() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"devices":[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","access":"r"}]}"#,
        )
        .unwrap();
        let p = device_properties(&r).unwrap();
        assert_eq!(
            p[0],
            Value::property("DevicePolicy", Value::Str("strict".into()))
        );
        let Value::Struct(f) = &p[1] else { panic!() };
        let Value::Variant(v) = &f[1] else { panic!() };
        let Value::Array(_, allow) = &**v else {
            panic!()
        };
        let pair =
            |a: &str, b: &str| Value::Struct(vec![Value::Str(a.into()), Value::Str(b.into())]);
        assert!(allow.contains(&pair("/dev/char/1:3", "rwm")), "{allow:?}");
        assert!(allow.contains(&pair("block-*", "r")), "{allow:?}");
        // 136 is "pts" where /proc/devices says so; unnamed majors are left
        // to cgroupfs.
        assert!(allow.len() >= 2);
        // Allow-by-default lists have no systemd form.
        let open: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#).unwrap();
        assert!(device_properties(&open).unwrap().is_empty());
    }

    #[test]
    fn drivers_are_named_from_proc_devices() {
        let text = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(
            driver_name(text, "Character devices:", 136).as_deref(),
            Some("pts")
        );
        assert_eq!(
            driver_name(text, "Block devices:", 8).as_deref(),
            Some("sd")
        );
        assert_eq!(driver_name(text, "Block devices:", 136), None);
    }

    #[test]
    fn unset_weights_and_huge_cpu_ids_do_not_reach_systemd() {
        let r: LinuxResources = serde_json::from_str(r#"{"blockIO":{"weight":0}}"#).unwrap();
        assert!(properties(&r, true).unwrap().is_empty());
        let r: LinuxResources = serde_json::from_str(r#"{"cpu":{"cpus":"4294967295"}}"#).unwrap();
        let e = properties(&r, true).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.cpu.cpus"), "{e}");
        assert!(parse_path(None, "a+b").is_err());
    }

    #[test]
    fn odd_quotas_round_up_to_systemds_step() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"cpu":{"quota":12345,"period":100000}}"#).unwrap();
        let props = properties(&r, true).unwrap();
        assert!(props.contains(&Value::property("CPUQuotaPerSecUSec", Value::U64(130_000))));
    }
}
