#!/bin/bash
# berth under Debian's podman and conmon (--runtime), with private storage
# and configuration under a scratch directory, each scenario also run with
# runc. Prints one line per scenario and a final "N passed, N failed".
#
# usage: tests/clients/podman.sh
# Needs: root, podman + conmon from Debian, runc, busybox-static, the berth
# binary (BERTH_BIN or target/x86_64-unknown-linux-gnu/debug/berth).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/debug/berth}
RUNC=${RUNC_BIN:-/usr/sbin/runc}
W=$(mktemp -d /tmp/berth-podman.XXXXXX)
PASS=0; FAIL=0
ok()  { PASS=$((PASS+1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL+1)); echo "FAIL $*"; }
check() { if [ "$2" = "$3" ]; then ok "$LABEL $1"; else bad "$LABEL $1: expected [$2], got [$3]"; fi; }

cleanup() {
  # Containers this script made, then its storage (vfs layers are plain dirs).
  $P rm -af >/dev/null 2>&1 || true
  rm -rf "$W" 2>/dev/null || true
}

command -v podman >/dev/null || { echo "podman is not installed" >&2; exit 1; }
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >&2; exit 1; }
BIG=$W/stdin.bin
head -c 3145728 /dev/urandom > "$BIG"
BIG_SUM=$(md5sum < "$BIG" | cut -d' ' -f1)
OUT="$W/image" bash "$HERE/build-image.sh" > "$W/build-image.log" 2>&1 || { cat "$W/build-image.log"; exit 1; }

# The host lacks CAP_SYS_RESOURCE: podman's default nofile/nproc limits
# (the hard maximum) cannot be set, so pin them.
cat > "$W/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$W/events.log"
EOF
cat > "$W/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$W/storage"
runroot = "$W/run"
EOF
export CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf
P="podman --root $W/storage --runroot $W/run --storage-driver vfs --cgroup-manager cgroupfs"
trap cleanup EXIT
# The archive holds two images: name the one wanted by its ref.name.
$P pull "oci-archive:$W/image/test-images.oci.tar:localhost/test/busybox:latest" >/dev/null 2>&1
I=$($P images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep busybox | head -1)
[ -n "$I" ] || { echo "image import failed"; $P images; exit 1; }

for rt in "$RUNC" "$BERTH"; do
  LABEL="podman $(podman --version | awk '{print $3}') / $(basename "$rt"):"
  R="$P --runtime $rt"
  r=$($R run --rm --network none "$I" echo hello 2>&1); check "run --rm output" hello "$r"
  $R run --rm --network none "$I" sh -c 'exit 5' >/dev/null 2>&1; check "exit code" 5 $?
  $R run -d --name c1 --network none "$I" sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
  check "detached run" 0 $?
  sleep 0.3
  r=$($R exec c1 sh -c 'echo exec-out; exit 6' 2>&1); local_rc=$?
  check "exec output" exec-out "$r"; check "exec exit code" 6 $local_rc
  $R pause c1 >/dev/null 2>&1; r=$($R inspect -f '{{.State.Status}}' c1 2>&1); check "pause" paused "$r"
  $R unpause c1 >/dev/null 2>&1; r=$($R inspect -f '{{.State.Status}}' c1 2>&1); check "unpause" running "$r"
  $R stop -t 5 c1 >/dev/null 2>&1; r=$($R inspect -f '{{.State.ExitCode}}' c1 2>&1); check "stop (SIGTERM trapped)" 0 "$r"
  $R rm c1 >/dev/null 2>&1; check "rm" 0 $?
  # A process that ignores SIGTERM: stop falls back to SIGKILL after the timeout.
  $R run -d --name c2 --network none "$I" sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
  sleep 0.3
  $R stop -t 1 c2 >/dev/null 2>&1; r=$($R inspect -f '{{.State.ExitCode}}' c2 2>&1); check "stop falls back to SIGKILL" 137 "$r"
  $R rm c2 >/dev/null 2>&1
  $R run -d --name c3 --network none "$I" sleep 1000 >/dev/null 2>&1
  $R kill c3 >/dev/null 2>&1; $R wait c3 >/dev/null 2>&1
  r=$($R inspect -f '{{.State.Status}}' c3 2>&1); check "kill" exited "$r"
  $R rm -f c3 >/dev/null 2>&1; check "rm -f" 0 $?
  # What podman asks of a runtime beyond runc's basics: tmpcopyup (on
  # --read-only's /tmp and /run, --tmpfs and --mount type=tmpfs), all of a
  # large stdin through exec -i. (podman 4.3 refuses a --workdir the image
  # lacks itself, before any runtime runs: that case is in containerd.sh.)
  r=$($R run --rm --network none --read-only "$I" sh -c 'touch /tmp/ok && echo writable-tmp; touch /x 2>/dev/null || echo ro-root' 2>&1 | tr '\n' ' ')
  check "--read-only (tmpcopyup /tmp)" "writable-tmp ro-root " "$r"
  r=$($R run --rm --network none --tmpfs /etc "$I" sh -c 'cat /etc/passwd | head -1 | cut -d: -f1' 2>&1)
  check "--tmpfs over an image directory keeps its files" root "$r"
  r=$($R run --rm --network none --mount type=tmpfs,destination=/etc "$I" sh -c 'test -f /etc/passwd && echo copied' 2>&1)
  check "--mount type=tmpfs" copied "$r"
  $R run -d --name c4 --network none "$I" sleep 1000 >/dev/null 2>&1
  r=$($R exec -i c4 md5sum < "$BIG" 2>&1 | cut -d' ' -f1)
  check "exec -i: 3 MiB of stdin arrive whole" "$BIG_SUM" "$r"
  $R rm -f c4 >/dev/null 2>&1
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
