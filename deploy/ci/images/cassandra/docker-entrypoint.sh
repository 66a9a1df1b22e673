#!/usr/bin/env bash
# The official cassandra image's entrypoint contract: as root, own the data,
# log and configuration directories and drop to the cassandra user; then
# write this container's address, the seeds and CASSANDRA_CLUSTER_NAME,
# CASSANDRA_NUM_TOKENS, CASSANDRA_ENDPOINT_SNITCH, CASSANDRA_DC and
# CASSANDRA_RACK into $CASSANDRA_CONF before starting the node.
set -euo pipefail

if [[ ${1:0:1} == - ]]; then set -- cassandra -f "$@"; fi

if [[ $1 == cassandra && $(id -u) == 0 ]]; then
  find /var/lib/cassandra /var/log/cassandra "$CASSANDRA_CONF" \! -user cassandra -exec chown cassandra '{}' +
  exec gosu cassandra "$BASH_SOURCE" "$@"
fi

ip_address() { ip -4 -o address | awk '$2 != "lo" { sub(/\/.*/, "", $4); print $4; exit }'; }

sed_yaml() {
  local tmp
  tmp=$(mktemp)
  sed -r "$1" "$CASSANDRA_CONF/cassandra.yaml" >"$tmp"
  cat "$tmp" >"$CASSANDRA_CONF/cassandra.yaml"
  rm -f "$tmp"
}

if [[ $1 == cassandra ]]; then
  : "${CASSANDRA_RPC_ADDRESS:=0.0.0.0}"
  : "${CASSANDRA_LISTEN_ADDRESS:=auto}"
  [[ $CASSANDRA_LISTEN_ADDRESS == auto ]] && CASSANDRA_LISTEN_ADDRESS=$(ip_address)
  : "${CASSANDRA_BROADCAST_ADDRESS:=$CASSANDRA_LISTEN_ADDRESS}"
  [[ $CASSANDRA_BROADCAST_ADDRESS == auto ]] && CASSANDRA_BROADCAST_ADDRESS=$(ip_address)
  : "${CASSANDRA_BROADCAST_RPC_ADDRESS:=$CASSANDRA_BROADCAST_ADDRESS}"
  if [[ -n ${CASSANDRA_SEEDS:-} ]]; then
    # As the official image: a seed given by name resolves to its address.
    seeds=()
    IFS=, read -r -a names <<<"$CASSANDRA_SEEDS"
    for n in "${names[@]}"; do
      seeds+=("$(getent hosts "$n" | awk '{print $1; exit}' || true)")
      [[ -n ${seeds[-1]} ]] || seeds[-1]=$n
    done
    CASSANDRA_SEEDS=$(IFS=,; echo "${seeds[*]}")
  else
    CASSANDRA_SEEDS=$CASSANDRA_BROADCAST_ADDRESS
  fi
  sed_yaml 's/(- seeds:).*/\1 "'"$CASSANDRA_SEEDS"'"/'
  export CASSANDRA_RPC_ADDRESS CASSANDRA_LISTEN_ADDRESS CASSANDRA_BROADCAST_ADDRESS CASSANDRA_BROADCAST_RPC_ADDRESS
  for key in broadcast_address broadcast_rpc_address cluster_name endpoint_snitch listen_address num_tokens rpc_address; do
    var=CASSANDRA_${key^^}
    val=${!var:-}
    if [[ -n $val ]]; then
      sed_yaml 's/^(# )?('"$key"':).*/\2 '"$val"'/'
    fi
  done
  for rackdc in dc rack; do
    var=CASSANDRA_${rackdc^^}
    val=${!var:-}
    if [[ -n $val ]]; then
      touch "$CASSANDRA_CONF/cassandra-rackdc.properties"
      sed -ri 's/^('"$rackdc"'=).*/\1 '"$val"'/' "$CASSANDRA_CONF/cassandra-rackdc.properties"
    fi
  done
fi

exec "$@"
