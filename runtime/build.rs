//! Release builds of the `berth` binary lay out the functions of a
//! container's lifecycle together (link-order.txt, made by hack/link-order):
//! the kernel maps file pages around every page a process touches, so code
//! packed into few pages keeps the runtime's RSS down.

#[path = "build-link.rs"]
mod link;

fn main() {
    // `berth --version` names the commit it was built from, as runc does.
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
    link::pack_relocations("berth");
    link::order("berth", "link-order.txt");
}
