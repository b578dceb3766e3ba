"""No-fault control (issue 9): db_exhaustion against the healthy lab PostgreSQL - nothing injected,
changes nothing and says healthy, nothing to do."""

from __future__ import annotations

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "db_exhaustion.yml"
RECORD_TASK = "sre.runbooks.db_exhaustion : Record | structured result for the incident timeline"


def client_pids(admin) -> set[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND application_name <> 'sre.runbooks' AND pid <> pg_backend_pid()")
        return {row[0] for row in cur.fetchall()}


def test_a_healthy_server_is_left_alone(pg_lab, admin, sessions):
    # Old-enough idle sessions exist, but utilisation is far under the threshold: nothing to do.
    idle = {session.pid for session in sessions.many_idle(3)}
    before = client_pids(admin)
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, limit="lab-postgres",
                                                  extra_vars={"db_exhaustion_min_idle": "0s"})
    assert rc == 0, stderr[-2000:]
    changed = [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
               if task["hosts"].get("lab-postgres", {}).get("changed")]
    assert changed == []
    result = sre_testlib.task_results(report, RECORD_TASK)["lab-postgres"]["ansible_facts"]["db_exhaustion_result"]
    assert result["outcome"] == "no action needed"
    assert result["actions"] == [] and result["terminated"] == 0 and result["matched"] == 0
    assert result["healthy"] is True and result["verdict"].startswith("healthy, nothing to do")
    assert idle <= client_pids(admin) and before <= client_pids(admin)
