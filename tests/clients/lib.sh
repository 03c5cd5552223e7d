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
