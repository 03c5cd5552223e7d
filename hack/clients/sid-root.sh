#!/bin/bash
# A Debian sid root (debootstrap, minbase) with the current runc and crun,
# for benchmarking berth against today's peers: they need a newer glibc
# than bookworm's, so they run chrooted there. Cached; the host's apt state
# is untouched (debootstrap keeps its own).
#
# usage: hack/clients/sid-root.sh     (prints the root's path)
set -euo pipefail
R=${BERTH_SID_ROOT:-/var/tmp/berth-sid-root}
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
exec 9>"$R.lock"; flock 9
if [ ! -e "$R/.berth-ready" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
  rm -rf "$R"
  debootstrap --variant=minbase --include=runc,crun sid "$R" "$MIRROR" >&2
  touch "$R/.berth-ready"
fi
echo "$R"
