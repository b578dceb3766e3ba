"""Every test gets its own incident records (sre.runbooks.incident_start): runs within one test
share an incident, as re-runs of one outage do; no test sees another test's incident."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _own_incident_records(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SRE_RUNBOOKS_STATE_DIR", str(tmp_path_factory.mktemp("incidents")))


# Integration areas whose lab needs a build that a fresh machine does in the background while the
# tests run (scripts/test.sh): the systemd hosts' rootfs (docker imports its image from it) and
# the Kubernetes binaries. They run after the areas that need neither, so a cold run waits for
# the builds less; the order inside an area, and of unit, drills and quality, is unchanged.
_NEEDS_ROOTFS = ("docker", "systemd")
_NEEDS_K8S = ("k8s",)


def _build_rank(path) -> int:
    parts = path.parts
    if "integration" not in parts:
        return 0
    area = parts[parts.index("integration") + 1] if parts.index("integration") + 1 < len(parts) else ""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        source = ""
    if area in _NEEDS_K8S or 'lab_running("k8s")' in source:
        return 3
    if area == "systemd" or 'lab_running("hosts"' in source:
        return 2
    if area in _NEEDS_ROOTFS:
        return 1
    return 0


# Lanes: scripts/test.sh runs the whole suite as several pytest processes at once, one per lane
# (SRE_TEST_LANE). A lane owns the lab components its tests start, break and stop, so no two
# lanes ever touch the same component at the same time; the `cross` lane holds the tests that
# need components of several lanes and runs after them. A test this map does not name runs in
# `cross`: after everything else, alone, as the whole suite used to run.
LANES = ("unit", "pg", "redis", "hosts", "docker", "k8s", "misc", "cross")
_LANE_OF_AREA = {
    "unit": "unit", "quality": "unit",
    "postgres": "pg", "pgrepl": "pg",                     # lab pg, lab pgrepl
    "redis": "redis",                                     # lab redis
    "systemd": "hosts",                                   # lab hosts (systemd-nspawn)
    "docker": "docker",                                   # lab docker
    "k8s": "k8s", "stripe": "k8s",                        # lab k8s; the Stripe lab (and its Secret test)
    "kafka": "misc", "http": "misc", "timeline": "misc", "notify": "misc",
}
_LANE_OF_FILE = {
    "test_triage_on_lab_postgres.py": "pg",
    "test_triage_on_lab_redis.py": "redis",
    "test_k8s_db_exhaustion_pooler.py": "cross",          # lab k8s and lab pg
    "test_alert_to_recovery.py": "cross",                 # lab obs, pg, redis and hosts
    "test_drills.py": "unit",                             # but each drill: _LANE_OF_DRILL
}
# Drills by the lab components they boot (molecule/<drill>/create.yml; none: the systemd hosts).
_LANE_OF_DRILL = {
    "db_down": "pg", "lock_contention": "pg", "slow_queries": "pg",
    "default": "hosts", "db_exhaustion": "hosts", "disk_full": "hosts", "network_partition": "hosts",
    "redis_unavailable": "hosts", "service_down": "hosts",
    "db_exhaustion_compose": "docker", "memory_exhaustion_compose": "docker",
    "redis_unavailable_compose": "docker", "service_down_compose": "docker",
    "crashloop": "k8s", "node_failure": "k8s", "stripe_webhooks": "k8s",
    "kafka_lag": "cross",                                 # the Kafka lab and the systemd hosts
}


def _file_lane(path) -> str:
    parts = path.parts
    if path.name in _LANE_OF_FILE:
        return _LANE_OF_FILE[path.name]
    for key in ("unit", "quality"):
        if key in parts:
            return "unit"
    if "integration" in parts and parts.index("integration") + 1 < len(parts):
        return _LANE_OF_AREA.get(parts[parts.index("integration") + 1], "cross")
    return "cross"


def lane_of(item) -> str:
    """The lane a collected test runs in."""
    callspec = getattr(item, "callspec", None)
    if item.path.name == "test_drills.py" and callspec is not None and "drill" in callspec.params:
        return _LANE_OF_DRILL.get(callspec.params["drill"], "cross")
    return _file_lane(item.path)


def _selected_lanes(config) -> set[str] | None:  # noqa: ARG001  (a hook's argument)
    """SRE_TEST_LANE=pg,redis: only these lanes' tests; unset: every test."""
    value = os.environ.get("SRE_TEST_LANE", "")
    if not value:
        return None
    lanes = {lane.strip() for lane in value.split(",") if lane.strip()}
    unknown = lanes - set(LANES)
    if unknown:
        raise pytest.UsageError(f"unknown lane(s) {sorted(unknown)}; lanes: {', '.join(LANES)}")
    return lanes


def pytest_ignore_collect(collection_path, config):
    """A lane does not even import the test files of other lanes (test_drills.py is split per drill)."""
    lanes = _selected_lanes(config)
    if lanes is None or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.name == "test_drills.py":
        return None
    return True if _file_lane(collection_path) not in lanes else None


def pytest_collection_modifyitems(session, config, items):
    lanes = _selected_lanes(config)
    if lanes is not None:
        kept = [item for item in items if lane_of(item) in lanes]
        dropped = [item for item in items if lane_of(item) not in lanes]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    top = {"unit": 0, "integration": 1, "drills": 2, "quality": 3}
    ranks: dict = {}

    def key(item):
        path = item.path
        if path not in ranks:
            kind = next((top[p] for p in path.parts if p in top), 1)
            ranks[path] = (kind, _build_rank(path) if kind == 1 else 0)
        return ranks[path]

    items.sort(key=key)  # stable: pytest's order within each group is kept
