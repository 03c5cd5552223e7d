#!/bin/bash
# lsm-guest.sh: run the AppArmor and SELinux tests (tests/tests/lsm.rs, the
# #[ignore]d ones) in throwaway QEMU guests booted by vm-run with Debian's
# stock kernel, which has both LSMs (this host has neither):
#   - AppArmor, on by default there: securityfs is mounted and the test
#     profile `berth-test` (everything allowed but writes under /denied)
#     loaded with the host's apparmor_parser;
#   - SELinux, booted with security=selinux in permissive mode: selinuxfs
#     mounted and Debian's reference policy loaded (it has no container_t:
#     the tests use unconfined_t and tmpfs_t with MCS categories).
# The host provides apparmor_parser and the policy (Debian's apparmor,
# selinux-policy-default, policycoreutils, selinux-utils: hack/deps.sh);
# the guest sees the host's / read-only.
#
# usage: hack/lsm-guest.sh [apparmor] [selinux]   (default: both)
#
# Environment: see hack/guest-lib.sh. Exit status: that of the tests
# (124/125: vm-run's timeout / boot failure).
set -euo pipefail
. "$(dirname "$0")/guest-lib.sh"

cargo build -p berth
BIN=$(test_bins -p berth-tests --test lsm)
[ -n "$BIN" ] || { echo "lsm-guest: test binary not built" >&2; exit 1; }
WHICH=("$@"); [ ${#WHICH[@]} -gt 0 ] || WHICH=(apparmor selinux)

rc=0
for lsm in "${WHICH[@]}"; do
  case $lsm in
    apparmor) append= ;;
    selinux) append="security=selinux selinux=1 enforcing=0" ;;
    *) echo "lsm-guest: unknown LSM $lsm" >&2; exit 2 ;;
  esac
  start=$(date +%s.%N)
  set +e
  VM_RUN_APPEND="$append" "$VM_RUN" -- bash -c '
    set -e
    lsm=$1 bin=$2
    case $lsm in
    apparmor)
      mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
      cat > /tmp/berth-test.aa <<EOF
#include <tunables/global>
profile berth-test flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
  deny /denied/** w,
  deny /denied/ w,
}
EOF
      apparmor_parser -r /tmp/berth-test.aa
      echo "guest: LSMs $(cat /sys/kernel/security/lsm), profile $(grep berth-test /sys/kernel/security/apparmor/profiles)"
      ;;
    selinux)
      mount -t selinuxfs selinuxfs /sys/fs/selinux
      load_policy -i
      echo "guest: SELinux $(getenforce)"
      ;;
    esac
    BERTH_TEST_LSM=$lsm "$bin" --ignored --test-threads=2 "$lsm"
  ' guest "$lsm" "$BIN"
  r=$?
  set -e
  echo "lsm-guest ($lsm): exit $r, $(elapsed "$start") s in total (boot included)"
  [ "$r" = 0 ] || rc=$r
done
exit $rc
