"""Unit tests for the slow query reads' text logic (plugins/module_utils/_pg_statements.py): literal
redaction, statement kinds, which statements may be EXPLAINed."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._pg_statements import (
    explain_refusal,
    parameter_count,
    redact,
    redact_activity,
    redact_literals,
    statement_kind,
)


@pytest.mark.parametrize("text", [None, ""])
def test_empty_passes_through(text):
    assert redact_literals(text) == text


@pytest.mark.parametrize("text, expected", [
    ("SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
     "SELECT * FROM users WHERE email = ? AND id = ?"),
    ("SELECT $1, $12 FROM t2 WHERE c3 = $2", "SELECT $1, $12 FROM t2 WHERE c3 = $2"),
    ("SELECT 'it''s', E'a\\'b', U&'d\\0061t', B'1010', X'1F'", "SELECT ?, ?, ?, ?, ?"),
    ("SELECT $$secret$$, $tag$more; 'x'$tag$ FROM t", "SELECT ?, ? FROM t"),
    ("SELECT 1.5e10, .5, 0x1F, -3, 1_000", "SELECT ?, ?, ?, -?, ?"),
    ('SELECT "col 42", "a""b" FROM "T1"', 'SELECT "col 42", "a""b" FROM "T1"'),
    ("SELECT a$b, x1 FROM t -- keep 'comment'\n", "SELECT a$b, x1 FROM t -- keep 'comment'\n"),
    ("SELECT 1 /* c 2 */", "SELECT ? /* c 2 */"),
    ("INSERT INTO t VALUES ('cut sho", "INSERT INTO t VALUES (?"),
    ("SELECT $$never closed", "SELECT ?"),
    ("SELECT pg_sleep(600)", "SELECT pg_sleep(?)"),
])
def test_literals_are_redacted(text, expected):
    assert redact_literals(text) == expected


def test_redact_masks_secrets_and_truncates():
    text = "ALTER ROLE app PASSWORD 'hunter2'; SELECT 'postgresql://u:pw@h/db'"
    out = redact(text, limit=1000)
    assert "hunter2" not in out and "pw@" not in out
    assert redact("SELECT 123456789", limit=10) == "SELECT ?"[:10]
    assert len(redact("SELECT " + "a, " * 100, limit=20)) == 20


@pytest.mark.parametrize("text, kind", [
    ("SELECT 1", "read"),
    ("  (SELECT 1) UNION SELECT 2", "read"),
    ("/* app */ select * from t", "read"),
    ("-- hi\nVALUES (1)", "read"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "read"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "write"),
    ("WITH x AS (SELECT 'delete') SELECT * FROM x", "read"),
    ("UPDATE t SET a = 1", "write"),
    ("insert into t values (1)", "write"),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING", "write"),
    ("CREATE INDEX CONCURRENTLY i ON t (a)", "utility"),
    ("VACUUM FULL t", "utility"),
    ("COPY t TO STDOUT", "utility"),
    ("", "utility"),
    (None, "utility"),
])
def test_statement_kind(text, kind):
    assert statement_kind(text) == kind


@pytest.mark.parametrize("text", [
    "SELECT * FROM t WHERE id = $1",
    "WITH x AS (SELECT 1) SELECT * FROM x;",
    "SELECT ';' FROM t",
    'SELECT "a;b" FROM t',
])
def test_plain_reads_may_be_explained(text):
    assert explain_refusal(text) is None


@pytest.mark.parametrize("text, why", [
    (None, "hidden"),
    ("<insufficient privilege>", "hidden"),
    ("SELECT 1; DROP TABLE t", "more than one statement"),
    ("UPDATE t SET a = $1", "write"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT 1", "write"),
    ("VACUUM t", "utility"),
    ("SHOW work_mem", "SHOW"),
    ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", "FOR UPDATE"),
])
def test_refused_explains(text, why):
    assert why in explain_refusal(text)


@pytest.mark.parametrize("text, count", [
    ("SELECT 1", 0),
    ("SELECT $1, $3 FROM t WHERE a = $2", 3),
    ("SELECT '$9' FROM t WHERE a = $1", 1),
])
def test_parameter_count(text, count):
    assert parameter_count(text) == count


def test_redact_activity_covers_every_query_text_of_pg_activity_info():
    email = "SELECT * FROM users WHERE email = 'jane@example.com' AND id = 42"
    overview = {
        "long_running": [{"pid": 1, "query": email}],
        "blocked": [{"pid": 2, "query": "UPDATE accounts SET note = 'jane@example.com' WHERE id = 7"}],
        "blocking": [{"pid": 3, "query": "ALTER ROLE app PASSWORD 'hunter2'"}],
        "lock_graph": [{"pid": 3, "query": email}, {"pid": 4, "query": None}],
        "statements": {"top_by_mean_time": [{"query": "SELECT pg_sleep($1), 'jane@example.com'"}]},
    }
    redact_activity(overview, limit=200)
    texts = [overview["long_running"][0]["query"], overview["blocked"][0]["query"], overview["blocking"][0]["query"],
             overview["lock_graph"][0]["query"], overview["statements"]["top_by_mean_time"][0]["query"]]
    assert texts == ["SELECT * FROM users WHERE email = ? AND id = ?",
                     "UPDATE accounts SET note = ? WHERE id = ?",
                     "ALTER ROLE app PASSWORD ?",
                     "SELECT * FROM users WHERE email = ? AND id = ?",
                     "SELECT pg_sleep($1), ?"]
    assert overview["lock_graph"][1]["query"] is None
    assert "jane@example.com" not in repr(overview) and "hunter2" not in repr(overview)


def test_redact_activity_reaches_the_lock_tree_and_its_sample_waiters_and_cuts():
    overview = {
        "lock_tree": [{"pid": 3, "query": "DELETE FROM t WHERE token = 'abc123'",
                       "sample_waiters": [{"pid": 5, "query": "SELECT 'jane@example.com' FROM t"}]}],
        "statements": {"available": False},
    }
    redact_activity(overview, limit=12)
    assert overview["lock_tree"][0]["query"] == "DELETE FROM "
    assert overview["lock_tree"][0]["sample_waiters"][0]["query"] == "SELECT ? FRO"
    redact_activity({})  # an empty or partial overview is fine
