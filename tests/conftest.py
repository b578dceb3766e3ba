"""Every test gets its own incident records (sre.runbooks.incident_start): runs within one test
share an incident, as re-runs of one outage do; no test sees another test's incident."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_incident_records(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SRE_RUNBOOKS_STATE_DIR", str(tmp_path_factory.mktemp("incidents")))
