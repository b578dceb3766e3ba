"""The lab PostgreSQL pair for the db_down tests: lab/pg (primary) + lab/pgrepl (standby), started
once for the session and stopped afterwards (unless already running)."""

from __future__ import annotations

import typing as t

import pytest

import sre_testlib
from pg_pair import Pair, pair_settings, restore, streaming, wait_for


@pytest.fixture(scope="session")
def pair() -> t.Iterator[Pair]:
    with sre_testlib.lab_running("pg"), sre_testlib.lab_running("pgrepl"):
        settings = pair_settings()
        wait_for(lambda: streaming(settings), 60, "the standby to stream")
        yield settings


@pytest.fixture
def healthy_pair(pair: Pair) -> t.Iterator[Pair]:
    """The pair, healthy before the test and restored after it (whatever the test broke)."""
    restore(pair)
    try:
        yield pair
    finally:
        restore(pair)
