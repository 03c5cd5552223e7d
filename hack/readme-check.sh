#!/bin/bash
# readme-check.sh: runs README.md's first command (install and run a
# container) exactly as written, in a fresh clone of this repository's
# HEAD, with CARGO_TARGET_DIR set, and checks it ends with the container's
# own output. Run as root; it installs berth to /usr/local/bin as the
# README says.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The first command line of the README's first sh block.
cmd=$(awk '/^```sh/{b=1; next} /^```/{if(b) exit} b && $0 !~ /^#/ && NF {print; exit}' "$ROOT/README.md")
[ -n "$cmd" ] || { echo "readme-check: no command found in README.md" >&2; exit 1; }
W=$(mktemp -d /tmp/berth-readme.XXXXXX)
trap 'rm -rf "$W"' EXIT
git clone -q "$ROOT" "$W/berth"
# A target dir of its own name, as a newcomer's CARGO_TARGET_DIR would be
# (the crates it shares with the main build are reused from there).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "readme-check: running '$cmd' in a fresh clone (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
out=$(cd "$W/berth" && bash -c "$cmd" 2>&1) || { echo "$out"; echo "readme-check: '$cmd' failed" >&2; exit 1; }
echo "$out" | tail -8
echo "$out" | grep -q '^hello from ' || { echo "readme-check: no container output" >&2; exit 1; }
/usr/local/bin/berth --version | head -1
echo "readme-check: ok"
