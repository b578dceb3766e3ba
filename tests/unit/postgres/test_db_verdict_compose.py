"""db_verdict's docker-compose branch (issue 14): the pooler's compose service decides whether the
pooler container is restarted - every branch of _pooler_service_problem."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.filter.db_verdict import db_verdict


def reading(percent):
    return {"utilisation_percent": percent, "client_backends": 21, "usable_connections": 22}


def terminated(percent):
    return {"changed": False, "acted": 0, "server": {"utilisation_percent": percent}}


def service_info(*names, restarted=(), project="shop", failed=False):
    info = {"projects": [project] if project else [], "acted": {"restart": list(restarted), "start": []},
            "services": {"pgbouncer": [{"name": n, "state": "running"} for n in names]} if names else {}}
    if failed:
        info.update(failed=True, msg="cannot reach the Docker engine at unix:///x.sock")
    return info


def pooler(info, percent_left=95.0, **extra):
    return db_verdict(reading(95.0), terminated=terminated(percent_left), pooler_service=info,
                      pooler_service_name="pgbouncer", **extra)["pooler"]


def test_an_existing_pooler_container_is_restarted():
    p = pooler(service_info("shop_pgbouncer_1"))
    assert p["needed"] is True and p["restart"] is True and p["skipped"] is None


def test_a_pooler_service_without_a_container_is_skipped_not_created():
    p = pooler(service_info())
    assert p["restart"] is False
    assert "pooler service pgbouncer has no container in compose project shop" in p["skipped"]
    assert "db_exhaustion_pooler_compose_service" in p["skipped"]


def test_an_unknown_project_is_named_in_the_skip():
    p = pooler(service_info(project=None))
    assert p["restart"] is False and "no container found" in p["skipped"]


def test_a_failed_read_of_the_pooler_service_refuses():
    p = pooler(service_info("shop_pgbouncer_1", failed=True))
    assert p["restart"] is False and "cannot read the pooler's compose service pgbouncer" in p["skipped"]


def test_a_read_failure_masked_by_failed_when_still_refuses():
    info = {"failed": False, "msg": "cannot reach the Docker engine at unix:///x.sock", "services": {}}
    p = pooler(info)
    assert p["restart"] is False and "cannot reach the Docker engine" in p["skipped"]


def test_a_pooler_already_restarted_this_incident_is_not_restarted_again():
    p = pooler(service_info("shop_pgbouncer_1", restarted=["shop_pgbouncer_1"]))
    assert p["restart"] is False and "already restarted during this incident" in p["skipped"]


def test_one_of_two_pooler_containers_restarted_still_restarts_the_other():
    # compose_service's own restarted_after then restarts only the one not restarted yet.
    p = pooler(service_info("shop_pgbouncer_1", "shop_pgbouncer_2", restarted=["shop_pgbouncer_1"]))
    assert p["restart"] is True


@pytest.mark.parametrize("left", [20.0, 79.9])
def test_terminating_enough_needs_no_pooler_at_all(left):
    p = pooler(service_info(), percent_left=left)
    assert p == {"needed": False, "restart": False, "skipped": None, "utilisation_after_terminating": left}


def test_a_disabled_pooler_restart_wins_over_the_service_check():
    p = pooler(service_info("shop_pgbouncer_1"), restart_pooler=False)
    assert p["restart"] is False and "disabled" in p["skipped"]


def test_the_skip_reaches_the_summary():
    verdict = db_verdict(reading(95.0), terminated=terminated(95.0), pooler_service=service_info(),
                         pooler_service_name="pgbouncer")
    assert "has no container" in verdict["summary"]
