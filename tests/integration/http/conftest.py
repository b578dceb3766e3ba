"""Fixtures for the http_health tests: real HTTP(S) servers on 127.0.0.1 (random free ports),
started for the test session and stopped after it. No lab component is needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from http_servers import LocalServers  # noqa: E402


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    local = LocalServers(tmp_path_factory.mktemp("http-health")).start()
    try:
        yield local
    finally:
        local.close()
