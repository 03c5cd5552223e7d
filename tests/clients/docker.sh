#!/bin/bash
# berth under Docker Engine: Debian bookworm's docker.io 20.10 (installed
# with apt-get if missing) and trixie's docker.io 26.x (unpacked into a cache
# with hack/clients/fetch.sh, with trixie's containerd). berth is a path
# runtime behind containerd's runc shim (daemon.json "runtimes": {"berth":
# {"path": ...}}) and, on Docker >= 23, a shim runtime too ("runtimeType":
# "io.containerd.berth.v2"). Every scenario also runs with bookworm's runc
# (runtime runc-deb) so that a berth failure can be told from an environment
# one; where runc's exit status is the reference (126, 127), berth's is
# compared with what runc gave.
#
# Each engine gets its own dockerd: --data-root, --exec-root, socket,
# pidfile, cgroup parent and bridge under this run's scratch names,
# --iptables=false --ip-forward=false, "live-restore": true. Everything is
# stopped and removed on exit.
#
# usage: tests/clients/docker.sh [ENGINE...]   (ENGINE: bookworm trixie; default both)
# Needs: root, the berth binary (BERTH_BIN or $CARGO_TARGET_DIR or
# target/x86_64-unknown-linux-gnu/debug/berth) and the shim next to it (or
# BERTH_SHIM), access to Debian's archive. KEEP=1 keeps the scratch directory
# (daemon logs) of a failed run.
# Prints one line per scenario, a table of scenarios by seat (ok, FAIL,
# skip; "-": no such seat), and a final "N passed, N failed".
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
BERTH=${BERTH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/debug/berth}
SHIM=${BERTH_SHIM:-$(dirname "$BERTH")/containerd-shim-berth-v2}
RUNC=/usr/sbin/runc   # bookworm's: trixie's runc needs glibc 2.38
ENGINES=("$@"); [ ${#ENGINES[@]} -gt 0 ] || ENGINES=(bookworm trixie)
for e in "${ENGINES[@]}"; do
  case $e in bookworm|trixie) ;; *) echo "unknown engine $e (bookworm, trixie)" >&2; exit 2;; esac
done
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >&2; exit 1; }
[ -x "$SHIM" ] || { echo "no shim binary at $SHIM" >&2; exit 1; }
BERTH=$(readlink -f "$BERTH"); SHIM=$(readlink -f "$SHIM")

W=$(mktemp -d /tmp/berth-docker.XXXXXX)
TAG=bd$$                       # cgroup parent and bridge: this run's own
CGP=/berth-docker-$$
BR=
PASS=0; FAIL=0; SKIP=0
DOCKERD_PID=; D=; E=; DK=
export DOCKER_CONFIG=$W/cli    # the CLI's own config, not root's ~/.docker
I=berth-test/busybox:latest

ok()   { PASS=$((PASS+1)); echo "ok   $*"; }
bad()  { FAIL=$((FAIL+1)); echo "FAIL $*"; }
skip() { SKIP=$((SKIP+1)); echo "skip $*"; }
# Results by engine, scenario and seat, for the table at the end.
declare -A RES SEEN VERS; ROWS=()
record() { # NAME ok|FAIL|skip
  [ -n "${RT:-}" ] || return 0
  local k="$ENGINE|$1"
  [ -n "${SEEN[$k]:-}" ] || { SEEN[$k]=1; ROWS+=("$k"); }
  RES[$k|$RT]=$2
}
# check NAME EXPECTED ACTUAL: on failure, docker's last error output too.
check() {
  if [ "$2" = "$3" ]; then ok "$LABEL $1"; record "${1% (as runc)}" ok
  else bad "$LABEL $1: expected [$2], got [$3]$(errtext)"; record "${1% (as runc)}" FAIL; fi
}
# The same, where runc's result on this engine is the reference: the runc
# seat is checked against EXPECTED and recorded, the others against it.
declare -A BASE
check_runc() { # NAME EXPECTED ACTUAL
  local k="$ENGINE:$1"
  if [ "$RT" = runc-deb ]; then BASE[$k]=$3; check "$1" "$2" "$3"
  else check "$1 (as runc)" "${BASE[$k]:-$2}" "$3"; fi
}
# Runs a command: its stdout in OUT, its status in RC, its stderr in $W/err.
run() { OUT=$("$@" 2>"$W/err"); RC=$?; }
errtext() {
  local t
  t=$(grep -v 'IPv4 forwarding is disabled' "$W/err" 2>/dev/null | head -3 | tr '\n' ' ')
  [ -n "$t" ] && echo " -- $t"
  : > "$W/err"
}
state() { $DK inspect -f "$2" "$1" 2>/dev/null; } # NAME GO-TEMPLATE
# Until the container's program has said "ready" (its traps are set).
wait_ready() { # NAME
  local n
  for n in $(seq 100); do
    $DK logs "$1" 2>/dev/null | grep -q '^ready$' && return 0
    sleep 0.05
  done
  return 1
}
wait_exit() { # NAME [TENTHS]: until the container is no longer running
  local n
  for n in $(seq "${2:-100}"); do
    [ "$(state "$1" '{{.State.Running}}')" = true ] || return 0
    sleep 0.1
  done
  return 1
}
# The v1 cgroup directory of a container's init for CONTROLLER.
cgdir() { # NAME CONTROLLER
  local pid
  pid=$(state "$1" '{{.State.Pid}}')
  echo "/sys/fs/cgroup/$2$(awk -F: -v c="$2" '{n=split($2,a,","); for(i=1;i<=n;i++) if (a[i]==c) print $3}' "/proc/$pid/cgroup" 2>/dev/null)"
}

# --- the daemon ------------------------------------------------------------
mounts_under() { awk -v d="$1" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort; }
start_dockerd() {
  PATH="$(dirname "$SHIM"):$EPATH" "$DOCKERD" --config-file "$D/daemon.json" \
    --data-root "$D/data" --exec-root "$E" -H "unix://$D/docker.sock" --pidfile "$D/docker.pid" \
    --iptables=false --ip-forward=false --bridge="${BR:-none}" --cgroup-parent "$CGP" \
    >> "$D/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  local n
  for n in $(seq 300); do
    $DK version >/dev/null 2>&1 && return 0
    [ -d "/proc/$DOCKERD_PID" ] || break
    sleep 0.1
  done
  echo "dockerd did not start; its log:" >&2; tail -20 "$D/dockerd.log" >&2
  stop_dockerd
  return 1
}
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  kill "$DOCKERD_PID" 2>/dev/null
  local n
  for n in $(seq 300); do [ -d "/proc/$DOCKERD_PID" ] || break; sleep 0.1; done
  [ -d "/proc/$DOCKERD_PID" ] && kill -9 "$DOCKERD_PID" 2>/dev/null
  wait "$DOCKERD_PID" 2>/dev/null
  DOCKERD_PID=
}
# Processes this run's daemons started (containerd, shims) and that outlived
# them: their command lines name this run's scratch directory.
our_procs() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -qF "$W/" && echo "${p#/proc/}"
  done
}
cleanup() {
  local p m c
  if [ -n "$DOCKERD_PID" ]; then
    $DK rm -f $($DK ps -aq 2>/dev/null) >/dev/null 2>&1
    stop_dockerd
  fi
  for p in $(our_procs); do kill -9 "$p" 2>/dev/null; done
  sleep 0.2
  grep -F " $W/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  # Containers a dead daemon left running: thaw, kill, then the cgroups.
  for c in /sys/fs/cgroup/freezer"$CGP"/*/freezer.state; do [ -e "$c" ] && echo THAWED > "$c"; done
  for c in /sys/fs/cgroup/pids"$CGP"/*/cgroup.procs; do
    [ -e "$c" ] && for p in $(cat "$c"); do kill -9 "$p" 2>/dev/null; done
  done
  sleep 0.2
  for c in /sys/fs/cgroup/*"$CGP"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  [ -n "$BR" ] && ip link del "$BR" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ] && [ "$FAIL" != 0 ]; then echo "kept $W" >&2
  else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A bridge of this run's own (docker's default would be the host-wide
# docker0), on a /24 no route on the host uses. Without it: --bridge=none.
make_bridge() {
  local n
  for n in $(seq 0 30); do
    local net=10.213.$(( ($$ + n) % 250 + 1 ))
    ip route | grep -qF "$net." && continue
    ip link add "br-$TAG" type bridge 2>/dev/null || return 1
    ip addr add "$net.1/24" dev "br-$TAG" && ip link set "br-$TAG" up || { ip link del "br-$TAG"; return 1; }
    BR=br-$TAG; BR_GW=$net.1
    return 0
  done
  return 1
}

# --- inputs ----------------------------------------------------------------
apt_install jq busybox-static iproute2 tini || { echo "apt-get install failed" >&2; exit 1; }
BIG=$W/stdin.bin
head -c 3145728 /dev/urandom > "$BIG"
BIG_SUM=$(md5sum < "$BIG" | cut -d' ' -f1)
OUT="$W/image" bash "$HERE/build-image.sh" > "$W/build-image.log" 2>&1 || { cat "$W/build-image.log"; exit 1; }
mkdir -p "$W/vol" "$W/cli"; echo from-host > "$W/vol/in"
# A custom seccomp profile: everything allowed but mkdir/mkdirat (EPERM).
cat > "$W/seccomp.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
EOF
make_bridge || echo "note: no bridge of our own could be made; bridge networking is skipped" >&2

# --- the scenarios, for one seat (a runtime of one engine) -----------------
# docker run with the seat's runtime; every container's id goes to a
# --cidfile, for the leftover checks (--rm ones included).
dr() {
  $DK run --cidfile "$(mktemp -u "$D/cid/$RT.XXXXXX")" --runtime "$RT" --network "${NET:-none}" "$@"
}
# Before the daemon restart. The seat's long-lived container "lr-$RT" stays
# for live-restore.
scenarios() {
  local lr=lr-$RT n r
  run dr --rm "$I" echo hello; check "run --rm output" hello "$OUT"
  run dr --rm "$I" sh -c 'exit 3'; check "run exit code" 3 "$RC"
  run dr --rm "$I" /etc/passwd; check_runc "run of a non-executable file: exit code" 126 "$RC"
  run dr --rm "$I" no-such-command; check_runc "run of a command not in PATH: exit code" 127 "$RC"
  run dr --rm "$I" /no/such/file; check_runc "run of a missing path: exit code" 127 "$RC"
  run dr --rm -i "$I" md5sum < "$BIG"; check "run -i: 3 MiB of stdin arrive whole" "$BIG_SUM" "${OUT%% *}"
  r=$(script -qec "$DK run --cidfile $D/cid/$RT.tty --runtime $RT --network none --rm -it $I sh -c 'test -t 0 && test -t 1 && echo is-a-tty'" /dev/null 2>&1 | tr -d '\r' | grep -o 'is-a-tty$' | head -1)
  check "run -it gets a terminal" is-a-tty "$r"

  # The long-lived container: TERM and USR1 trapped.
  run dr -d --name "$lr" "$I" sh -c 'trap "exit 0" TERM; trap "exit 7" USR1; echo ready; while :; do sleep 0.1; done'
  check "run -d" 0 "$RC"
  wait_ready "$lr"
  # The seat's runtime really runs it: the shim that is the init's parent,
  # and the runtime's own state for the id under the root docker gave it.
  local id pid root shim st r2
  id=$(state "$lr" '{{.Id}}'); pid=$(state "$lr" '{{.State.Pid}}')
  shim=$(basename "$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null | xargs -I{} readlink /proc/{}/exe)")
  case $RT in
    runc-deb) st=$RUNC;; *) st=$BERTH;;
  esac
  for root in "$E"/runtime-*/moby /run/containerd/berth/moby; do [ -e "$root/$id" ] && break; done
  r=$("$st" --root "$root" state "$id" 2>&1 | jq -r .status 2>&1)
  case $RT in
    berth-shim) r2=containerd-shim-berth-v2;; *) r2=containerd-shim-runc-v2;;
  esac
  check "runs under the seat's shim and runtime" "$r2 $(basename "$st"): running" "$shim $(basename "$st"): $r"
  run $DK exec "$lr" sh -c 'echo exec-out; exit 4'
  check "exec output" exec-out "$OUT"; check "exec exit code" 4 "$RC"
  run $DK exec "$lr" /etc/passwd; check_runc "exec of a non-executable file: exit code" 126 "$RC"
  # Docker (20.10 and 26) turns every exec start error into 126.
  run $DK exec "$lr" no-such-command; check_runc "exec of a command not in PATH: exit code" 126 "$RC"
  run $DK exec -i "$lr" md5sum < "$BIG"; check "exec -i: 3 MiB of stdin arrive whole" "$BIG_SUM" "${OUT%% *}"
  r=$(script -qec "$DK exec -it $lr sh -c 'test -t 0 && test -t 1 && echo is-a-tty'" /dev/null 2>&1 | tr -d '\r' | grep -o 'is-a-tty$' | head -1)
  check "exec -it gets a terminal" is-a-tty "$r"
  run $DK top "$lr"; r=$(echo "$OUT" | grep -c 'while')
  check "top lists the init" 1 "$r"
  run $DK stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' "$lr"
  r=$OUT; case "$OUT" in [1-9]*" "[1-9]*) r="PIDS MEM";; esac
  check "stats --no-stream (pids, memory usage)" "PIDS MEM" "$r"
  run $DK update --memory 64m --memory-swap 128m "$lr"
  r="$RC $(cat "$(cgdir "$lr" memory)/memory.limit_in_bytes" 2>&1)"
  check "update --memory (cgroup memory.limit_in_bytes)" "0 67108864" "$r"
  run $DK pause "$lr"; r="$RC $(state "$lr" '{{.State.Paused}}') $(cat "$(cgdir "$lr" freezer)/freezer.state" 2>&1)"
  check "pause" "0 true FROZEN" "$r"
  run $DK unpause "$lr"; r="$RC $(state "$lr" '{{.State.Paused}}') $(cat "$(cgdir "$lr" freezer)/freezer.state" 2>&1)"
  check "unpause" "0 false THAWED" "$r"
  run $DK exec "$lr" echo after-unpause; check "exec after unpause" after-unpause "$OUT"

  # stop: TERM ignored -> KILL after the timeout; kill with a signal.
  run dr -d --name ign "$I" sh -c 'trap "" TERM; echo ready; while :; do sleep 0.1; done'
  wait_ready ign
  run $DK stop -t 1 ign; check "stop -t 1 of a process ignoring TERM: killed (137)" "0 137" "$RC $(state ign '{{.State.ExitCode}}')"
  run $DK rm ign
  run dr -d --name k1 "$I" sh -c 'trap "exit 7" USR1; echo ready; while :; do sleep 0.1; done'
  wait_ready k1
  run $DK kill -s USR1 k1; wait_exit k1 50
  check "kill -s USR1 reaches the trap" "0 7" "$RC $(state k1 '{{.State.ExitCode}}')"
  run dr -d --name k2 "$I" sleep 1000
  run $DK kill k2; wait_exit k2 50
  check "kill (KILL)" "0 exited 137" "$RC $(state k2 '{{.State.Status}} {{.State.ExitCode}}')"
  run $DK rm k1 k2
  run dr -d --name st "$I" sh -c 'trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done'
  wait_ready st
  run $DK stop -t 10 st
  check "stop (TERM trapped: exit 0, before the timeout)" "0 0 exited" "$RC $(state st '{{.State.ExitCode}} {{.State.Status}}')"
  run $DK rm st
  run dr -d --name rmf "$I" sleep 1000
  run $DK rm -f rmf; check "rm -f of a running container" "0 " "$RC $($DK ps -aq --filter name=^/rmf$ 2>/dev/null)"

  # Resources.
  run dr --name oom -m 32m --memory-swap 32m "$I" sh -c 'x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived'
  check "--memory: OOM kill (exit code, State.OOMKilled)" "137 true" "$RC $(state oom '{{.State.OOMKilled}}')"
  run $DK rm oom
  # A subshell forks until it fails (sh, subshell, 8 sleeps); then, without
  # forking, the init reads the counters: sh and the 8 sleeps.
  run dr --rm --pids-limit 10 "$I" sh -c '(for i in $(seq 20); do sleep 100 & done) 2>/dev/null
    read m < /sys/fs/cgroup/pids/pids.max; read c < /sys/fs/cgroup/pids/pids.current; echo $m $c'
  check_runc "--pids-limit 10 (pids.max, pids.current after 20 forks)" "10 9" "$OUT"
  run dr --rm --cpus 0.5 "$I" cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us
  check "--cpus 0.5 (cfs quota, period)" "50000 100000" "$(echo $OUT)"

  # Filesystem.
  run dr --rm --read-only --tmpfs /scratch:size=1m "$I" sh -c 'touch /x 2>/dev/null && echo rw || echo ro; touch /scratch/x && echo tmpfs-ok; grep " /scratch " /proc/mounts | cut -d" " -f3,4'
  r=($OUT)
  check "--read-only" ro "${r[0]:-}"
  check "--tmpfs (writable, tmpfs, size)" "tmpfs-ok tmpfs" "${r[1]:-} ${r[2]:-}"
  case "${r[3]:-}" in *size=1024k*) r[3]=size=1024k;; esac
  check "--tmpfs size option" size=1024k "${r[3]:-}"
  rm -f "$W/vol/out"
  run dr --rm -v "$W/vol:/v" -v "$W/vol:/r:ro" "$I" sh -c 'cat /v/in; echo "$HOSTNAME" > /v/out; touch /r/x 2>/dev/null || echo ro-bind'
  check "-v bind mount (read, write back, :ro)" "from-host ro-bind 1" "$(echo $OUT) $(grep -c . "$W/vol/out" 2>/dev/null)"

  # Security.
  run dr --rm "$I" sh -c 'grep CapEff /proc/self/status'
  check_runc "default capabilities" "CapEff: 00000000a80425fb" "$(echo $OUT)"
  run dr --rm --cap-drop ALL --cap-add NET_RAW --cap-add CHOWN "$I" sh -c 'grep -E "Cap(Eff|Bnd)" /proc/self/status'
  check "--cap-drop ALL --cap-add NET_RAW,CHOWN" "CapEff: 0000000000002001 CapBnd: 0000000000002001" "$(echo $OUT)"
  run dr --rm --cap-drop CHOWN "$I" chown 1 /tmp; check "--cap-drop CHOWN: chown fails" 1 "$RC"
  run dr --rm --user 65534:65534 "$I" sh -c 'id; touch /root/x 2>/dev/null || echo denied'
  check "--user 65534:65534" "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup) denied" "$(echo $OUT)"
  run dr --rm "$I" sh -c 'grep "^Seccomp:" /proc/self/status; unshare -U true 2>/dev/null && echo unshare-ok || echo unshare-denied'
  check "seccomp default profile (filter mode, unshare denied)" "Seccomp: 2 unshare-denied" "$(echo $OUT)"
  run dr --rm --security-opt seccomp=unconfined "$I" sh -c 'grep "^Seccomp:" /proc/self/status; unshare -U true 2>/dev/null && echo unshare-ok || echo unshare-denied'
  check "seccomp=unconfined" "Seccomp: 0 unshare-ok" "$(echo $OUT)"
  run dr --rm --security-opt "seccomp=$W/seccomp.json" "$I" sh -c 'mkdir /tmp/d 2>&1; touch /tmp/f && echo touch-ok'
  check "seccomp custom profile (mkdir EPERM)" "mkdir: can't create directory '/tmp/d': Operation not permitted touch-ok" "$(echo $OUT)"

  # Network.
  run dr --rm "$I" ls /sys/class/net; check "--network none" lo "$(echo $OUT)"
  if [ -n "$BR" ]; then
    NET=bridge run dr -d --name srv "$I" sh -c 'echo hello-bridge | nc -l -p 8080'
    local ip; ip=$(state srv '{{.NetworkSettings.IPAddress}}')
    NET=bridge run dr --rm "$I" sh -c "ping -c1 -W2 $BR_GW >/dev/null && echo gw-ok; for i in 1 2 3 4 5; do nc -w 3 $ip 8080 && break; sleep 0.2; done"
    check "bridge network (gateway ping, container to container)" "gw-ok hello-bridge" "$(echo $OUT)"
    run $DK rm -f srv
  else
    skip "$LABEL bridge network: no bridge could be made on this host"
    record "bridge network (gateway ping, container to container)" skip
  fi

  # Restart policy, logs, --init.
  run dr -d --name rs --restart on-failure:2 "$I" sh -c 'exit 1'
  for n in $(seq 100); do
    [ "$(state rs '{{.RestartCount}} {{.State.Status}}')" = "2 exited" ] && break; sleep 0.1
  done
  check "--restart on-failure:2 (restarts, final state)" "2 exited 1" "$(state rs '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}')"
  run $DK rm rs
  run dr --name lg "$I" sh -c 'echo out-line; echo err-line >&2'
  r="$($DK logs lg 2>/dev/null)|$($DK logs lg 2>&1 >/dev/null)"
  check "logs (stdout|stderr)" "out-line|err-line" "$r"
  run $DK rm lg
  run dr --rm --init "$I" sh -c 'cat /proc/1/comm; echo $PPID'
  check "--init (pid 1 is docker-init, parent of the command)" "docker-init 1" "$(echo $OUT)"
}

# After the daemon restart: the seat's container is still there and usable.
after_restart() {
  local lr=lr-$RT
  check "live-restore: running, same pid" "true $1" "$(state "$lr" '{{.State.Running}} {{.State.Pid}}')"
  run $DK exec "$lr" echo after-restart; check "live-restore: exec" after-restart "$OUT"
  run $DK stop -t 10 "$lr"; check "live-restore: stop (TERM trapped, exit 0)" "0 0" "$RC $(state "$lr" '{{.State.ExitCode}}')"
  run $DK rm "$lr"
}

# Nothing of the seat's containers is left: listed containers, runtime
# state, mounts, cgroups, processes.
leftovers() {
  local ids id r="" p
  ids=$(awk 1 "$D/cid/$RT".* 2>/dev/null | grep . | sort -u)   # no newline in a cidfile
  [ -n "$($DK ps -aq 2>/dev/null | grep -Fx -f <(echo "$ids" | cut -c1-12))" ] && r="$r containers"
  for p in /proc/[0-9]*; do
    echo "${p#/proc/} $(tr '\0' ' ' 2>/dev/null < "$p/cmdline")"
  done > "$W/procs"
  find /sys/fs/cgroup -maxdepth 4 -type d > "$W/cgroups" 2>/dev/null
  for id in $ids; do
    for p in "$E"/runtime-*/moby/"$id" /run/containerd/berth/moby/"$id" \
             "$E/containerd/io.containerd.runtime.v2.task/moby/$id"; do
      [ -e "$p" ] && r="$r state:${p#$W/}"
    done
    grep -qF "$id" /proc/self/mountinfo && r="$r mount:${id:0:12}"
    # The shim's socket (containerd's scheme, which berth's shim follows).
    p=/run/containerd/s/$(printf '%s' "$E/containerd/containerd.sock/moby/$id" | sha256sum | cut -d' ' -f1)
    [ -e "$p" ] && r="$r socket:$p"
    grep -qF "/$id" "$W/cgroups" && r="$r cgroup:$(grep -F "/$id" "$W/cgroups" | head -1)"
    grep -qF -- "$id" "$W/procs" && r="$r process:$(grep -F -- "$id" "$W/procs" | head -1 | cut -c1-80)"
  done
  check "no leftovers ($(echo "$ids" | grep -c .) containers)" "" "$r"
}

# --- the engines -----------------------------------------------------------
for ENGINE in "${ENGINES[@]}"; do
  case $ENGINE in
  bookworm)
    apt_install docker.io runc tini || { bad "$ENGINE: apt-get install docker.io"; continue; }
    DOCKERD=/usr/sbin/dockerd; DOCKER=/usr/bin/docker
    EPATH=/usr/sbin:/usr/bin:/sbin:/bin ;;
  trixie)
    apt_install runc tini || { bad "$ENGINE: apt-get install runc tini"; continue; }
    U=$(bash "$ROOT/hack/clients/fetch.sh" trixie containerd docker.io docker-cli) || { bad "fetch docker.io from trixie"; continue; }
    DOCKERD=$U/usr/sbin/dockerd; DOCKER=$U/usr/bin/docker
    EPATH=$U/usr/bin:$U/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin ;;
  esac
  VER=$("$DOCKERD" --version | sed -E 's/^Docker version ([^,+]*).*/\1/')
  MAJOR=${VER%%.*}; VERS[$ENGINE]=$VER
  D=$W/$ENGINE; E=$W/$ENGINE/exec
  mkdir -p "$D/cid"
  DK="$DOCKER -H unix://$D/docker.sock"
  SEATS=(runc-deb berth)
  RUNTIMES="\"runc-deb\": {\"path\": \"$RUNC\"}, \"berth\": {\"path\": \"$BERTH\"}"
  if [ "$MAJOR" -ge 23 ]; then
    SEATS+=(berth-shim)
    RUNTIMES="$RUNTIMES, \"berth-shim\": {\"runtimeType\": \"io.containerd.berth.v2\"}"
  fi
  [ "$MAJOR" -ge 23 ] || skip "docker $VER / berth-shim: shim runtimes (runtimeType) need Docker >= 23"
  # 20.10 writes its trust key to /etc/docker/key.json unless told otherwise.
  EXTRA=; [ "$MAJOR" -lt 23 ] && EXTRA="\"deprecated-key-path\": \"$D/key.json\","
  cat > "$D/daemon.json" <<EOF
{ "runtimes": { $RUNTIMES },
  $EXTRA
  "live-restore": true,
  "init-path": "/usr/bin/tini-static",
  "log-driver": "json-file" }
EOF
  start_dockerd || { bad "$ENGINE: dockerd $VER did not start"; continue; }
  tar -C "$W/image/work/rootfs" -c . | $DK import -c 'CMD ["/bin/sh"]' - "$I" >/dev/null 2>&1 \
    || { bad "$ENGINE: docker import"; stop_dockerd; continue; }
  mounts_under "$D/" > "$D/mounts.idle"
  declare -A PIDS=()
  for RT in "${SEATS[@]}"; do
    LABEL="docker $VER / $RT:"
    scenarios
    PIDS[$RT]=$(state "lr-$RT" '{{.State.Pid}}')
  done
  # live-restore: the containers outlive dockerd and are adopted again.
  stop_dockerd
  start_dockerd || { bad "$ENGINE: dockerd $VER did not restart"; continue; }
  for RT in "${SEATS[@]}"; do
    LABEL="docker $VER / $RT:"
    after_restart "${PIDS[$RT]}"
    leftovers
  done
  LABEL="docker $VER:"; RT=
  $DK rm -f $($DK ps -aq 2>/dev/null) >/dev/null 2>&1
  # Rootfs (overlay), shm and netns mounts are not named after container ids:
  # once every container is gone, only the idle daemon's own mounts remain.
  r=$(mounts_under "$D/" | comm -13 "$D/mounts.idle" - | head -3)
  check "every container removed: no mounts beyond the idle daemon's" "" "$(echo $r)"
  stop_dockerd
  sleep 0.3
  r=""
  # Except the data-root's own bind mount: a dockerd that found it already
  # there (live-restore) leaves it, whatever the runtime.
  grep -qF " $D/data " /proc/self/mountinfo && umount "$D/data"
  m=$(awk -v d="$D/" -v k="$D/data" 'index($5, d) == 1 && $5 != k {print $5}' /proc/self/mountinfo | head -3)
  [ -n "$m" ] && r="$r mounts:$(echo $m)"
  [ -n "$(our_procs)" ] && r="$r processes:$(our_procs | tr '\n' ' ')"
  [ -n "$(find /sys/fs/cgroup/*"$CGP" -mindepth 1 -type d 2>/dev/null | head -1)" ] && r="$r cgroups:$(find /sys/fs/cgroup/*"$CGP" -mindepth 1 -type d | head -3 | tr '\n' ' ')"
  check "after dockerd stops: no mounts, processes or cgroups left" "" "$r"
  for p in $(our_procs); do kill -9 "$p" 2>/dev/null; done
done
# The table: one row per scenario, one column per seat ("-": no such seat).
for ENGINE in "${ENGINES[@]}"; do
  printf '\n%-64s %-9s %-9s %s\n' "docker ${VERS[$ENGINE]:-?} ($ENGINE)" runc-deb berth berth-shim
  for k in "${ROWS[@]}"; do
    [ "${k%%|*}" = "$ENGINE" ] || continue
    printf '%-64s %-9s %-9s %s\n' "${k#*|}" "${RES[$k|runc-deb]:--}" "${RES[$k|berth]:--}" "${RES[$k|berth-shim]:--}"
  done
done
echo
echo "took ${SECONDS}s"
[ "$SKIP" != 0 ] && echo "$SKIP skipped"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
