#!/bin/bash
# berth under containerd 1.7 (Debian trixie) and 2.1 (Debian sid): behind
# the stock io.containerd.runc.v2 shim (--runc-binary), each scenario run
# with runc too so that a berth failure can be told from an environment one;
# then the same scenarios through berth's own shim (io.containerd.berth.v2),
# plus what only the shim protocol shows (events, metrics, a killed shim).
#
# usage: tests/clients/containerd.sh [VERSION...]   (VERSION: trixie sid; default both)
# Needs: root, the berth binary (BERTH_BIN or target/x86_64-unknown-linux-gnu/debug/berth)
# and the shim next to it (or BERTH_SHIM),
# runc and busybox-static from Debian, network access to Debian's archive.
# Prints one line per scenario and a final "N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
BERTH=${BERTH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/debug/berth}
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

SHIM=${BERTH_SHIM:-$(dirname "$BERTH")/containerd-shim-berth-v2}
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >&2; exit 1; }
[ -x "$SHIM" ] || { echo "no shim binary at $SHIM" >&2; exit 1; }
BIG=$W/stdin.bin
head -c 3145728 /dev/urandom > "$BIG"
BIG_SUM=$(md5sum < "$BIG" | cut -d' ' -f1)
OUT="$W/image" bash "$HERE/build-image.sh" > "$W/build-image.log" 2>&1 || { cat "$W/build-image.log"; exit 1; }

start_containerd() { # dir
  local d=$1
  mkdir -p "$d"
  ctd_base_config "$d" 2 > "$d/config.toml"
  PATH="$(dirname "$SHIM"):$BIN:$PATH" "$BIN/containerd" --config "$d/config.toml" > "$d/containerd.log" 2>&1 &
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

scenarios() { # ctr-run-args...: how a container gets its runtime
  local r
  local RUN=(ctr -a "$SOCK" -n berth-test run "$@")
  r=$("${RUN[@]}" --rm "$I" c-echo echo hello 2>&1); check "run --rm output" "hello" "$r"
  r=$("${RUN[@]}" --rm --cwd /does/not/exist "$I" c-cwd pwd 2>&1)
  check "a working directory the image lacks is made" /does/not/exist "$r"
  r=$("${RUN[@]}" --rm "$I" c-stdin md5sum < "$BIG" 2>&1 | cut -d' ' -f1)
  check "run: 3 MiB of stdin arrive whole" "$BIG_SUM" "$r"
  "${RUN[@]}" --rm "$I" c-exit sh -c 'exit 3' >/dev/null 2>&1; check "run --rm exit code" 3 $?
  r=$(script -qec "${RUN[*]} -t --rm $I c-tty sh -c 'test -t 0 && echo tty'" /dev/null 2>&1 | tr -d '\r' | grep -o 'tty$' | head -1)
  check "run -t" "tty" "$r"
  "${RUN[@]}" -d "$I" c-bg sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
  check "detached run" 0 $?
  sleep 0.3
  r=$($CTR task exec --exec-id e1 c-bg sh -c 'echo exec-out; exit 4' 2>&1); local rc=$?
  check "task exec output" "exec-out" "$r"; check "task exec exit code" 4 $rc
  # 3 MiB of stdin, whole (CloseIO must not drop what is still in the FIFO).
  r=$($CTR task exec --exec-id e-in c-bg md5sum < "$BIG" 2>&1 | cut -d' ' -f1)
  check "task exec: 3 MiB of stdin arrive whole" "$BIG_SUM" "$r"
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

# Pids of berth shims serving this test's containerd.
berth_shims() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q "containerd-shim-berth-v2 .*-address $SOCK " && echo "${p#/proc/}"
  done
}

# What only containerd's own shim protocol shows: events, metrics, a shim
# killed under a running task, and the shim going away with its last task.
shim_scenarios() {
  local r ev ev_pid RUN=($CTR run --runtime io.containerd.berth.v2)
  ev=$D/events.log
  $CTR events > "$ev" 2>&1 & ev_pid=$!
  sleep 0.3
  "${RUN[@]}" --rm "$I" c-ev true >/dev/null 2>&1
  r=$("${RUN[@]}" -d "$I" c-ev2 sleep 1000 2>&1) || bad "$LABEL run -d c-ev2: $r"
  $CTR task exec --exec-id x1 c-ev2 true >/dev/null 2>&1
  $CTR task pause c-ev2 >/dev/null 2>&1; $CTR task resume c-ev2 >/dev/null 2>&1
  r=$($CTR task metrics c-ev2 2>&1 | grep -ci 'memory')
  [ "$r" -ge 1 ] && ok "$LABEL task metrics" || bad "$LABEL task metrics: $($CTR task metrics c-ev2 2>&1 | head -3)"
  $CTR task kill -s SIGKILL c-ev2 >/dev/null 2>&1
  # The kill is asynchronous: remove the task once it has stopped.
  for _ in $(seq 50); do [ "$($CTR task ls 2>/dev/null | awk '$1=="c-ev2" {print $3}')" = STOPPED ] && break; sleep 0.1; done
  $CTR task rm c-ev2 >/dev/null 2>&1; $CTR c rm c-ev2 >/dev/null 2>&1
  "${RUN[@]}" --rm --memory-limit 33554432 "$I" c-oom sh -c 'x=$(head -c 67108864 /dev/zero | tr "\0" a)' >/dev/null 2>&1
  sleep 0.5
  kill "$ev_pid" 2>/dev/null; wait "$ev_pid" 2>/dev/null
  r=$(grep -F '"c-ev"' "$ev" | grep -oE '/tasks/(create|start|exit|delete)' | tr '\n' ' ')
  check "event order of a run --rm" "/tasks/create /tasks/start /tasks/exit /tasks/delete " "$r"
  r=$(grep -F '"c-ev2"' "$ev" | grep -oE '/tasks/(exec-added|exec-started|paused|resumed)' | tr '\n' ' ')
  check "exec and pause events" "/tasks/exec-added /tasks/exec-started /tasks/paused /tasks/resumed " "$r"
  grep '/tasks/oom' "$ev" | grep -qF '"c-oom"' && ok "$LABEL OOM event" || bad "$LABEL OOM event: $(grep oom "$ev" | head -2)"
  # IO: output of a process that exits at once, stdin to EOF (CloseIO),
  # the terminal size (ResizePty), file:// and binary:// log URIs.
  r=$("${RUN[@]}" --rm "$I" c-seq seq 1 20000 2>&1 | wc -l)
  check "all output of a process that exits at once" 20000 "$r"
  r=$(printf 'one\ntwo\n' | "${RUN[@]}" --rm "$I" c-cat cat 2>&1 | tr '\n' ' ')
  check "stdin to EOF (CloseIO)" "one two " "$r"
  r=$(script -qec "stty rows 11 cols 77; ${RUN[*]} -t --rm $I c-size sh -c 'sleep 0.5; stty size'" /dev/null 2>&1 | tr -d '\r' | grep -oE '[0-9]+ [0-9]+$' | tail -1)
  check "terminal size (ResizePty)" "11 77" "$r"
  "${RUN[@]}" --rm --log-uri "file://$D/file.log" "$I" c-file sh -c 'echo to-file; echo err-file >&2' >/dev/null 2>&1
  r=$(sort "$D/file.log" 2>/dev/null | tr '\n' ' ')
  check "file:// log URI" "err-file to-file " "$r"
  cat > "$D/logger" <<EOT
#!/bin/sh
exec 5>&-
cat <&3 > "$D/binary.out" &
cat <&4 > "$D/binary.err" &
wait
EOT
  chmod +x "$D/logger"
  "${RUN[@]}" --rm --log-uri "binary://$D/logger" "$I" c-bin sh -c 'echo to-bin; echo err-bin >&2' >/dev/null 2>&1
  sleep 0.2
  r="$(cat "$D/binary.out" 2>/dev/null) $(cat "$D/binary.err" 2>/dev/null)"
  check "binary:// logger" "to-bin err-bin" "$r"
  r=0; for p in /proc/[0-9]*; do tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q "^/bin/sh $D/logger" && r=$((r+1)); done
  check "the logger exits with its container" 0 "$r"
  # An exec that cannot start fails at once (its Wait does not hang); the
  # init's exit takes the container's other processes with it even without
  # a pid namespace of its own.
  "${RUN[@]}" -d "$I" c-bad sleep 1000 >/dev/null 2>&1
  timeout 20 $CTR task exec --exec-id bad c-bad /nonexistent >/dev/null 2>&1
  r=$?; [ "$r" != 0 ] && [ "$r" != 124 ] && ok "$LABEL exec of a missing binary fails promptly" || bad "$LABEL exec of a missing binary: status $r"
  $CTR task kill -s SIGKILL c-bad >/dev/null 2>&1; sleep 0.2
  $CTR task rm c-bad >/dev/null 2>&1; $CTR c rm c-bad >/dev/null 2>&1
  r=$("${RUN[@]}" --rm --with-ns "pid:/proc/$$/ns/pid" "$I" c-hostpid sh -c 'sleep 1000 >/dev/null 2>&1 & echo $!' 2>/dev/null | tr -d '\r')
  sleep 0.3
  if [ -n "$r" ] && [ -d "/proc/$r" ] && grep -q sleep "/proc/$r/comm" 2>/dev/null; then
    bad "$LABEL host pid namespace: the container's child $r outlived its init"; kill -9 "$r" 2>/dev/null
  elif [ -n "$r" ]; then ok "$LABEL host pid namespace: the init's exit kills the rest"
  else bad "$LABEL host pid namespace: no pid reported"; fi
  # Unsupported RPCs fail cleanly, and the shim reaps every child.
  "${RUN[@]}" -d "$I" c-cp sleep 1000 >/dev/null 2>&1
  for n in 1 2 3; do $CTR task exec --exec-id z$n c-cp sh -c 'sleep 0.1 & exit 0' >/dev/null 2>&1; done
  r=$($CTR task checkpoint c-cp 2>&1); case "$r" in *"not implemented"*|*"not support"*|*"checkpoint"*) ok "$LABEL checkpoint refused";; *) bad "$LABEL checkpoint: $r";; esac
  local cp_init cp_shim zombies=0 p
  cp_init=$($CTR task ls 2>/dev/null | awk '$1=="c-cp" {print $2}')
  cp_shim=$(awk '{print $4}' "/proc/$cp_init/stat" 2>/dev/null)
  sleep 0.3
  for p in /proc/[0-9]*/stat; do
    read -r -a f < "$p" 2>/dev/null || continue
    [ "${f[3]}" = "$cp_shim" ] && [ "${f[2]}" = Z ] && zombies=$((zombies+1))
  done
  check "no zombie children of the shim" 0 "$zombies"
  check "shim alive after checkpoint" 1 "$([ -d "/proc/$cp_shim" ] && echo 1)"
  $CTR task kill -s SIGKILL c-cp >/dev/null 2>&1; sleep 0.2
  $CTR task rm c-cp >/dev/null 2>&1; $CTR c rm c-cp >/dev/null 2>&1
  # kill -9 of the shim, then `ctr task rm` cleans up through `shim delete`.
  "${RUN[@]}" -d "$I" c-k9 sleep 1000 >/dev/null 2>&1
  local init shim
  init=$($CTR task ls 2>/dev/null | awk '$1=="c-k9" {print $2}')
  shim=$(awk '{print $4}' "/proc/$init/stat" 2>/dev/null)
  if [ -n "$shim" ] && tr '\0' ' ' < "/proc/$shim/cmdline" | grep -q containerd-shim-berth-v2; then
    local sock
    sock=$(tr '\0' '\n' < "/proc/$shim/cmdline" | grep -A1 '^-socket$' | tail -1)
    kill -9 "$shim"
    for _ in $(seq 50); do [ -d "/proc/$shim" ] || break; sleep 0.1; done
    $CTR task rm -f c-k9 >/dev/null 2>&1
    $CTR c rm c-k9 >/dev/null 2>&1
    for _ in $(seq 50); do [ -d "/proc/$init" ] || break; sleep 0.1; done
    r=""
    [ -d "/proc/$init" ] && r="$r init-alive"
    [ -e "/run/containerd/berth/berth-test/c-k9" ] && r="$r state-left"
    grep -q "/c-k9/rootfs" /proc/self/mounts && r="$r rootfs-mounted"
    [ -d /sys/fs/cgroup/pids/berth-test/c-k9 ] && r="$r cgroup-left"
    $CTR task ls 2>/dev/null | grep -q '^c-k9 ' && r="$r task-listed"
    [ -S "$sock" ] && r="$r socket-left"
    check "kill -9 of the shim, then task rm cleans up" "" "$r"
  else
    bad "$LABEL kill -9 of the shim: no shim found (init $init, parent $shim)"
  fi
  sleep 0.3
  r=$(berth_shims | wc -l)
  check "no shim left once its tasks are gone" 0 "$r"
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
    [ "${BERTH_ONLY_SHIM:-0}" = 1 ] && continue
    LABEL="containerd $VER / runc shim + $(basename "$rt"):"
    scenarios --runc-binary "$rt"
  done
  LABEL="containerd $VER / berth shim:"
  scenarios --runtime io.containerd.berth.v2
  shim_scenarios
  stop_containerd
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
