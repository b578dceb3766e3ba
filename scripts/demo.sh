#!/usr/bin/env bash
# The demo drill: a real PostgreSQL runs out of connection slots, the runbook playbook heals it.
#   make demo
# Starts the lab PostgreSQL + pgbouncer, fills every slot a non-superuser may use with idle and
# idle-in-transaction sessions (a leaking application), shows the runbook's own diagnosis,
# runs playbooks/outage/db_exhaustion.yml, shows the result, and stops the lab.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
. lab/lib.sh
export ANSIBLE_CONFIG="$repo/ansible.cfg"

started_lab=0
cleanup() {
  lab/pg/inject stop >/dev/null 2>&1 || true
  if [[ $started_lab == 1 ]]; then lab/lab pg down || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
runbook_query() {
  PGPASSWORD="$(lab_var lab_pg_password)" psql -X -h "$(lab_var lab_bind_address)" -p "$(lab_var lab_pg_port)" \
    -U "$(lab_var lab_pg_superuser)" -d postgres -c \
    "SELECT count(*), state FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY state ORDER BY 1 DESC;"
}
app_connects() {
  if PGPASSWORD="$(lab_var lab_pg_app_password)" PGCONNECT_TIMEOUT=5 psql -X -q -h "$(lab_var lab_bind_address)" \
      -p "$(lab_var lab_pg_port)" -U "$(lab_var lab_pg_app_user)" -d "$(lab_var lab_pg_app_user)" -Atc "SELECT 'ok'" >/dev/null 2>/tmp/sre-demo-err.$$; then
    echo "application login as $(lab_var lab_pg_app_user): OK"
  else
    echo "application login as $(lab_var lab_pg_app_user): FAILED: $(head -1 /tmp/sre-demo-err.$$)"
  fi
  rm -f /tmp/sre-demo-err.$$
}

banner "1/5 Lab: PostgreSQL 15 + pgbouncer on 127.0.0.1 (inventories/lab/group_vars/all/lab.yml)"
lab/lab pg status || { started_lab=1; lab/lab pg up; }

banner "2/5 Fault: an application leaks connections until no slot is left"
max_conn="$(lab_var lab_pg_max_connections)"
usable=$((max_conn - 3))
lab/pg/inject $((usable - 60)) 60
sleep 3   # let the sessions age past the demo's 3-second idle threshold
runbook_query
app_connects

banner "3/5 Runbook: ansible-playbook playbooks/outage/db_exhaustion.yml -i inventories/lab"
start=$(date +%s.%N)
.venv/bin/ansible-playbook playbooks/outage/db_exhaustion.yml -i inventories/lab -l lab-postgres \
  -e db_exhaustion_min_idle=3s -e db_exhaustion_min_idle_in_transaction=3s
end=$(date +%s.%N)

banner "4/5 After: the same diagnosis, and the application can log in again"
runbook_query
app_connects
awk -v s="$start" -v e="$end" 'BEGIN { printf "playbook wall time: %.1f s\n", e - s }'

banner "5/5 A second run finds a healthy server and changes nothing"
.venv/bin/ansible-playbook playbooks/outage/db_exhaustion.yml -i inventories/lab -l lab-postgres \
  -e db_exhaustion_min_idle=3s -e db_exhaustion_min_idle_in_transaction=3s | grep -E 'msg:|lab-postgres +:' || true
