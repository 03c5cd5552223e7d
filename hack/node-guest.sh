#!/bin/bash
# node-guest.sh: a stock node, end to end. One throwaway QEMU guest booted by
# vm-run like a typical Kubernetes node / Docker host: the host's systemd as
# PID 1 (--init systemd), pure cgroup v2, Debian's stock kernel with AppArmor
# on. In it tests/clients/node.sh drives berth (behind containerd's runc shim,
# and its own shim) beside runc through containerd 2.1's CRI plugin (systemd
# cgroups, the default AppArmor profile, kubelet-style pod slices), `ctr run`
# with --runc-systemd-cgroup, and Docker Engine 26 (systemd cgroup driver,
# docker-default profile). This host's PID 1 is not systemd, its cgroups are
# v1 hybrid and it has no AppArmor, so none of this can run on the host.
#
# usage: hack/node-guest.sh [cri] [ctr] [docker]   (default: all three)
#
# Prepared on the host (the guest has no network; it sees the host's /
# read-only): the workspace's binaries, containerd 2.1 from sid and
# docker.io 26 with its containerd and CLI from trixie (hack/clients/fetch.sh),
# the CRI proto (golang-k8s-cri-api-dev from sid) and the client's stubs,
# the test images (tests/clients/build-image.sh),
# and the host packages the guest uses: apparmor (apparmor_parser), runc,
# busybox-static, jq, python3-grpcio, python3-grpc-tools.
#
# Environment: see hack/guest-lib.sh; NODE_MEM (guest MiB, default 3072);
# NODE_LOGS (default: a fresh /tmp/berth-node-logs.XXXXXX, kept) receives the
# daemons' logs and the guest's journal; SEATS (see tests/clients/node.sh).
# Exit status: that of tests/clients/node.sh (124/125: vm-run's timeout /
# boot failure).
set -euo pipefail
. "$(dirname "$0")/guest-lib.sh"
. "$ROOT/tests/clients/lib.sh"

start=$(date +%s.%N)
cargo build --workspace --bins -q
apt_install apparmor runc busybox-static jq python3-grpcio python3-grpc-tools
NODE_SID=$(bash hack/clients/fetch.sh sid containerd golang-k8s-cri-api-dev)
NODE_TRIXIE=$(bash hack/clients/fetch.sh trixie containerd docker.io docker-cli)
CRI_PROTO=$NODE_SID/usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto
# The client's stubs, generated here once (protoc costs a minute under TCG):
# client.py makes them before it connects anywhere.
CRI_GEN_DIR=${CRI_GEN_DIR:-/var/tmp/berth-node-crigen}
mkdir -p "$CRI_GEN_DIR"
CRI_PROTO=$CRI_PROTO /usr/bin/python3 tests/clients/cri/client.py --gen-dir "$CRI_GEN_DIR" \
  --endpoint unix:///nonexistent --rpc-timeout 0.1 version >/dev/null 2>&1 || true
ls "$CRI_GEN_DIR"/*/api_pb2_grpc.py >/dev/null || { echo "node-guest: CRI stubs not generated" >&2; exit 1; }
# The test images, built here (gzip -9 is slow under TCG).
NODE_IMAGE_DIR=$(mktemp -d /var/tmp/berth-node-image.XXXXXX)
trap 'rm -rf "$NODE_IMAGE_DIR"' EXIT
OUT=$NODE_IMAGE_DIR bash tests/clients/build-image.sh > "$NODE_IMAGE_DIR/build.log" 2>&1 \
  || { cat "$NODE_IMAGE_DIR/build.log" >&2; exit 1; }
NODE_LOGS=${NODE_LOGS:-$(mktemp -d /tmp/berth-node-logs.XXXXXX)}
export NODE_SID NODE_TRIXIE CRI_PROTO CRI_GEN_DIR NODE_LOGS NODE_IMAGE_DIR
echo "node-guest: prepared in $(elapsed "$start") s; logs will be in $NODE_LOGS"

set +e
"$VM_RUN" --init systemd --mem "${NODE_MEM:-3072}" --out "$NODE_LOGS" -- \
  bash "$ROOT/tests/clients/node.sh" "$@"
r=$?
set -e
echo "node-guest: exit $r, $(elapsed "$start") s in total (boot included); logs: $NODE_LOGS"
exit $r
