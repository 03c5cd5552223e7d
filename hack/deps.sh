#!/bin/bash
# Installs what building and testing berth needs on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in busybox-static jq qemu-system-x86 xz-utils runc podman conmon; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found: install a Rust toolchain (rustup, Rust >= 1.80) first" >&2
  exit 1
fi
