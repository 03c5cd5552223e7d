//! Release builds of the `berth` binary lay out the functions of a
//! container's lifecycle together (link-order.txt, made by hack/link-order):
//! the kernel maps file pages around every page a process touches, so code
//! packed into few pages keeps the runtime's RSS down.

#[path = "build-link.rs"]
mod link;

fn main() {
    link::pack_relocations("berth");
    link::order("berth", "link-order.txt");
}
