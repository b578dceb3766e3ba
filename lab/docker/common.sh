# Shared by lab/docker/{up,down,status}: a Docker engine of the lab's own (Debian docker.io,
# started by these scripts: PID 1 is not systemd) and one docker-compose v1 project on it.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# shellcheck source=../lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

DOCKER_DIR="$LAB_STATE_DIR/docker"
DATA_ROOT="$DOCKER_DIR/data"
EXEC_ROOT="$DOCKER_DIR/exec"
SOCKET="$DOCKER_DIR/docker.sock"
PIDFILE="$DOCKER_DIR/dockerd.pid"
PROJECT_DIR="$DOCKER_DIR/project"
# Bind-mounted into the worker: a file here is how a test makes it crash or eat memory.
TRIGGER_DIR="$DOCKER_DIR/trigger"
# Every container's cgroup sits under this parent, so down finds (and ends) exactly ours.
CGROUP_PARENT="sre-lab-docker-$(printf '%s' "$LAB_STATE_DIR" | sha256sum | cut -c1-4)"
PROJECT="$(lab_var lab_docker_project)"
BIND="$(lab_var lab_bind_address)"
API_PORT="$(lab_var lab_docker_api_port)"
REDIS_PORT="$(lab_var lab_docker_redis_port)"
WORKER_MEM_LIMIT="$(lab_var lab_docker_worker_mem_limit)"
# Debian's client, not whatever else is first on PATH: it matches the daemon's API version.
DOCKER=/usr/bin/docker
export DOCKER_HOST="unix://$SOCKET"

docker_cli() { "$DOCKER" "$@"; }
compose() { docker-compose --project-directory "$PROJECT_DIR" -p "$PROJECT" -f "$PROJECT_DIR/docker-compose.yml" "$@"; }
daemon_alive() { pid_alive "$PIDFILE" && [[ -S "$SOCKET" ]]; }
