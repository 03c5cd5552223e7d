#!/bin/bash
# The OCI runtime validation suite (opencontainers/runtime-tools at 260e151,
# vendored as a tarball in ../shared/conformance) against berth or another
# runtime. Run as root on Debian 12. See docs/conformance.md.
#
#   hack/conformance.sh [options] [PROGRAM...]
#
#   --runtime PATH   run this runtime (e.g. /usr/sbin/runc) instead of berth;
#                    no expected-results comparison unless --expected is given
#   --expected FILE  programs that must pass (default for berth:
#                    tests/conformance/expected-berth.txt); --expected none: no
#                    comparison. One program a line; `flaky NAME` lines name
#                    programs whose result depends on the test's own timing:
#                    neither required nor reported as new passes
#   --results DIR    where each program's output is kept (default:
#                    $CARGO_TARGET_DIR/conformance/results-NAME, NAME being the
#                    runtime's file name); emptied first
#   --timeout SECS   per program (default 60)
#   PROGRAM...       run only these (names as in validation/, e.g. linux_ns_path)
#
# berth is $BERTH_BIN, or the debug binary under $CARGO_TARGET_DIR (default
# target/), which must have been built (cargo build --workspace --bins).
#
# Each program runs as `RUNTIME=... timeout SECS unshare -m --propagation
# private ./validation/NAME/NAME.t` from the suite's directory (its own mount
# namespace: linux_ns_itype runs a container without one). Its standard output
# (TAP) is kept as NAME.tap and its standard error as NAME.stderr. A program
# passes when it exits 0, prints no `not ok` line and no `Bail out!`, and
# prints no YAML block holding an "error": that is not attached to an `ok`
# line (hooks, prestart, poststart, poststart_fail and poststop_fail report
# their failure as such a free-standing block, with an empty `1..0` plan; an
# "error" block right after an `ok` line is an expected error).
#
# Exit status: 1 when a program listed in the expected file does not pass (a
# regression), 2 on a usage or set-up error, 0 otherwise. Programs that pass
# but are not listed are reported so the file can be updated; they do not fail
# the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac

runtime= expected=default results= timeout=60 only=()
while [ $# -gt 0 ]; do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --expected) expected=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "conformance: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "conformance: run as root" >&2
  exit 2
fi
if [ -z "$runtime" ]; then
  runtime=${BERTH_BIN:-$target/x86_64-unknown-linux-gnu/debug/berth}
  [ "$expected" = default ] && expected=$root/tests/conformance/expected-berth.txt
  if [ ! -x "$runtime" ]; then
    echo "conformance: no berth at $runtime: build it first (cargo build --workspace --bins) or set BERTH_BIN" >&2
    exit 2
  fi
fi
[ "$expected" = default ] && expected=none
runtime=$(readlink -f "$(command -v "$runtime" || echo "$runtime")")
if [ ! -x "$runtime" ]; then
  echo "conformance: runtime $runtime is not an executable" >&2
  exit 2
fi
rtname=$(basename "$runtime")
results=${results:-$target/conformance/results-$rtname}

# What the build needs: Go (Debian 12's golang-go is Go 1.19) and make.
need=()
command -v go >/dev/null || need+=(golang-go)
command -v make >/dev/null || need+=(make)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; }
fi

# The suite, built once per tarball (and Go version) under the target dir.
tarball=
for d in "$root/../shared/conformance" /work/shared/conformance; do
  if [ -f "$d/runtime-tools-260e151.tar.gz" ]; then
    tarball=$(readlink -f "$d/runtime-tools-260e151.tar.gz")
    break
  fi
done
if [ -z "$tarball" ]; then
  echo "conformance: runtime-tools-260e151.tar.gz not found in ../shared/conformance or /work/shared/conformance" >&2
  exit 2
fi
work=$target/conformance
suite=$work/runtime-tools
stamp="$(sha256sum < "$tarball" | cut -d' ' -f1) $(go version)"
if [ ! -f "$suite/.berth-stamp" ] || [ "$(cat "$suite/.berth-stamp")" != "$stamp" ]; then
  echo "conformance: building the suite from $tarball"
  start=$SECONDS
  rm -rf "$suite"
  mkdir -p "$work"
  tar xzf "$tarball" -C "$work"
  # Offline, from the vendored modules; the Go caches stay in the target dir.
  (cd "$suite" && GOFLAGS=-mod=vendor GOPROXY=off GOCACHE=$work/go-cache GOPATH=$work/go-path \
    make runtimetest validation-executables > "$work/build.log" 2>&1) ||
    { tail -20 "$work/build.log" >&2; echo "conformance: the suite did not build (log: $work/build.log)" >&2; exit 2; }
  echo "$stamp" > "$suite/.berth-stamp"
  echo "conformance: built in $((SECONDS - start)) s"
fi

all=()
for t in "$suite"/validation/*/*.t; do
  all+=("$(basename "$t" .t)")
done
progs=("${all[@]}")
[ "${#only[@]}" -gt 0 ] && progs=("${only[@]}")
for p in "${progs[@]}"; do
  if [ ! -x "$suite/validation/$p/$p.t" ]; then
    echo "conformance: no program $p in the suite" >&2
    exit 2
  fi
done

# The expected file: one program a line, `flaky NAME` for a program whose
# result is the test's own race; '#' starts a comment.
want=() flaky=()
if [ "$expected" != none ]; then
  if [ ! -f "$expected" ]; then
    echo "conformance: expected-results file $expected not found" >&2
    exit 2
  fi
  while read -r a b; do
    case $a in
      '') ;;
      flaky) flaky+=("$b") ;;
      *) want+=("$a") ;;
    esac
  done < <(sed -e 's/#.*//' "$expected")
  for p in "${want[@]}" "${flaky[@]}"; do
    if [ ! -x "$suite/validation/$p/$p.t" ]; then
      echo "conformance: $expected lists $p, which the suite does not have" >&2
      exit 2
    fi
  done
fi

# Each program gets a TMPDIR of its own, where its bundles go (os.MkdirTemp):
# a program that fails half-way leaves its bundle behind, and any container
# still there (a timeout, a failed delete) is found by its bundle's path.
# Both are removed after the program.
scratch=$work/tmp
rm -rf "$scratch"
cleanup_program() { # TMPDIR-OF-THE-PROGRAM
  local id bundle
  "$runtime" list --format json 2>/dev/null |
    tr '{' '\n' | sed -n 's/.*"id" *: *"\([^"]*\)".*"bundle" *: *"\([^"]*\)".*/\1 \2/p' |
    while read -r id bundle; do
      case $bundle in "$1"/*)
        echo "conformance: removing container $id left behind by the suite"
        "$runtime" delete -f "$id" >/dev/null 2>&1 || true ;;
      esac
    done || true
  rm -rf "$1"
}
# The suite's cgroups are /cgrouptest and testdir/cgrouptest/container
# (relative to the caller's): a runtime that fails a create may leave them
# behind, empty (runc 1.1.5 does, for linux_cgroups_relative_*). Those this run
# made are removed at the end (rmdir: only empty ones go).
suite_cgroups() {
  find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d \( -name cgrouptest -o -name testdir \) -prune -print 2>/dev/null | sort
}
cgroups_before=$(suite_cgroups)

# Prints "pass" or a one-line reason for the failure.
verdict() { # TAP-FILE EXIT-STATUS
  awk -v rc="$2" -v limit="$timeout" '
    /^not ok/ { nok++; if (!firstnok) firstnok = $0 }
    /^Bail out!/ { if (!bail) bail = $0 }
    /^[ \t]*---[ \t]*$/ && !inyaml { inyaml = 1; attached = (last ~ /^(not )?ok /); next }
    /^[ \t]*\.\.\.[ \t]*$/ && inyaml { inyaml = 0; last = "..."; next }
    inyaml {
      if (!attached && /"error":/ && freeerr == "") {
        freeerr = $0
        sub(/^[ \t]*"error": *"/, "", freeerr); sub(/",?[ \t]*$/, "", freeerr); sub(/\\n.*/, "", freeerr)
      }
      next
    }
    # A test point, a plan, a comment...; other lines continue the line
    # before them (a description with a newline: "ok 1 - ...\nRefer to: ...").
    /^(ok|not ok)( |$)|^1\.\.|^#|^TAP version|^Bail out!/ { last = $0 }
    END {
      if (rc == 124 || rc == 137) print "timed out after " limit " s"
      else if (nok) print nok " not ok: " firstnok
      else if (bail) print bail
      else if (freeerr != "") print "error: " freeerr
      else if (rc != 0) print "exit status " rc
      else print "pass"
    }' "$1"
}

rm -rf "$results"
mkdir -p "$results"
echo "conformance: $runtime ($("$runtime" --version 2>/dev/null | head -1)), ${#progs[@]} programs, output in $results"
cd "$suite"
passed=() failed=()
start=$SECONDS
for p in "${progs[@]}"; do
  t0=$(date +%s%N)
  rc=0
  mkdir -p "$scratch/$p"
  TMPDIR=$scratch/$p RUNTIME=$runtime timeout -k 10 "$timeout" unshare -m --propagation private "./validation/$p/$p.t" \
    > "$results/$p.tap" 2> "$results/$p.stderr" < /dev/null || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  cleanup_program "$scratch/$p"
  v=$(verdict "$results/$p.tap" "$rc")
  if [ "$v" = pass ]; then
    passed+=("$p")
    line=$(printf 'PASS %-32s %5d.%01d s' "$p" $((ms / 1000)) $((ms % 1000 / 100)))
  else
    failed+=("$p")
    line=$(printf 'FAIL %-32s %5d.%01d s  %s' "$p" $((ms / 1000)) $((ms % 1000 / 100)) "$v")
  fi
  echo "$line" | tee -a "$results/summary.txt"
done
elapsed=$((SECONDS - start))
echo "conformance: $rtname passes ${#passed[@]} of ${#progs[@]} (in $elapsed s)" | tee -a "$results/summary.txt"
printf '%s\n' "${passed[@]}" > "$results/passed.txt"

rmdir "$scratch" 2>/dev/null || true

for d in $(comm -13 <(echo "$cgroups_before") <(suite_cgroups)); do
  find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  [ -d "$d" ] && echo "conformance: $d was left behind by the suite and is not empty"
done

[ "$expected" = none ] && exit 0
status=0
in_list() { local x; for x in "${@:2}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
for p in "${want[@]}"; do
  in_list "$p" "${progs[@]}" || continue
  if ! in_list "$p" "${passed[@]}"; then
    echo "conformance: REGRESSION: $p is expected to pass (${expected#"$root"/}): see $results/$p.tap" >&2
    status=1
  fi
done
flaky_failed=()
for p in "${flaky[@]}"; do
  in_list "$p" "${progs[@]}" && ! in_list "$p" "${passed[@]}" && flaky_failed+=("$p")
done
[ "${#flaky_failed[@]}" -gt 0 ] &&
  echo "conformance: failed, but flaky by the test's own timing (not counted): ${flaky_failed[*]}"
for p in "${passed[@]}"; do
  in_list "$p" "${want[@]}" "${flaky[@]}" ||
    echo "conformance: NEW PASS: $p passes but is not in ${expected#"$root"/}: add it if it passes reliably"
done
[ $status = 0 ] && echo "conformance: every program in ${expected#"$root"/} passes"
exit $status
