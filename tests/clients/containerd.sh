#!/bin/bash
# berth behind containerd's stock io.containerd.runc.v2 shim (--runc-binary),
# with containerd 1.7 (Debian trixie) and 2.1 (Debian sid), each scenario run
# with runc too so that a berth failure can be told from an environment one.
#
# usage: tests/clients/containerd.sh [VERSION...]   (VERSION: trixie sid; default both)
# Needs: root, the berth binary (BERTH_BIN or target/x86_64-unknown-linux-gnu/debug/berth),
# runc and busybox-static from Debian, network access to Debian's archive.
# Prints one line per scenario and a final "N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/debug/berth}
RUNC=${RUNC_BIN:-/usr/sbin/runc}
SUITES=("$@"); [ ${#SUITES[@]} -gt 0 ] || SUITES=(trixie sid)
W=$(mktemp -d /tmp/berth-containerd.XXXXXX)
PASS=0; FAIL=0; CTD_PID=
I=localhost/test/busybox:latest

cleanup() {
  [ -n "$CTD_PID" ] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

ok()   { PASS=$((PASS+1)); echo "ok   $*"; }
bad()  { FAIL=$((FAIL+1)); echo "FAIL $*"; }

[ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >&2; exit 1; }
OUT="$W/image" bash "$HERE/build-image.sh" > "$W/build-image.log" 2>&1 || { cat "$W/build-image.log"; exit 1; }

start_containerd() { # dir
  local d=$1
  mkdir -p "$d"
  cat > "$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
EOF
  PATH="$BIN:$PATH" "$BIN/containerd" --config "$d/config.toml" > "$d/containerd.log" 2>&1 &
  CTD_PID=$!
  for _ in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
  [ -S "$d/containerd.sock" ]
}

stop_containerd() {
  [ -n "$CTD_PID" ] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
  CTD_PID=
}

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then ok "$LABEL $1"; else bad "$LABEL $1: expected [$2], got [$3]"; fi
}

scenarios() { # runtime-binary
  local rt=$1 r
  local RUN=(ctr -a "$SOCK" -n berth-test run --runc-binary "$rt")
  r=$("${RUN[@]}" --rm "$I" c-echo echo hello 2>&1); check "run --rm output" "hello" "$r"
  "${RUN[@]}" --rm "$I" c-exit sh -c 'exit 3' >/dev/null 2>&1; check "run --rm exit code" 3 $?
  r=$(script -qec "${RUN[*]} -t --rm $I c-tty sh -c 'test -t 0 && echo tty'" /dev/null 2>&1 | tr -d '\r' | grep -o 'tty$' | head -1)
  check "run -t" "tty" "$r"
  "${RUN[@]}" -d "$I" c-bg sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
  check "detached run" 0 $?
  sleep 0.3
  r=$($CTR task exec --exec-id e1 c-bg sh -c 'echo exec-out; exit 4' 2>&1); local rc=$?
  check "task exec output" "exec-out" "$r"; check "task exec exit code" 4 $rc
  # script(1) gives ctr the terminal it needs; keep only the program's line.
  r=$(script -qec "$CTR task exec -t --exec-id e2 c-bg sh -c 'test -t 0 && echo tty'" /dev/null 2>&1 | tr -d '\r' | grep -o 'tty$' | head -1)
  check "task exec --tty" "tty" "$r"
  r=$($CTR task ps c-bg 2>&1 | awk 'NR>1 {n++} END {print n+0}'); [ "$r" -ge 1 ] && ok "$LABEL task ps" || bad "$LABEL task ps: $r"
  $CTR task pause c-bg >/dev/null 2>&1
  r=$($CTR task ls 2>/dev/null | awk '$1=="c-bg" {print $3}'); check "pause" PAUSED "$r"
  $CTR task resume c-bg >/dev/null 2>&1
  r=$($CTR task ls 2>/dev/null | awk '$1=="c-bg" {print $3}'); check "resume" RUNNING "$r"
  # containerd restart: the task survives and is still usable.
  stop_containerd; start_containerd "$D" || bad "$LABEL containerd restart"
  r=$($CTR task ls 2>/dev/null | awk '$1=="c-bg" {print $3}'); check "task survives containerd restart" RUNNING "$r"
  r=$($CTR task exec --exec-id e3 c-bg echo after-restart 2>&1); check "exec after restart" "after-restart" "$r"
  $CTR task kill -s SIGTERM c-bg >/dev/null 2>&1
  for _ in $(seq 50); do [ "$($CTR task ls 2>/dev/null | awk '$1=="c-bg" {print $3}')" = STOPPED ] && break; sleep 0.1; done
  r=$($CTR task ls 2>/dev/null | awk '$1=="c-bg" {print $3}'); check "SIGTERM trapped, task stops" STOPPED "$r"
  $CTR task rm c-bg >/dev/null 2>&1; $CTR c rm c-bg >/dev/null 2>&1
  "${RUN[@]}" -d "$I" c-kill sleep 1000 >/dev/null 2>&1
  sleep 0.2
  $CTR task kill -s SIGKILL c-kill >/dev/null 2>&1
  for _ in $(seq 50); do [ "$($CTR task ls 2>/dev/null | awk '$1=="c-kill" {print $3}')" = STOPPED ] && break; sleep 0.1; done
  r=$($CTR task ls 2>/dev/null | awk '$1=="c-kill" {print $3}'); check "SIGKILL" STOPPED "$r"
  $CTR task rm c-kill >/dev/null 2>&1; $CTR c rm c-kill >/dev/null 2>&1
  # 64 MB in a shell variable against a 32 MiB limit.
  "${RUN[@]}" --rm --memory-limit 33554432 "$I" c-mem sh -c 'x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived' >/dev/null 2>&1
  check "--memory-limit enforced (OOM kill)" 137 $?
  "${RUN[@]}" --rm --read-only "$I" c-ro touch /x >/dev/null 2>&1; check "--read-only" 1 $?
  r=$("${RUN[@]}" --rm --privileged "$I" c-priv sh -c 'grep CapEff /proc/self/status' 2>&1 | awk '{print $2}')
  check "--privileged caps" "$(grep CapBnd /proc/self/status | awk '{print $2}')" "$r"
  r=$("${RUN[@]}" --rm --net-host "$I" c-net ls /sys/class/net 2>&1 | sort | tr '\n' ' ')
  check "--net-host" "$(ls /sys/class/net | sort | tr '\n' ' ')" "$r"
  r=$("${RUN[@]}" --rm --seccomp "$I" c-sec sh -c 'grep "^Seccomp:" /proc/self/status' 2>&1 | awk '{print $2}')
  check "--seccomp" 2 "$r"
  r=$("${RUN[@]}" --rm "$I" c-missing /nonexistent 2>&1)
  case "$r" in *"/nonexistent"*) ok "$LABEL missing executable reported";; *) bad "$LABEL missing executable: $r";; esac
  $CTR c rm c-missing >/dev/null 2>&1
}

for suite in "${SUITES[@]}"; do
  U=$(bash "$ROOT/hack/clients/fetch.sh" "$suite" containerd) || { bad "fetch containerd from $suite"; continue; }
  BIN=$U/usr/bin
  D=$W/$suite
  SOCK=$D/containerd.sock
  CTR="ctr -a $SOCK -n berth-test"
  CTR="$BIN/$CTR"
  export PATH="$BIN:$PATH"
  start_containerd "$D" || { bad "$suite: containerd did not start"; cat "$D/containerd.log"; continue; }
  $CTR images import "$W/image/test-images.oci.tar" > /dev/null 2>&1 || bad "$suite: image import"
  VER=$("$BIN/containerd" --version | awk '{print $3}')
  for rt in "$RUNC" "$BERTH"; do
    LABEL="containerd $VER / $(basename "$rt"):"
    scenarios "$rt"
  done
  stop_containerd
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
