//! Release builds of the shim pack their relocations (see
//! runtime/build-link.rs).

#[path = "../runtime/build-link.rs"]
mod link;

fn main() {
    link::pack_relocations("containerd-shim-berth-v2");
}
