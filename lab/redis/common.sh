# Shared by lab/redis/{up,down,status,reset}: the topology, read from the lab inventory.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# shellcheck source=../lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

REDIS_DIR="$LAB_STATE_DIR/redis"
BIND="$(lab_var lab_bind_address)"
MASTER_NAME="$(lab_var lab_redis_master_name)"
MASTER_PORT="$(lab_var lab_redis_master_port)"
NODE_PORTS=("$MASTER_PORT" "$(lab_var lab_redis_replica1_port)" "$(lab_var lab_redis_replica2_port)")
SENTINEL_PORTS=("$(lab_var lab_redis_sentinel1_port)" "$(lab_var lab_redis_sentinel2_port)" "$(lab_var lab_redis_sentinel3_port)")
# Redis's own default is 30000; the benchmark starts the lab with 5000 to compare.
DOWN_AFTER_MS="${LAB_REDIS_DOWN_AFTER_MS:-30000}"
FAILOVER_TIMEOUT_MS="${LAB_REDIS_FAILOVER_TIMEOUT_MS:-10000}"

# The password stays out of argv and output: redis-cli reads REDISCLI_AUTH.
redis_password() { lab_var lab_redis_password; }

# rcli PORT ARGS...: redis-cli against a lab node (authenticated).
rcli() {
  local port="$1"; shift
  REDISCLI_AUTH="$(redis_password)" redis-cli --no-auth-warning -h "$BIND" -p "$port" "$@"
}

# scli PORT ARGS...: redis-cli against a lab sentinel (sentinels have no password).
scli() {
  local port="$1"; shift
  redis-cli -h "$BIND" -p "$port" "$@"
}

node_dir() { echo "$REDIS_DIR/node-$1"; }
sentinel_dir() { echo "$REDIS_DIR/sentinel-$1"; }

# pidfiles of everything this lab starts, sentinels first (stop order).
all_pidfiles() {
  local p
  for p in "${SENTINEL_PORTS[@]}"; do echo "$(sentinel_dir "$p")/sentinel.pid"; done
  for p in "${NODE_PORTS[@]}"; do echo "$(node_dir "$p")/redis.pid"; done
}
