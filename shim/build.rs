//! Release builds of the shim pack their relocations and lay out first the
//! functions its daemon runs (shim/link-order.txt, made by
//! hack/link-order; see runtime/build-link.rs).

#[path = "../runtime/build-link.rs"]
mod link;

fn main() {
    link::pack_relocations("containerd-shim-berth-v2");
    // The shim's own list (its daemon's code first), else berth's.
    let own = std::path::Path::new("link-order.txt");
    let list = if own.exists() {
        "link-order.txt"
    } else {
        "../runtime/link-order.txt"
    };
    link::order("containerd-shim-berth-v2", list);
}
