//! Release builds of the shim pack their relocations and lay out first the
//! functions berth's lifecycle runs, which the shim runs too as a library
//! (see runtime/build-link.rs and runtime/build.rs).

#[path = "../runtime/build-link.rs"]
mod link;

fn main() {
    link::pack_relocations("containerd-shim-berth-v2");
    link::order("containerd-shim-berth-v2", "../runtime/link-order.txt");
}
