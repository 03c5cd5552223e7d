#!/bin/bash
# Fetches newer containerd (and runc) releases from Debian's newer suites
# without touching the host's apt state: a private source list, lists and
# cache under $CACHE, `apt-get download`, `dpkg-deb -x`.
#
# usage: hack/clients/fetch.sh SUITE PACKAGE...    (prints the unpack dir)
# e.g.   hack/clients/fetch.sh trixie containerd   → $CACHE/trixie/root/usr/bin/containerd
set -euo pipefail
SUITE=$1; shift
CACHE=${BERTH_CLIENTS_CACHE:-/var/tmp/berth-clients}
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
D=$CACHE/$SUITE
mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/debs" "$D/root"
exec 9>"$D/.lock"; flock 9
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" > "$D/sources.list"
APT=(apt-get -q -o Dir::Etc::sourcelist="$D/sources.list" -o Dir::Etc::sourceparts=- \
     -o Dir::State::Lists="$D/lists" -o Dir::Cache="$D/cache" -o APT::Sandbox::User=root)
if [ ! -e "$D/lists/.updated" ] || [ -n "$(find "$D/lists/.updated" -mmin +1440)" ]; then
  "${APT[@]}" update >&2
  touch "$D/lists/.updated"
fi
for p in "$@"; do
  if [ ! -e "$D/debs/$p.done" ]; then
    (cd "$D/debs" && rm -f "${p}"_*.deb && "${APT[@]}" download "$p" >&2)
    dpkg-deb -x "$D"/debs/"${p}"_*.deb "$D/root"
    touch "$D/debs/$p.done"
  fi
done
echo "$D/root"
