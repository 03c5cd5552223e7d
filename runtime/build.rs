//! Release builds of the `berth` binary lay out the functions of a
//! container's lifecycle together (link-order.txt, made by hack/link-order):
//! the kernel maps file pages around every page a process touches, so code
//! packed into few pages keeps the runtime's RSS down.

#[path = "build-link.rs"]
mod link;

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_LINK_MAP");
    link::pack_relocations("berth");
    link::order("berth", "link-order.txt");
    // hack/link-order reads the symbols of a stripped release build from
    // the linker's map: building without stripping would be another
    // profile, whose symbol names differ.
    if let Ok(map) = std::env::var("BERTH_LINK_MAP") {
        if link::lld() {
            println!("cargo:rustc-link-arg-bin=berth=-Wl,-Map={map}");
            println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-demangle");
        }
    }
}
