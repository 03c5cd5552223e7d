//! Device access rules, and an emulation of the v1 devices controller.
//!
//! The kernel's v1 controller is a state machine (a default policy plus a
//! list of exceptions) driven by the writes to devices.allow/devices.deny.
//! Emulating it lets berth (a) on v1, move a running cgroup from its current
//! state to the wanted one without passing through "everything denied"
//! (an `update` that resends the same rules writes nothing at all), and (b)
//! on v2, give the eBPF program exactly the semantics the rules have on v1.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

const FIELD: &str = "linux.resources.devices";

/// Access bits, with the kernel's values (also those of
/// `BPF_DEVCG_ACC_*`).
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DevType {
    Char,
    Block,
}

impl DevType {
    fn as_char(self) -> char {
        match self {
            DevType::Char => 'c',
            DevType::Block => 'b',
        }
    }
}

/// One rule, after berth's reading of the OCI entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Type `a` with no major, minor or access restriction: resets the
    /// policy to allow or deny everything, as writing "a" does on v1.
    All {
        allow: bool,
    },
    One {
        allow: bool,
        exception: Exception,
    },
}

/// A device class (type, major, minor; `None` = any) and access bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Exception {
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Exception {
    fn key(&self) -> (DevType, Option<u32>, Option<u32>) {
        (self.typ, self.major, self.minor)
    }

    /// The v1 form, e.g. "c 1:3 rwm".
    pub fn to_v1(&self) -> String {
        let n = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.typ.as_char(),
            n(self.major),
            n(self.minor),
            access_string(self.access)
        )
    }
}

pub fn access_string(access: u8) -> String {
    let mut s = String::new();
    if access & ACC_READ != 0 {
        s.push('r');
    }
    if access & ACC_WRITE != 0 {
        s.push('w');
    }
    if access & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn parse_access(s: &str) -> std::result::Result<u8, String> {
    let mut acc = 0;
    for c in s.chars() {
        acc |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(format!("access {s:?}: {c:?} is not one of r, w, m")),
        };
    }
    Ok(acc)
}

fn devnum(what: &str, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None | Some(-1) => Ok(None),
        Some(v) if (0..=u32::MAX as i64).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(Error::invalid(
            format!("{FIELD}.{what}"),
            format!("{v} is not a device number (-1 or absent means any)"),
        )),
    }
}

/// Reads the OCI rules. A missing or empty access means "rwm". A type-`a`
/// rule that names a major or minor, or less than all access, stands for
/// the same rule on both char and block devices rather than a reset of the
/// policy: that is what such a rule says, while the v1 kernel would read it
/// as "allow (or deny) everything".
pub fn rules_from_oci(devs: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in devs {
        let access = match d.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(s) => parse_access(s).map_err(|e| Error::invalid(format!("{FIELD}.access"), e))?,
        };
        let major = devnum("major", d.major())?;
        let minor = devnum("minor", d.minor())?;
        let types: &[DevType] = match d.typ().unwrap_or_default() {
            LinuxDeviceType::A => {
                if major.is_none() && minor.is_none() && access == ACC_ALL {
                    out.push(Rule::All { allow: d.allow() });
                    continue;
                }
                &[DevType::Char, DevType::Block]
            }
            LinuxDeviceType::C | LinuxDeviceType::U => &[DevType::Char],
            LinuxDeviceType::B => &[DevType::Block],
            // The devices controller does not govern FIFOs; runc skips them too.
            LinuxDeviceType::P => continue,
        };
        if access == 0 {
            continue;
        }
        for &typ in types {
            out.push(Rule::One {
                allow: d.allow(),
                exception: Exception {
                    typ,
                    major,
                    minor,
                    access,
                },
            });
        }
    }
    Ok(out)
}

/// The v1 controller's state: a default and the exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

impl Default for DeviceState {
    /// A fresh cgroup on v2 (no program) or below an unrestricted v1 parent.
    fn default() -> Self {
        DeviceState {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }
}

impl DeviceState {
    /// Applies one rule as the v1 kernel does: a reset clears the
    /// exceptions; a rule of the default's own kind removes access from an
    /// exception with exactly the same type/major/minor (it does not punch a
    /// hole in a wildcard exception); the other kind adds access.
    pub fn apply(&mut self, rule: &Rule) {
        match *rule {
            Rule::All { allow } => {
                self.default_allow = allow;
                self.exceptions.clear();
            }
            Rule::One { allow, exception } => {
                let pos = self
                    .exceptions
                    .iter()
                    .position(|e| e.key() == exception.key());
                if allow != self.default_allow {
                    match pos {
                        Some(i) => self.exceptions[i].access |= exception.access,
                        None => self.exceptions.push(exception),
                    }
                } else if let Some(i) = pos {
                    self.exceptions[i].access &= !exception.access;
                    if self.exceptions[i].access == 0 {
                        self.exceptions.remove(i);
                    }
                }
            }
        }
    }

    pub fn apply_all(&mut self, rules: &[Rule]) {
        for r in rules {
            self.apply(r);
        }
    }

    fn access_of(&self, key: (DevType, Option<u32>, Option<u32>)) -> u8 {
        self.exceptions
            .iter()
            .find(|e| e.key() == key)
            .map_or(0, |e| e.access)
    }

    /// Reads v1 `devices.list`. In allow-by-default mode the kernel shows
    /// only "a *:* rwm", hiding the exceptions: `exact` is then false.
    pub fn parse_list(text: &str) -> std::result::Result<(DeviceState, bool), String> {
        let mut st = DeviceState {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return Err(format!("bad devices.list line {line:?}"));
            }
            let (maj, min) = f[1]
                .split_once(':')
                .ok_or_else(|| format!("bad devices.list line {line:?}"))?;
            let num = |s: &str| -> std::result::Result<Option<u32>, String> {
                if s == "*" {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|_| format!("bad devices.list line {line:?}"))
                }
            };
            let access = parse_access(f[2])?;
            let typ = match f[0] {
                "a" => {
                    return Ok((
                        DeviceState {
                            default_allow: true,
                            exceptions: Vec::new(),
                        },
                        false,
                    ))
                }
                "c" => DevType::Char,
                "b" => DevType::Block,
                t => return Err(format!("bad device type {t:?} in devices.list")),
            };
            st.exceptions.push(Exception {
                typ,
                major: num(maj)?,
                minor: num(min)?,
                access,
            });
        }
        Ok((st, true))
    }

    /// The writes (file name, value) that take a v1 cgroup from `self` to
    /// `target`. Between two allow-lists only the differences are written,
    /// so running processes never lose a device they keep; otherwise the
    /// policy is reset and the exceptions written after it.
    pub fn transition(&self, exact: bool, target: &DeviceState) -> Vec<(&'static str, String)> {
        let mut w = Vec::new();
        if exact && self == target {
            return w;
        }
        if exact && !self.default_allow && !target.default_allow {
            for e in &self.exceptions {
                let drop = e.access & !target.access_of(e.key());
                if drop != 0 {
                    w.push(("devices.deny", Exception { access: drop, ..*e }.to_v1()));
                }
            }
            for e in &target.exceptions {
                let add = e.access & !self.access_of(e.key());
                if add != 0 {
                    w.push(("devices.allow", Exception { access: add, ..*e }.to_v1()));
                }
            }
            return w;
        }
        let (reset, other) = if target.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        w.push((reset, "a".to_string()));
        for e in &target.exceptions {
            w.push((other, e.to_v1()));
        }
        w
    }

    /// Whether an access is allowed, with the kernel's v1 matching: in
    /// deny-by-default mode an exception must cover all requested access;
    /// in allow-by-default mode any overlap with an exception denies.
    pub fn allows(&self, typ: DevType, major: u32, minor: u32, access: u8) -> bool {
        let matches = |e: &&Exception| {
            e.typ == typ && e.major.is_none_or(|m| m == major) && e.minor.is_none_or(|m| m == minor)
        };
        if self.default_allow {
            !self
                .exceptions
                .iter()
                .filter(matches)
                .any(|e| e.access & access != 0)
        } else {
            self.exceptions
                .iter()
                .filter(matches)
                .any(|e| access & !e.access == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<Rule> {
        let devs: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        rules_from_oci(&devs).unwrap()
    }

    const DEFAULTS: &str = r#"[
        {"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
        {"allow":true,"type":"c","major":136,"access":"rwm"},
        {"allow":false,"type":"c","major":1,"minor":5,"access":"w"}
    ]"#;

    #[test]
    fn oci_rules() {
        let r = rules(DEFAULTS);
        assert_eq!(r[0], Rule::All { allow: false });
        assert_eq!(r.len(), 5);
        let r = rules(r#"[{"allow":true,"major":1,"minor":3}]"#);
        assert_eq!(r.len(), 2, "type a with a number is expanded, not a reset");
        let r = rules(r#"[{"allow":true,"type":"p","major":1,"minor":3}]"#);
        assert!(r.is_empty());
        let devs: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"type":"c","major":-2,"access":"r"}]"#).unwrap();
        assert!(rules_from_oci(&devs).is_err());
    }

    #[test]
    fn emulation_follows_kernel() {
        let mut st = DeviceState::default();
        st.apply_all(&rules(DEFAULTS));
        assert!(!st.default_allow);
        assert!(st.allows(DevType::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(st.allows(DevType::Char, 1, 5, ACC_READ));
        assert!(!st.allows(DevType::Char, 1, 5, ACC_WRITE));
        assert!(st.allows(DevType::Char, 136, 7, ACC_WRITE));
        assert!(!st.allows(DevType::Block, 8, 0, ACC_READ));
        assert!(!st.allows(DevType::Char, 1, 9, ACC_READ));
        // a deny of one device does not punch a hole in a wildcard allow
        let mut st = DeviceState::default();
        st.apply_all(&rules(
            r#"[{"allow":false},{"allow":true,"type":"c","access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"}]"#,
        ));
        assert!(st.allows(DevType::Char, 1, 5, ACC_READ));
        // blacklist mode: overlap denies
        let mut st = DeviceState::default();
        st.apply_all(&rules(
            r#"[{"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#,
        ));
        assert!(st.default_allow);
        assert!(!st.allows(DevType::Char, 1, 5, ACC_READ | ACC_WRITE));
        assert!(st.allows(DevType::Char, 1, 5, ACC_READ));
    }

    #[test]
    fn list_parsing_and_transitions() {
        let (cur, exact) = DeviceState::parse_list("a *:* rwm\n").unwrap();
        assert!(cur.default_allow && !exact);
        let mut target = DeviceState::default();
        target.apply_all(&rules(DEFAULTS));
        let w = cur.transition(exact, &target);
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        assert_eq!(
            &w[1..],
            &[
                ("devices.allow", "c 1:3 rwm".to_string()),
                ("devices.allow", "c 1:5 rm".to_string()),
                ("devices.allow", "c 136:* rwm".to_string()),
            ]
        );
        // what the kernel then lists reads back as the same state
        let (now, exact) = DeviceState::parse_list("c 1:3 rwm\nc 1:5 rm\nc 136:* rwm\n").unwrap();
        assert!(exact);
        assert!(now.transition(exact, &target).is_empty());
        // an update that drops /dev/zero and adds block 8:0 read
        let mut t2 = DeviceState::default();
        t2.apply_all(&rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3},
                {"allow":true,"type":"c","major":136},
                {"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#,
        ));
        assert_eq!(
            now.transition(true, &t2),
            vec![
                ("devices.deny", "c 1:5 rm".to_string()),
                ("devices.allow", "b 8:0 r".to_string()),
            ]
        );
        assert!(DeviceState::parse_list("x 1:2 r").is_err());
        assert!(DeviceState::parse_list("c 1:2 rq").is_err());
    }
}
