#!/bin/bash
# Installs berth and containerd-shim-berth-v2 to /usr/local/bin and runs a
# busybox container from a freshly made demo bundle. Run as root on Debian
# 12 with a Rust toolchain (Rust >= 1.85). Installs only what the demo needs
# (busybox-static, jq) and says so; builds where CARGO_TARGET_DIR says.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in busybox-static jq; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "demo: installing ${need[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
command -v cargo >/dev/null || { echo "demo: cargo not found: install Rust (rustup, >= 1.85) first" >&2; exit 1; }
cargo build --release -p berth -p berth-shim
out=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
install -m 0755 "$out/berth" /usr/local/bin/berth
install -m 0755 "$out/containerd-shim-berth-v2" /usr/local/bin/
# Man pages (berth(8) and one per command) and shell completions.
/usr/local/bin/berth man /usr/local/share/man/man8
mkdir -p /usr/local/share/bash-completion/completions /usr/local/share/zsh/site-functions \
  /usr/local/share/fish/vendor_completions.d
/usr/local/bin/berth completion bash > /usr/local/share/bash-completion/completions/berth
/usr/local/bin/berth completion zsh > /usr/local/share/zsh/site-functions/_berth
/usr/local/bin/berth completion fish > /usr/local/share/fish/vendor_completions.d/berth.fish
echo "demo: installed /usr/local/bin/berth and /usr/local/bin/containerd-shim-berth-v2, man pages in /usr/local/share/man/man8, completions for bash, zsh and fish"
demo=${BERTH_DEMO_DIR:-/tmp/berth-demo}
rm -rf "$demo"
mkdir -p "$demo/rootfs/bin"
cp /bin/busybox "$demo/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$demo/rootfs/bin/$a"; done
mkdir -p "$demo/rootfs/"{proc,sys,dev,etc,tmp}
echo 'root:x:0:0:root:/root:/bin/sh' > "$demo/rootfs/etc/passwd"
/usr/local/bin/berth spec --bundle "$demo"
# Not interactive: print what the container sees instead of opening a shell.
jq '.process.terminal = false
    | .process.args = ["sh", "-c", "echo hello from $(hostname); id; cat /proc/self/cgroup | head -3; ls /"]' \
  "$demo/config.json" > "$demo/config.json.new" && mv "$demo/config.json.new" "$demo/config.json"
/usr/local/bin/berth run --bundle "$demo" "demo-$$"
echo "demo: ran a container from $demo with /usr/local/bin/berth"
