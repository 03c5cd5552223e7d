# guest-lib.sh: sourced by the scripts that run tests in a QEMU guest
# (cgroupv2-guest.sh, systemd-guest.sh): where to build, which vm-run, and
# the test executables of a cargo test invocation.
#
# Environment:
#   CARGO_TARGET_DIR  where to build (default: target/ of the repo)
#   VM_RUN            the vm-run tool (default: hack/vm-run if present, else
#                     /work/shared/tools/vm-run)
#   VM_RUN_TIMEOUT    bound for a guest run in seconds (default here: 900)
# The binaries are built on the host (the workspace links them statically)
# and run unchanged in the guest, which sees the host's / read-only.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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

# test_bins ARGS...: builds `cargo test ARGS --no-run` and prints its test
# executables (not the probe or berth binaries it builds on the way).
test_bins() {
  cargo test "$@" --no-run --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null) | .executable'
}

# elapsed START: seconds since START (a `date +%s.%N`), one decimal.
elapsed() { awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$1}"; }
