#!/bin/bash
# The whole test suite: formatting, lints, unit tests, the integration
# suite that runs real containers on this host, and, in throwaway QEMU
# guests, the cgroup v2 subset and the systemd cgroup driver. Run as root on
# Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The integration tests run the berth binary, so build it first.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads 2
# Release builds link differently (functions in link order, packed
# relocations): the lifecycle and exec suites run against release berth
# too, and the release shim must start.
cargo build --release -p berth -p berth-shim
REL=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
BERTH_BIN=$(readlink -f "$REL/berth") \
  cargo test -p berth-tests --test lifecycle --test exec -- --test-threads 2
"$REL/containerd-shim-berth-v2" -info > /dev/null
# The README's first command, as written, in a fresh clone.
hack/readme-check.sh
# The OCI runtime validation suite (opencontainers/runtime-tools, from
# ../shared/conformance) against debug berth: every program listed in
# tests/conformance/expected-berth.txt must pass (docs/conformance.md).
if [ "${BERTH_SKIP_CONFORMANCE:-0}" != 1 ]; then
  hack/conformance.sh
fi
# Real clients: containerd 1.7 and 2.1 (from Debian's newer suites) driving
# berth through their stock runc shim (each scenario also run with runc) and
# through berth's own shim, by ctr and by the Kubernetes CRI; podman; Docker
# Engine 20.10 and 26.1 with berth as a path runtime and as a shim runtime.
if [ "${BERTH_SKIP_CLIENTS:-0}" != 1 ]; then
  tests/clients/containerd.sh
  tests/clients/cri.sh
  tests/clients/podman.sh
  tests/clients/docker.sh
fi
if [ "${BERTH_SKIP_V2_GUEST:-0}" != 1 ]; then
  hack/cgroupv2-guest.sh
  # PID 1 here is not systemd: the systemd cgroup driver is tested in a
  # guest booted with systemd, on cgroup v2 and on hybrid v1.
  hack/systemd-guest.sh
  # Neither AppArmor nor SELinux is on here: both in guests that have them.
  hack/lsm-guest.sh
  # A stock node: systemd, cgroup v2 and AppArmor together, driven by
  # containerd 2.1's CRI, ctr and Docker, berth in every seat beside runc.
  hack/node-guest.sh
fi
