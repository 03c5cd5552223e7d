#!/bin/bash
# cgroupv2-guest.sh: run the cgroup v2 subset of berth's tests on a pure
# cgroup v2 hierarchy, inside a throwaway QEMU guest started by vm-run, as
# root: berth-cgroups' unit and effect tests (cgroups/tests/), and the
# integration suite's container tests (tests/tests/cgroups.rs), which run
# real containers with the berth binary inside the guest.
#
# usage: hack/cgroupv2-guest.sh [TEST-FILTER...]
#   TEST-FILTER   passed to the test binaries (libtest filters), e.g. "oom"
#
# Environment:
#   CARGO_TARGET_DIR  where to build (default: target/ of the repo)
#   VM_RUN            the vm-run tool (default: hack/vm-run if present, else
#                     /work/shared/tools/vm-run)
#   VM_RUN_TIMEOUT    bound for the guest run in seconds (default here: 900)
#
# The binaries are built on the host (the workspace links them statically)
# and run unchanged in the guest, which sees the host's / read-only. Exit
# status: that of the tests (124/125: vm-run's timeout / boot failure).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${VM_RUN:-}" ]; then
  if [ -x "$HERE/vm-run" ]; then VM_RUN=$HERE/vm-run; else VM_RUN=/work/shared/tools/vm-run; fi
fi
export VM_RUN_TIMEOUT=${VM_RUN_TIMEOUT:-900}
# Waits in the container tests are sized for the host; the TCG guest runs
# programs ~40x slower, so give them ten times as long there.
export BERTH_TEST_WAIT_SCALE=${BERTH_TEST_WAIT_SCALE:-10}

cd "$ROOT"
# The test executables, from cargo's JSON build messages (test artifacts
# only: the probe and berth binaries are built too but are not test suites).
cargo build -p berth
mapfile -t BINS < <(
  { cargo test -p berth-cgroups --no-run --message-format=json
    cargo test -p berth-tests --test cgroups --no-run --message-format=json; } |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null) | .executable'
)
[ "${#BINS[@]}" -gt 0 ] || { echo "cgroupv2-guest: no test binaries built" >&2; exit 1; }

# One guest for all binaries: boot costs seconds, so the loop runs inside.
# --test-threads=2 matches the guest's 2 vCPUs; tests are independent.
GUEST_SCRIPT='
set -u
rc=0
echo "guest: $(uname -r), $(grep " /sys/fs/cgroup " /proc/self/mountinfo | cut -d" " -f9-)"
for bin in "$@"; do
  case "$bin" in --) shift; break;; esac
done
for bin in $BERTH_BINS; do
  echo "guest: running $(basename "$bin")"
  start=$(date +%s.%N)
  "$bin" --test-threads=2 "$@" || rc=$?
  echo "guest: $(basename "$bin") took $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$start}") s"
done
exit $rc
'
export BERTH_BINS="${BINS[*]}"
start=$(date +%s.%N)
set +e
"$VM_RUN" -- bash -c "$GUEST_SCRIPT" guest -- "$@"
rc=$?
set -e
echo "cgroupv2-guest: exit $rc, $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$start}") s in total (boot included)"
exit $rc
