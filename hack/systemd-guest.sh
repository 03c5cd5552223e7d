#!/bin/bash
# systemd-guest.sh: run the systemd cgroup driver's tests (tests/tests/
# systemd.rs, the #[ignore]d ones) against a real systemd: a throwaway QEMU
# guest booted by vm-run with the host's systemd as PID 1 and its D-Bus
# system bus, booted twice: on pure cgroup v2, and on a hybrid v1 layout
# like this host's (systemd.unified_cgroup_hierarchy=0). This host's PID 1
# is not systemd, so the driver cannot be exercised here.
#
# usage: hack/systemd-guest.sh [TEST-FILTER...]
#
# Environment: see hack/guest-lib.sh. Exit status: that of the tests
# (124/125: vm-run's timeout / boot failure).
set -euo pipefail
. "$(dirname "$0")/guest-lib.sh"

cargo build -p berth
BIN=$(test_bins -p berth-tests --test systemd)
[ -n "$BIN" ] || { echo "systemd-guest: test binary not built" >&2; exit 1; }

rc=0
for layout in unified hybrid; do
  append=
  [ "$layout" = hybrid ] && append="systemd.unified_cgroup_hierarchy=0"
  start=$(date +%s.%N)
  set +e
  VM_RUN_APPEND="$append" "$VM_RUN" --init systemd -- bash -c '
    echo "guest: PID 1 is $(cat /proc/1/comm), systemd $(systemctl --version | head -1 | cut -d" " -f2), cgroups: $(stat -fc %T /sys/fs/cgroup)"
    bin=$1; shift
    "$bin" --ignored --test-threads=2 "$@"
  ' guest "$BIN" "$@"
  r=$?
  set -e
  echo "systemd-guest ($layout): exit $r, $(elapsed "$start") s in total (boot included)"
  [ "$r" = 0 ] || rc=$r
done
exit $rc
