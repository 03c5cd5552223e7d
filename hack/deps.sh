#!/bin/bash
# Installs what building and testing berth needs on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in busybox-static jq qemu-system-x86 xz-utils runc podman conmon python3-grpcio python3-grpc-tools systemd dbus \
  apparmor selinux-policy-default policycoreutils selinux-utils uidmap; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# systemd and dbus: the systemd-driver guest boots the host's own.
# apparmor (apparmor_parser) and SELinux's reference policy and tools: the
# LSM guests load them from the host's /; none of them turns an LSM on here.
# The v2 guest resolves its kernel package through apt's lists: make sure
# they exist even when every package above is already installed.
if [ "${#need[@]}" -gt 0 ] || ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  apt-get update -q
fi
if [ "${#need[@]}" -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found: install a Rust toolchain (rustup, Rust >= 1.85) first" >&2
  exit 1
fi
