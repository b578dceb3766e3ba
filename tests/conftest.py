"""Every test gets its own incident records (sre.runbooks.incident_start): runs within one test
share an incident, as re-runs of one outage do; no test sees another test's incident."""

from __future__ import annotations

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


def pytest_collection_modifyitems(session, config, items):
    top = {"unit": 0, "integration": 1, "drills": 2, "quality": 3}
    ranks: dict = {}

    def key(item):
        path = item.path
        if path not in ranks:
            kind = next((top[p] for p in path.parts if p in top), 1)
            ranks[path] = (kind, _build_rank(path) if kind == 1 else 0)
        return ranks[path]

    items.sort(key=key)  # stable: pytest's order within each group is kept
