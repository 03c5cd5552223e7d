# Shared by the client scripts (sourced): the part of a containerd config
# that gives a test daemon its own root, state and sockets under DIR.
ctd_base_config() { # DIR CONFIG-VERSION
  cat <<EOT
version = $2
root = "$1/root"
state = "$1/state"
[grpc]
  address = "$1/containerd.sock"
[ttrpc]
  address = "$1/containerd.sock.ttrpc"
EOT
}

# apt-get install whichever of PKG... is missing, non-interactively and
# without starting their services (a policy-rc.d that refuses every start
# is put in place for the install if the machine has none).
apt_install() { # PKG...
  local p missing=() prc=
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && prc=1
  fi
  local APT=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  "${APT[@]}" "${missing[@]}" >&2 || { apt-get -q update >&2 && "${APT[@]}" "${missing[@]}" >&2; }
  local rc=$?
  [ -n "$prc" ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}
