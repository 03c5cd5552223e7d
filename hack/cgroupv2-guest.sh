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
# Environment: see hack/guest-lib.sh. Exit status: that of the tests
# (124/125: vm-run's timeout / boot failure).
set -euo pipefail
. "$(dirname "$0")/guest-lib.sh"

cargo build -p berth
mapfile -t BINS < <(
  test_bins -p berth-cgroups
  test_bins -p berth-tests --test cgroups
)
# The robustness suite's cgroup cases (busy, frozen and orphaned cgroups, a
# killed create, SIGKILL of a paused container) on v2: these filters apply
# to that binary alone.
ROBUST=$(test_bins -p berth-tests --test robustness)
ROBUST_FILTERS="cgroup paused killed_at_any_point"
# `berth check` on a pure cgroup v2 host.
CLI=$(test_bins -p berth-tests --test cli_forms)
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
echo "guest: running $(basename "$BERTH_ROBUST") ($BERTH_ROBUST_FILTERS)"
"$BERTH_ROBUST" --test-threads=2 $BERTH_ROBUST_FILTERS || rc=$?
echo "guest: running $(basename "$BERTH_CLI") (check)"
"$BERTH_CLI" --test-threads=2 check_reports || rc=$?
exit $rc
'
export BERTH_BINS="${BINS[*]}" BERTH_ROBUST="$ROBUST" BERTH_ROBUST_FILTERS="$ROBUST_FILTERS" BERTH_CLI="$CLI"
start=$(date +%s.%N)
set +e
"$VM_RUN" -- bash -c "$GUEST_SCRIPT" guest -- "$@"
rc=$?
set -e
echo "cgroupv2-guest: exit $rc, $(elapsed "$start") s in total (boot included)"
exit $rc
