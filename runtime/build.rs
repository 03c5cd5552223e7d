//! Release builds of the `berth` binary lay out the functions of a
//! container's lifecycle together (link-order.txt, made by hack/link-order):
//! the kernel maps file pages around every page a process touches, so code
//! packed into few pages keeps the runtime's RSS down.

use std::path::Path;

#[path = "build-link.rs"]
mod link;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=BERTH_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=BERTH_LINK_MAP");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let wanted = std::env::var("BERTH_LINK_ORDER").as_deref() != Ok("0");
    // The ordering option is lld's.
    let lld_target = link::lld();
    let list = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("link-order.txt");
    link::pack_relocations("berth");
    if release && wanted && lld_target && list.exists() {
        println!(
            "cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        // Functions renamed since the list was made are simply not moved.
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
    // hack/link-order reads the symbols of a stripped release build from
    // the linker's map: building without stripping would be another
    // profile, whose symbol names differ.
    if let Ok(map) = std::env::var("BERTH_LINK_MAP") {
        if lld_target {
            println!("cargo:rustc-link-arg-bin=berth=-Wl,-Map={map}");
            println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-demangle");
        }
    }
}
