//! Property-based tests of config.json validation: random mutations of a
//! valid config never panic the parser and validator, and a real
//! `berth create` of one either succeeds or fails with exit status 1 and one
//! line on stderr that names the field at fault, leaving nothing behind.
//!
//! Mutations: at a random field of a valid config (berth's default, or a
//! rich one with mounts, cgroup resources, hooks, seccomp, rlimits, a user,
//! environment and more namespaces), a value of the wrong type, a number out
//! of range, an empty, NUL-bearing, relative, climbing or very long string,
//! the field removed, or an unknown key added; one to three stacked.
//!
//! Seeded (BERTH_PROPTEST_SEED overrides the seed, PROPTEST_CASES the number
//! of cases) and without a regressions file, so runs are repeatable and write
//! nothing into the tree. BERTH_PROPTEST_LOG=FILE appends what each case did
//! to FILE; with BERTH_PROPTEST_EXPLORE=1 as well, a failing `berth create`
//! case is only logged there and the run goes on, to survey many cases.

mod common;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// One step of a JSON path: an object key or an array index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Idx(usize),
}

/// `linux.resources.memory.limit`, `mounts[3].options[0]`.
fn show(path: &[Step]) -> String {
    let mut s = String::new();
    for st in path {
        match st {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The path with its array indices blurred: every element of a list is one
/// field, so that a long list (maskedPaths, capabilities) is hit no more
/// often than a single number.
fn pattern(path: &[Step]) -> String {
    let mut s = String::new();
    for st in path {
        match st {
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Idx(_) => s.push_str("[]"),
        }
    }
    s
}

/// Every node below the root, parents before children.
fn all_paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    here.push(Step::Key(k.clone()));
                    out.push(here.clone());
                    walk(c, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    here.push(Step::Idx(i));
                    out.push(here.clone());
                    walk(c, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn get_mut<'a>(mut v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    for st in path {
        v = match st {
            Step::Key(k) => v.as_object_mut()?.get_mut(k)?,
            Step::Idx(i) => v.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(v)
}

/// What a mutation does at the place it picks.
#[derive(Clone, Debug)]
enum Edit {
    Replace(Value),
    /// A bad value of the kind already there: the number for a number, the
    /// string for a string; a boolean is flipped, a list or map emptied.
    SameKind(Value, Value),
    Remove,
    /// Adds a key berth does not know to the object at the place (or, if
    /// the place is not an object, to its parent).
    AddUnknown(Value),
}

/// A place in the config, picked in two steps (a field pattern, then one of
/// its instances) and an edit to make there.
#[derive(Clone, Debug)]
struct Mutation {
    field: Index,
    instance: Index,
    edit: Edit,
}

/// A mutated config and a readable account of how it was made.
#[derive(Clone)]
struct Mutated {
    base: &'static str,
    config: Value,
    edits: Vec<String>,
}

impl fmt::Debug for Mutated {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} config, {}", self.base, self.edits.join("; "))
    }
}

/// A value's description, with long strings shortened.
fn brief(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 40 => format!("a string of {} bytes", s.len()),
        v => v.to_string(),
    }
}

/// Applies `m` to `config`, returning what it did (None when it found
/// nothing to do, e.g. every field already removed).
fn apply(config: &mut Value, m: &Mutation) -> Option<String> {
    let paths = all_paths(config);
    let mut patterns: Vec<String> = paths.iter().map(|p| pattern(p)).collect();
    patterns.sort();
    patterns.dedup();
    if patterns.is_empty() {
        return None;
    }
    let want = &patterns[m.field.index(patterns.len())];
    let instances: Vec<&Vec<Step>> = paths.iter().filter(|p| pattern(p) == *want).collect();
    let path = instances[m.instance.index(instances.len())].clone();
    let (last, parent) = path.split_last().expect("below the root");
    match &m.edit {
        Edit::Replace(v) => {
            *get_mut(config, &path)? = v.clone();
            Some(format!("{} = {}", show(&path), brief(v)))
        }
        Edit::SameKind(number, string) => {
            let at = get_mut(config, &path)?;
            *at = match at {
                Value::Number(_) => number.clone(),
                Value::String(_) => string.clone(),
                Value::Bool(b) => Value::Bool(!*b),
                Value::Array(_) => json!([]),
                Value::Object(_) => json!({}),
                Value::Null => Value::Null,
            };
            Some(format!("{} = {}", show(&path), brief(at)))
        }
        Edit::Remove => {
            match (get_mut(config, parent)?, last) {
                (Value::Object(o), Step::Key(k)) => {
                    o.remove(k);
                }
                (Value::Array(a), Step::Idx(i)) => {
                    a.remove(*i);
                }
                _ => return None,
            }
            Some(format!("remove {}", show(&path)))
        }
        Edit::AddUnknown(v) => {
            let at = if get_mut(config, &path)?.is_object() {
                &path[..]
            } else {
                parent
            };
            get_mut(config, at)?
                .as_object_mut()?
                .insert("berthUnknownField".into(), v.clone());
            Some(format!("{}.berthUnknownField = {}", show(at), brief(v)))
        }
    }
}

/// Values of another type than the one a field has.
fn wrong_type() -> impl Strategy<Value = Value> {
    select(vec![
        json!("string"),
        json!(7),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!({}),
        json!([1, "two", null]),
        json!({"key": "value"}),
    ])
}

/// Numbers out of the range of some field: negative, 2^31, 2^32-1, 2^63,
/// fractions and huge floats.
fn bad_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => select(vec![
            json!(-1),
            json!(0),
            json!(1),
            json!(i32::MIN),
            json!(1u64 << 31),
            json!(u32::MAX),
            json!(1u64 << 32),
            json!(1u64 << 63),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(0.5),
            json!(-1.5),
            json!(1e300),
            json!(-1e300),
            json!(f64::MAX),
        ]),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
}

/// Strings no field should take as they are: empty, with a NUL byte or a
/// newline, relative, climbing with "..", very long, or printable garbage.
fn bad_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => select(vec![
            json!(""),
            json!("a\0b"),
            json!("\0"),
            json!("/a\0b"),
            json!("relative/path"),
            json!("../outside"),
            json!("/a/b/../../../nonexistent"),
            json!("/dev/../berth-climbed"),
            json!("/proc/self/../../nonexistent"),
            json!("with space,and=comma"),
            json!("a\nsecond line"),
            json!("/a\nb"),
        ]),
        1 => select(vec![256usize, 4097, 70000]).prop_map(|n| json!("a".repeat(n))),
        1 => select(vec![256usize, 4097]).prop_map(|n| json!(format!("/{}", "d/".repeat(n)))),
        1 => "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn bad_value() -> impl Strategy<Value = Value> {
    prop_oneof![wrong_type(), bad_number(), bad_string()]
}

/// Edits in proportion: `same_kind` is the weight of keeping a value's
/// type (so that the config still parses and the value reaches the
/// runtime), against wrong types, removals and unknown keys.
fn mutations(same_kind: u32) -> impl Strategy<Value = Vec<Mutation>> {
    let edit = prop_oneof![
        same_kind => (bad_number(), bad_string()).prop_map(|(n, s)| Edit::SameKind(n, s)),
        4 => bad_value().prop_map(Edit::Replace),
        2 => Just(Edit::Remove),
        1 => bad_value().prop_map(Edit::AddUnknown),
    ];
    let one = (any::<Index>(), any::<Index>(), edit).prop_map(|(field, instance, edit)| Mutation {
        field,
        instance,
        edit,
    });
    prop::collection::vec(one, 1..=3)
}

/// The strategy: one of the two valid configs, with one to three mutations
/// stacked on it.
fn mutated(default: Value, rich: Value, same_kind: u32) -> impl Strategy<Value = Mutated> {
    (any::<bool>(), mutations(same_kind)).prop_map(move |(use_rich, ms)| {
        let (base, mut config) = if use_rich {
            ("rich", rich.clone())
        } else {
            ("default", default.clone())
        };
        let edits = ms.iter().filter_map(|m| apply(&mut config, m)).collect();
        Mutated {
            base,
            config,
            edits,
        }
    })
}

/// The default config of a test bundle: `berth spec`'s, with the test
/// helper's process (no terminal, the probe) and hostname.
fn default_config(b: &Bundle) -> Value {
    b.config.clone()
}

/// The rich config's linux.cgroupsPath, made the container's own by
/// [`instantiate`] (unless a mutation changed it).
const CGROUP_PLACEHOLDER: &str = "berth-prop/CONTAINER-ID";

fn instantiate(config: &Value, id: &str) -> Value {
    let mut c = config.clone();
    if let Some(p) = c.pointer_mut("/linux/cgroupsPath") {
        if p == CGROUP_PLACEHOLDER {
            *p = json!(format!("berth-prop/{id}"));
        }
    }
    c
}

/// A valid config that uses much more of the spec: bind and tmpfs mounts,
/// cgroup resources and a cgroups path, hooks of every kind, a seccomp
/// profile, rlimits, a user with groups and umask, environment, every
/// namespace but user, time offsets, a personality, sysctls, a device,
/// annotations and a domain name.
fn rich_config(b: &Bundle) -> Value {
    let mut c = b.config.clone();
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/mnt/host-etc", "type": "bind", "source": "/etc",
        "options": ["rbind", "ro", "nosuid", "nodev"]}),
    );
    mounts.push(
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=755", "size=1m"]}),
    );
    let linux = &mut c["linux"];
    linux["resources"] = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"}
        ],
        "memory": {"limit": 268435456, "reservation": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 256}
    });
    linux["devices"] = json!([{"path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3,
        "fileMode": 438, "uid": 0, "gid": 0}]);
    linux["sysctl"] = json!({"kernel.shmmni": "4096", "net.ipv4.ip_forward": "0"});
    linux["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kexec_load", "open_by_handle_at"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    linux["rootfsPropagation"] = json!("rslave");
    linux["cgroupsPath"] = json!(CGROUP_PLACEHOLDER);
    linux["personality"] = json!({"domain": "LINUX"});
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    linux["timeOffsets"] = json!({"monotonic": {"secs": 10, "nanosecs": 0},
        "boottime": {"secs": -1, "nanosecs": 500}});
    c["hooks"] = json!({
        "prestart": [{"path": "/bin/true"}],
        "createRuntime": [{"path": "/bin/true", "args": ["true", "x"], "env": ["A=b"], "timeout": 5}],
        "createContainer": [{"path": "/bin/true"}],
        "startContainer": [{"path": "/bin/true"}],
        "poststart": [{"path": "/bin/true"}],
        "poststop": [{"path": "/bin/true", "timeout": 5}]
    });
    let p = &mut c["process"];
    p["rlimits"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "RLIMIT_NPROC", "soft": 512, "hard": 1024}));
    p["user"] = json!({"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [10, 20]});
    p["env"].as_array_mut().unwrap().push(json!("HOME=/root"));
    p["cwd"] = json!("/tmp");
    p["oomScoreAdj"] = json!(100);
    c["domainname"] = json!("example.org");
    c["annotations"] = json!({"org.example.key": "value"});
    c
}

const SEED: u64 = 0x6265_7274_6870_726f;

fn runner(cases: u32, max_shrink_iters: u32) -> TestRunner {
    let seed = std::env::var("BERTH_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters,
        ..Config::default()
    })
}

/// Does `msg` name the config field (or the file) at fault? Every field
/// berth names is written as its JSON path from the top of config.json,
/// so it starts with one of the spec's top-level keys.
fn names_field(msg: &str) -> bool {
    const FIELDS: &[&str] = &[
        "ociVersion",
        "root:",
        "root.",
        "process:",
        "process.",
        "linux:",
        "linux.",
        "mounts[",
        "hooks.",
        "hostname",
        "domainname",
        "annotations",
    ];
    FIELDS.iter().any(|f| msg.contains(f))
}

/// A parse error of config.json names the field through its JSON path
/// (`invalid field linux.resources.memory.limit: ...`) or, for a missing
/// or unknown top-level key, in the serde message.
fn parse_error_names_field(msg: &str) -> bool {
    msg.contains("invalid field ") || names_field(msg)
}

/// Property (a): parsing and validating a mutated config returns, never
/// panics, and an error is one line naming the field.
///
/// The workspace's dev profile has panic = "abort", but cargo builds test
/// targets and what they link with panic = "unwind" (the harness needs it),
/// so a panic is caught here and reported with the mutation that caused it.
#[test]
fn mutated_configs_never_panic_the_validator() {
    let b = Bundle::new("prop-pure");
    let strategy = mutated(default_config(&b), rich_config(&b), 4);
    let bundle = b.dir.clone();
    let result = runner(2000, 4096).run(&strategy, |m| {
        let bytes = serde_json::to_vec(&m.config).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            berth::spec::parse_ext(&bytes).map(|(spec, _)| {
                berth::spec::validate_for_create(&spec, &bundle).map_err(|e| e.to_string())
            })
        }));
        if let Ok(r) = &outcome {
            let what = match r {
                Ok(Ok(_)) => "valid".to_string(),
                Ok(Err(e)) | Err(e) => e.chars().take(300).collect(),
            };
            log(&format!("{m:?} => {what}"));
        }
        let msg = match outcome {
            Err(_) => return Err(TestCaseError::fail("the parser or validator panicked")),
            Ok(Ok(Ok(_))) => return Ok(()),
            Ok(Err(e)) => {
                prop_assert!(
                    parse_error_names_field(&e),
                    "parse error names no field: {e}"
                );
                e
            }
            Ok(Ok(Err(e))) => {
                prop_assert!(names_field(&e), "validation error names no field: {e}");
                e
            }
        };
        prop_assert!(!msg.contains('\n'), "error of more than one line: {msg}");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// With BERTH_PROPTEST_LOG=FILE, what each case did is appended to FILE.
fn log(line: &str) {
    use std::io::Write;
    if let Ok(p) = std::env::var("BERTH_PROPTEST_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

static OUT: AtomicU32 = AtomicU32::new(0);

/// Runs berth on `b` with output to files (a created container inherits
/// them), ending it after `limit`.
fn berth(b: &Bundle, args: &[&str], limit: Duration) -> Result<Output, String> {
    let n = OUT.fetch_add(1, Ordering::SeqCst);
    let out_path = b.dir.join(format!("prop-out.{n}"));
    let err_path = b.dir.join(format!("prop-err.{n}"));
    let mut child = b
        .berth()
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .map_err(|e| format!("spawning berth: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "berth {} still running after {limit:?}",
                args.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    })
}

/// The directories a container of `config` named `id` may make in every
/// cgroup hierarchy: its cgroup and each parent below the root (but the
/// shared `berth` parent of the default path), as berth resolves
/// linux.cgroupsPath. Empty when berth would refuse the path.
fn cgroup_dirs(config: &Value, id: &str) -> Vec<PathBuf> {
    let raw = match config.pointer("/linux/cgroupsPath").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => format!("/berth/{id}"),
    };
    if raw.contains('\0') {
        return Vec::new();
    }
    let mut parts: Vec<&str> = Vec::new();
    if !raw.starts_with('/') {
        parts.push("berth");
    }
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Vec::new(),
            c => parts.push(c),
        }
    }
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        hierarchies.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let mut out = Vec::new();
    for h in hierarchies {
        let mut d = h.clone();
        for (i, c) in parts.iter().enumerate() {
            d.push(c);
            if !(i == 0 && *c == "berth") {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Nothing of the container is left: no state, process or cgroup, and none
/// of the cgroup directories in `made` (those that did not exist before).
fn nothing_left(b: &Bundle, id: &str, made: &[PathBuf]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| assert_nothing_left(b, id))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "assert_nothing_left failed".into())
    })?;
    for d in made {
        if d.exists() {
            return Err(format!("cgroup {} left behind", d.display()));
        }
    }
    Ok(())
}

/// One case of property (b): whether berth created the container, or what
/// it did wrong.
fn create_cleanly(m: &Mutated) -> Result<bool, String> {
    let mut b = Bundle::new("prop");
    let id = b.id("c");
    b.config = instantiate(&m.config, &id);
    b.write_config();
    let made: Vec<PathBuf> = cgroup_dirs(&b.config, &id)
        .into_iter()
        .filter(|d| !d.exists())
        .collect();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = berth(
        &b,
        &["create", "--bundle", &dir, &id],
        Duration::from_secs(20),
    )?;
    let err = stderr(&out);
    log(&format!(
        "{m:?} => {:?}: {}",
        out.status.code(),
        err.trim_end()
    ));
    let Some(code) = out.status.code() else {
        return Err(format!(
            "berth create died of {:?}; stderr: {err}",
            out.status
        ));
    };
    let verdict = if code == 0 {
        let del = berth(&b, &["delete", "--force", &id], Duration::from_secs(20))?;
        match del.status.code() {
            Some(0) => Ok(true),
            _ => Err(format!("delete --force failed: {}", stderr(&del))),
        }
    } else {
        one_line_naming_a_field(code, &err).map(|()| false)
    };
    // Whatever the verdict, nothing may be left.
    nothing_left(&b, &id, &made)?;
    verdict
}

/// A failed create's exit status and stderr: 1 and one line, berth's,
/// naming the field.
fn one_line_naming_a_field(code: i32, err: &str) -> Result<(), String> {
    if code != 1 {
        return Err(format!("exit status {code}; stderr: {err}"));
    }
    let lines: Vec<&str> = err.trim_end().lines().collect();
    let [line] = lines[..] else {
        return Err(format!("not one line on stderr: {err:?}"));
    };
    if !line.starts_with("berth: ") {
        return Err(format!("not berth's error: {line}"));
    }
    let named = if line.contains("config.json: ") {
        parse_error_names_field(line)
    } else {
        names_field(line)
    };
    if !named {
        return Err(format!("error names no field: {line}"));
    }
    Ok(())
}

/// Property (b): the real `berth create` of a mutated config never dies of
/// a signal; it succeeds (and `delete --force` then removes everything), or
/// fails with status 1 and one line naming the field; either way nothing
/// is left.
#[test]
fn mutated_configs_fail_cleanly_in_berth_create() {
    let template = Bundle::new("prop-base");
    let (default, rich) = (default_config(&template), rich_config(&template));
    drop(template);
    // Both starting points are valid: a mutation is what makes a create fail.
    for config in [&default, &rich] {
        let m = Mutated {
            base: "unmutated",
            config: config.clone(),
            edits: Vec::new(),
        };
        assert_eq!(create_cleanly(&m), Ok(true), "unmutated config refused");
    }
    let strategy = mutated(default, rich, 12);
    let result = runner(64, 32).run(&strategy, |m| {
        let r = create_cleanly(&m);
        if let Err(e) = &r {
            log(&format!("FAILED {m:?}: {e}"));
            if std::env::var("BERTH_PROPTEST_EXPLORE").is_ok() {
                return Ok(());
            }
        }
        r.map(|_| ()).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
