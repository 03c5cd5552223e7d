//! Shared by the build scripts of berth's binaries (runtime/build.rs,
//! shim/build.rs): what the linker and C library of this build support.

/// Whether the C library linked in (the build host's, the binary is
/// static) relocates a static PIE from DT_RELR, which glibc does since 2.36.
pub fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    // "glibc 2.36"
    let v = String::from_utf8_lossy(&out.stdout);
    let mut it = v
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (major, minor)
}

pub fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (...)"
    v.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}

/// Whether rustc links with its bundled lld here (x86_64 Linux, since
/// 1.90); elsewhere the linker may be GNU ld, which lacks lld's options.
pub fn lld() -> bool {
    std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && rustc_minor().is_some_and(|m| m >= 90)
}

/// Packs relative relocations (DT_RELR) in a release build of `bin`: the
/// static PIE relocates itself at start, and reading a few hundred KB of
/// RELA entries costs as much RSS as it does time. Needs glibc >= 2.36.
pub fn pack_relocations(bin: &str) {
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if release && lld() && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin={bin}=-Wl,-z,pack-relative-relocs");
    }
}

/// Hands `list` (relative to the package) to lld as the symbol ordering of
/// a release build of `bin`, unless BERTH_LINK_ORDER=0.
pub fn order(bin: &str, list: &str) {
    println!("cargo:rerun-if-changed={list}");
    println!("cargo:rerun-if-env-changed=BERTH_LINK_ORDER");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let wanted = std::env::var("BERTH_LINK_ORDER").as_deref() != Ok("0");
    let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(list);
    if release && wanted && lld() && path.exists() {
        println!(
            "cargo:rustc-link-arg-bin={bin}=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        // Functions renamed since the list was made are simply not moved.
        println!("cargo:rustc-link-arg-bin={bin}=-Wl,--no-warn-symbol-ordering");
    }
    // hack/link-order reads the symbols of a stripped release build from
    // the linker's map (BERTH_LINK_MAP=DIR: DIR/<bin>.map): building
    // without stripping would be another profile, whose symbol names
    // differ.
    println!("cargo:rerun-if-env-changed=BERTH_LINK_MAP");
    if let Ok(dir) = std::env::var("BERTH_LINK_MAP") {
        if lld() {
            println!("cargo:rustc-link-arg-bin={bin}=-Wl,-Map={dir}/{bin}.map");
            println!("cargo:rustc-link-arg-bin={bin}=-Wl,--no-demangle");
        }
    }
}
