#!/bin/bash
# berth's containerd shim (containerd-shim-berth-v2) driven through the
# Kubernetes CRI (runtime.v1) of containerd's built-in CRI plugin, with
# containerd 1.7 (Debian trixie) and 2.1 (Debian sid). Every scenario also
# runs on the stock runc handler, so that a berth failure can be told from an
# environment one. crictl is not in Debian: tests/clients/cri/client.py is a
# small client generated from the CRI proto of golang-k8s-cri-api-dev.
#
# usage: tests/clients/cri.sh [VERSION...]   (VERSION: trixie sid; default both)
# env:   HANDLERS    runtime handlers to run the scenarios on (default "runc berth")
#        BERTH_SHIM  the shim binary (default $CARGO_TARGET_DIR, else target/,
#                    .../x86_64-unknown-linux-gnu/debug/containerd-shim-berth-v2)
# Needs: root, jq, runc and busybox-static from Debian, python3-grpcio and
# python3-grpc-tools (installed if missing), access to Debian's archive.
# Prints one line per check and a final "N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
BERTH_SHIM=${BERTH_SHIM:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/debug/containerd-shim-berth-v2}
HANDLERS=${HANDLERS:-runc berth}
SUITES=("$@"); [ ${#SUITES[@]} -gt 0 ] || SUITES=(trixie sid)
W=$(mktemp -d /tmp/berth-cri.XXXXXX)
CG=berth-cri-${W##*.}            # cgroup parent of every pod, ours alone
PASS=0; FAIL=0; CTD_PID=; SOCK=
BB=localhost/test/busybox:latest
PAUSE=localhost/test/pause:latest

ok()  { PASS=$((PASS+1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL+1)); echo "FAIL $*"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$LABEL $1"; else bad "$LABEL $1: expected [$2], got [$3]"; fi; }

cri() { /usr/bin/python3 "$HERE/cri/client.py" --endpoint "unix://$SOCK" --gen-dir "$W/gen" "$@"; }

# Shim daemons serving a containerd whose socket is under $W (or is $1):
# "pid binary-name id", found through /proc/*/cmdline and /proc/*/exe.
shims() {
  local f pid a x id addr i exe
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    a=(); while IFS= read -r -d '' x; do a+=("$x"); done 2>/dev/null < "$f"
    case "${a[0]:-}" in *containerd-shim*) ;; *) continue;; esac
    case "${a[-1]}" in start|delete) continue;; esac   # one-off invocations
    id= addr=
    for ((i = 1; i < ${#a[@]} - 1; i++)); do
      case ${a[i]} in -address) addr=${a[i+1]};; -id) id=${a[i+1]};; esac
    done
    case "$addr" in "${1:-$W/}"*) ;; *) continue;; esac
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    exe=${exe% (deleted)}
    echo "$pid $(basename "$exe") $id"
  done
}

rm_pods() {
  local p
  for p in $(cri pods 2>/dev/null); do cri stopp "$p" >/dev/null 2>&1; cri rmp "$p" >/dev/null 2>&1; done
}

stop_containerd() {
  [ -n "$CTD_PID" ] || return 0
  kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
  CTD_PID=
}

cleanup() {
  local pid x m c
  [ -n "$CTD_PID" ] && rm_pods
  stop_containerd
  # Whatever containerd left behind: shims of our sockets, then the
  # containers in our cgroups, then mounts under $W, then the cgroups.
  while read -r pid x; do kill -9 "$pid" 2>/dev/null; done < <(shims)
  for c in /sys/fs/cgroup/*/"$CG"; do
    [ -d "$c" ] || continue
    find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
  done
  awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  sleep 0.2
  for c in /sys/fs/cgroup/*/"$CG"; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
trap "exit 130" INT TERM

for p in python3-grpcio python3-grpc-tools; do
  dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >&2 \
    || { echo "cannot install $p" >&2; exit 1; }
done
BIG=$W/stdin.bin
head -c 3145728 /dev/urandom > "$BIG"
BIG_SUM=$(md5sum < "$BIG" | cut -d' ' -f1)
OUT="$W/image" bash "$HERE/build-image.sh" > "$W/build-image.log" 2>&1 || { cat "$W/build-image.log"; exit 1; }
mkdir -p "$W/bin"
if [[ " $HANDLERS " == *" berth "* ]]; then
  if [ -x "$BERTH_SHIM" ]; then
    ln -s "$(readlink -f "$BERTH_SHIM")" "$W/bin/containerd-shim-berth-v2"
  else
    bad "no berth shim at $BERTH_SHIM: berth handler skipped"
    HANDLERS=${HANDLERS//berth/}
  fi
fi
BERTH_EXE=$(basename "$(readlink -f "$BERTH_SHIM")")

config() { # dir major-version
  local d=$1 runtime=io.containerd.grpc.v1.cri images=io.containerd.cri.v1.images
  [ "$2" -ge 2 ] && runtime=io.containerd.cri.v1.runtime
  ctd_base_config "$d" "$([ "$2" -ge 2 ] && echo 3 || echo 2)"
  cat <<EOF
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."$runtime"]
  restrict_oom_score_adj = true
  disable_apparmor = true
$([ "$2" -ge 2 ] || echo "  sandbox_image = \"$PAUSE\"")
[plugins."$runtime".cni]
  conf_dir = "$d/cni"
[plugins."$runtime".containerd]
  default_runtime_name = "runc"
[plugins."$runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."$runtime".containerd.runtimes.runc.options]
  Root = "$d/runc"
[plugins."$runtime".containerd.runtimes.berth]
  runtime_type = "io.containerd.berth.v2"
EOF
  # 2.x moved the sandbox image to the images plugin, as a pinned image.
  [ "$2" -ge 2 ] && printf '[plugins."%s".pinned_images]\n  sandbox = "%s"\n' "$images" "$PAUSE"
  return 0
}

start_containerd() { # dir major-version
  local d=$1
  mkdir -p "$d/cni" "$d/logs"
  config "$d" "$2" > "$d/config.toml"
  PATH="$W/bin:$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$BIN/containerd" --config "$d/config.toml" > "$d/containerd.log" 2>&1 &
  CTD_PID=$!
  for _ in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
  [ -S "$d/containerd.sock" ] && cri version >/dev/null 2>&1
}

pod_json() { # name -> $D/name.pod.json, log dir $D/logs/name
  mkdir -p "$D/logs/$1"
  jq -n --arg n "$1" --arg l "$D/logs/$1" --arg cg "/$CG" '{
    metadata: {name: $n, namespace: "berth-test", uid: ("uid-" + $n), attempt: 0},
    log_directory: $l,
    linux: {cgroup_parent: $cg, security_context: {namespace_options: {network: 2}}}}' > "$D/$1.pod.json"
}

ctr_json() { # name shell-command -> $D/name.ctr.json (WD=dir: its working_dir)
  jq -n --arg n "$1" --arg c "$2" --arg i "$BB" --arg w "${WD:-}" '{
    metadata: {name: $n, attempt: 0}, image: {image: $i},
    command: ["sh", "-c", $c], log_path: ($n + ".log"), linux: {}}
    + (if $w != "" then {working_dir: $w} else {} end)' > "$D/$1.ctr.json"
}

state() { cri inspect "$1" 2>/dev/null | jq -r '.status.state // empty'; }
shim_of() { shims "$SOCK" | awk -v id="$1" '$3 == id {print $2}' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
shim_name() { case $1 in runc) echo containerd-shim-runc-v2;; berth) echo "$BERTH_EXE";; esac; }

# runp NAME HANDLER -> prints the pod id
runp() { pod_json "$1" && cri runp --runtime "$2" "$D/$1.pod.json"; }
# run_ctr POD_ID POD_NAME CTR_NAME COMMAND -> prints the container id
run_ctr() {
  local c
  ctr_json "$3" "$4" && c=$(cri create "$1" "$D/$3.ctr.json" "$D/$2.pod.json") && cri start "$c" && echo "$c"
}

basic() { # handler
  local h=$1 p c r rc l w
  p=$(runp "basic-$h" "$h" 2>&1) || { bad "$LABEL run pod sandbox: $p"; return; }
  ok "$LABEL run pod sandbox"
  r=$(cri inspectp "$p" | jq -r '[.status.state, .status.runtime_handler] | join(" ")')
  check "pod ready on its handler" "SANDBOX_READY $h" "$r"
  check "pod's shim" "$(shim_name "$h")" "$(shim_of "$p")"
  c=$(run_ctr "$p" "basic-$h" c1 'echo hello-cri; sleep 1000' 2>&1) || { bad "$LABEL create+start container: $c"; cri stopp "$p"; cri rmp "$p"; return; }
  ok "$LABEL create+start container"
  check "container status" CONTAINER_RUNNING "$(state "$c")"
  r=$(cri exec-sync "$c" -- echo exec-out 2>&1); rc=$?
  check "exec-sync output" exec-out "$r"; check "exec-sync exit code" 0 "$rc"
  r=$(cri exec-sync "$c" -- sh -c 'echo to-err >&2; exit 7' 2>&1); rc=$?
  check "exec-sync nonzero exit code" 7 "$rc"; check "exec-sync stderr" to-err "$r"
  l=$D/logs/basic-$h/c1.log
  for _ in $(seq 30); do grep -q hello-cri "$l" 2>/dev/null && break; sleep 0.1; done
  r=$(grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+) stdout F hello-cri$' "$l" 2>/dev/null | wc -l)
  check "CRI log file '<time> stdout F hello-cri'" 1 "$r"
  [ "$r" = 1 ] || { echo "  $l:"; sed 's/^/  | /' "$l" 2>&1 | head -5; }
  # kubectl exec -i: 3 MiB of stdin through the streaming server, whole.
  r=$(cri exec-stream "$c" -- sh -c 'head -c 3145728 | md5sum' < "$BIG" 2>&1 | cut -d' ' -f1)
  check "exec -i through the streaming server: 3 MiB of stdin arrive whole" "$BIG_SUM" "$r"
  # Kubernetes' workingDir that the image lacks: the runtime makes it.
  w=$(WD=/does/not/exist run_ctr "$p" "basic-$h" c-wd 'pwd; sleep 1000' 2>&1) \
    && r=$(cri exec-sync "$w" -- pwd 2>&1) || r="create/exec failed: $w $r"
  check "a working directory the image lacks" /does/not/exist "$r"
  cri stop --timeout 0 "$w" >/dev/null 2>&1; cri rm "$w" >/dev/null 2>&1
  r=$(cri stop --timeout 0 "$c" 2>&1); check "stop container" "" "$r"
  r=$(cri inspect "$c" | jq -r '[.status.state, .status.exit_code] | join(" ")')
  check "status after stop (SIGKILL)" "CONTAINER_EXITED 137" "$r"
  r=$(cri rm "$c" 2>&1); check "remove container" "" "$r"
  check "container gone" "" "$(cri ps --pod "$p")"
  r=$(cri stopp "$p" 2>&1); check "stop pod" "" "$r"
  check "pod's shim gone after stop" "" "$(shim_of "$p")"
  r=$(cri rmp "$p" 2>&1); check "remove pod" "" "$r"
  check "pod gone" "" "$(cri pods | grep -x "$p")"
}

shared_shim() { # two containers of one berth pod, one shim
  local p c1 c2 r
  p=$(runp shared berth 2>&1) || { bad "$LABEL run pod sandbox: $p"; return; }
  c1=$(run_ctr "$p" shared c1 'sleep 1000' 2>&1) && c2=$(run_ctr "$p" shared c2 'sleep 1000' 2>&1) \
    || { bad "$LABEL two containers in one pod: $c1 $c2"; rm_pods; return; }
  check "two containers running" "CONTAINER_RUNNING CONTAINER_RUNNING" "$(state "$c1") $(state "$c2")"
  r=$(shims "$SOCK" | awk -v n="$BERTH_EXE" '$2 == n' | wc -l)
  check "one berth shim process for the pod and its two containers" 1 "$r"
  check "that shim serves the pod" "$BERTH_EXE" "$(shim_of "$p")"
  cri stop --timeout 0 "$c1" >/dev/null && cri stop --timeout 0 "$c2" >/dev/null \
    && cri rm "$c1" && cri rm "$c2" && cri stopp "$p" && cri rmp "$p"
  r=$?; check "pod with two containers removed" "0 0" "$r $(cri pods | wc -l)"
}

mixed() { # runc pod A and berth pod B at the same time
  local a b r
  a=$(runp mixed-a runc 2>&1) || { bad "$LABEL run runc pod: $a"; return; }
  b=$(runp mixed-b berth 2>&1) || { bad "$LABEL run berth pod next to a runc pod: $b"; rm_pods; return; }
  r=$(for p in "$a" "$b"; do cri inspectp "$p" | jq -r '.status.state + "/" + .status.runtime_handler'; done | tr '\n' ' ')
  check "runc and berth pods ready together" "SANDBOX_READY/runc SANDBOX_READY/berth " "$r"
  check "runc pod on containerd-shim-runc-v2" containerd-shim-runc-v2 "$(shim_of "$a")"
  check "berth pod on $BERTH_EXE" "$BERTH_EXE" "$(shim_of "$b")"
  cri stopp "$b" && cri rmp "$b"; check "berth pod removed" 0 $?
  check "runc pod still ready" SANDBOX_READY "$(cri inspectp "$a" | jq -r .status.state)"
  cri stopp "$a" && cri rmp "$a"; check "runc pod removed" 0 $?
}

for suite in "${SUITES[@]}"; do
  U=$(bash "$ROOT/hack/clients/fetch.sh" "$suite" containerd) || { bad "fetch containerd from $suite"; continue; }
  BIN=$U/usr/bin
  D=$W/$suite
  SOCK=$D/containerd.sock
  VER=$("$BIN/containerd" --version | awk '{print $3}')
  LABEL="containerd $VER:"; F0=$FAIL
  start_containerd "$D" "${VER%%.*}" || { bad "$LABEL containerd did not start"; tail -20 "$D/containerd.log"; stop_containerd; continue; }
  "$BIN/ctr" -a "$SOCK" -n k8s.io images import "$W/image/test-images.oci.tar" > "$D/import.log" 2>&1 \
    || { bad "$LABEL image import"; cat "$D/import.log"; }
  for i in $(seq 50); do [ -n "$(cri image "$PAUSE" 2>/dev/null | jq -r '.image.id // empty')" ] && break; sleep 0.1; done
  check "CRI sees the imported images" "$PAUSE $BB" \
    "$(for i in "$PAUSE" "$BB"; do cri image "$i" | jq -r '.image.repo_tags[0] // empty'; done | tr '\n' ' ' | sed 's/ $//')"
  for h in $HANDLERS; do
    LABEL="containerd $VER / $h:"
    basic "$h"
    if [ "$h" = berth ]; then shared_shim; mixed; fi
  done
  LABEL="containerd $VER:"
  rm_pods
  check "no shim left once the pods are gone" "" "$(shims "$SOCK")"
  stop_containerd
  if [ "$FAIL" != "$F0" ]; then   # show containerd's side of the failures
    echo "  containerd $VER log, errors:"; grep -E 'level=(error|fatal)' "$D/containerd.log" | tail -20 | sed 's/^/  | /'
  fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
