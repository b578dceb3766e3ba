"""_pgbouncer: parse and re-point pgbouncer.ini's [databases] entries (issue 15)."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._pgbouncer import (
    ConfigError,
    databases,
    entry_target,
    plan_repoint,
    retarget,
    stale_live,
)

INI = """; pooler
[databases]
app = host=db1 port=5432 dbname=app password='s3 cret'
; reports = host=old
* = host=/var/run/pg port=25432

[pgbouncer]
listen_port = 6432
host = not-a-database
"""


def test_entries_and_targets():
    assert [(e["name"], e["host"], e["port"]) for e in databases(INI)] == [
        ("app", "db1", 5432), ("*", "/var/run/pg", 25432)]
    assert entry_target("dbname=x") == (None, 5432)
    assert entry_target("host='a b' port=x") == ("a b", None)


def test_retarget_keeps_other_keys_and_adds_missing():
    assert retarget("host=db1 port=5432 dbname=app password='s3 cret'", "db2", 5433) == \
        "host=db2 port=5433 dbname=app password='s3 cret'"
    assert retarget("dbname=app", "db2", 5432) == "dbname=app host=db2 port=5432"
    assert retarget("HOST=db1", "a b", 1) == "host='a b' port=1"


def test_plan_repoints_every_entry_only_in_databases():
    text, changes = plan_repoint(INI, "10.0.0.2", 5432)
    assert changes == [{"name": "app", "before": "db1:5432", "after": "10.0.0.2:5432"},
                       {"name": "*", "before": "/var/run/pg:25432", "after": "10.0.0.2:5432"}]
    assert "app = host=10.0.0.2 port=5432 dbname=app password='s3 cret'\n" in text
    assert "* = host=10.0.0.2 port=5432\n" in text
    assert "; reports = host=old" in text and "host = not-a-database" in text
    assert "s3 cret" not in repr(changes)
    again, none = plan_repoint(text, "10.0.0.2", 5432)
    assert none == [] and again == text


def test_plan_selected_names_and_errors():
    changes = plan_repoint(INI, "db2", 5432, ["app"])[1]
    assert [c["name"] for c in changes] == ["app"]
    with pytest.raises(ConfigError, match="no \\[databases\\] entry named nope"):
        plan_repoint(INI, "db2", 5432, ["nope"])
    with pytest.raises(ConfigError, match="no \\[databases\\] section"):
        plan_repoint("[pgbouncer]\nlisten_port = 1\n", "db2", 5432)
    with pytest.raises(ConfigError, match="no entry"):
        plan_repoint("[databases]\n; empty\n", "db2", 5432)


def test_stale_live_rows():
    entries = databases(INI)
    rows = [{"name": "app", "host": "db1", "port": 5432}, {"name": "auto", "host": "db2", "port": 5432},
            {"name": "other", "host": "old", "port": 5432}, {"name": "pgbouncer", "host": None, "port": 6432}]
    assert stale_live(rows, entries, "db2", 5432) == [{"name": "app", "live": "db1:5432"},
                                                      {"name": "other", "live": "old:5432"}]
    assert stale_live(rows, entries, "db2", 5432, ["app"]) == [{"name": "app", "live": "db1:5432"}]
