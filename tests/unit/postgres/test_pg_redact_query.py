"""Unit tests for redact_query (plugins/module_utils/_postgres.py): no password literal leaves a module."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._postgres import redact_query

MASK = "'********'"


@pytest.mark.parametrize("text", [None, ""])
def test_empty_values_pass_through(text):
    assert redact_query(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "SELECT password FROM accounts WHERE id = 'x'",
        "UPDATE t SET note = 'PASSWORD' WHERE id = 1",
        "CREATE ROLE monitor LOGIN",
    ],
)
def test_queries_without_a_password_literal_are_unchanged(text):
    assert redact_query(text) == text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("CREATE ROLE app LOGIN PASSWORD 'lab-app-password'", f"CREATE ROLE app LOGIN PASSWORD {MASK}"),
        (
            "ALTER ROLE app WITH PASSWORD 's3cr3t' VALID UNTIL 'infinity'",
            f"ALTER ROLE app WITH PASSWORD {MASK} VALID UNTIL 'infinity'",
        ),
        ("alter user app encrypted password 'x'", f"alter user app encrypted password {MASK}"),
        ("CREATE USER u PASSWORD\n  'multi\nline'", f"CREATE USER u PASSWORD\n  {MASK}"),
        # A doubled quote inside the literal must not end the mask early.
        ("ALTER ROLE app PASSWORD 'it''s-secret'", f"ALTER ROLE app PASSWORD {MASK}"),
        ("ALTER ROLE app PASSWORD E'plain'", f"ALTER ROLE app PASSWORD {MASK}"),
        # Truncation (query cut to 200 characters) may cut the literal short: still masked.
        ("ALTER ROLE app PASSWORD 'cut-short-secr", f"ALTER ROLE app PASSWORD {MASK}"),
        # Every occurrence, e.g. two statements in one query string.
        (
            "CREATE ROLE a PASSWORD 'one'; CREATE ROLE b PASSWORD 'two'",
            f"CREATE ROLE a PASSWORD {MASK}; CREATE ROLE b PASSWORD {MASK}",
        ),
        # User mappings carry passwords the same way.
        (
            "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'pw')",
            f"CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password {MASK})",
        ),
    ],
)
def test_password_literals_are_masked(text, expected):
    assert redact_query(text) == expected


def test_the_secret_never_survives_in_any_form():
    secret = "Tr0ub4dor&3"
    for text in (f"CREATE ROLE x PASSWORD '{secret}'", f"ALTER ROLE x PASSWORD '{secret}"):
        assert secret not in redact_query(text)


def test_escape_string_with_backslash_quote_is_fully_masked():
    masked = redact_query("ALTER ROLE x PASSWORD E'sec\\'ret-tail'")
    assert "ret-tail" not in masked


@pytest.mark.parametrize(
    "text", ["ALTER ROLE x PASSWORD $$dollar-secret$$", "ALTER ROLE x PASSWORD $pw$dollar-secret$pw$"]
)
def test_dollar_quoted_password_is_masked(text):
    assert "dollar-secret" not in redact_query(text)


# --- issue 9: connection strings and unicode-escape strings -----------------------------------

SECRET = "c4nary-Pw"


@pytest.mark.parametrize(
    "text, kept",
    [
        (f"CREATE SUBSCRIPTION s CONNECTION 'host=db1 port=5432 user=rep password={SECRET} dbname=app' PUBLICATION p",
         ["CREATE SUBSCRIPTION s CONNECTION 'host=db1 port=5432 user=rep password=", " dbname=app' PUBLICATION p"]),
        (f"ALTER SUBSCRIPTION s CONNECTION 'password={SECRET} host=db2'", ["ALTER SUBSCRIPTION s CONNECTION", "host=db2"]),
        (f"SELECT dblink_connect('c1', 'hostaddr=10.0.0.5 dbname=app user=u password={SECRET}')",
         ["SELECT dblink_connect('c1', 'hostaddr=10.0.0.5 dbname=app user=u password="]),
        (f"SELECT dblink_connect('c1', 'password=''{SECRET}'' host=h')", ["dblink_connect('c1', 'password="]),
        (f"SELECT * FROM dblink('postgresql://app:{SECRET}@db1:5432/app', 'select 1') AS t(x int)",
         ["postgresql://app:", "@db1:5432/app"]),
        (f"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dsn 'postgres://u:{SECRET}@h/d')", ["postgres://u:"]),
        (f"ALTER ROLE app PASSWORD U&'{SECRET}'", ["ALTER ROLE app PASSWORD '********'"]),
        (f"ALTER ROLE app PASSWORD U&'c4n\\0061ry-{SECRET}' UESCAPE '!' VALID UNTIL 'infinity'",
         ["ALTER ROLE app PASSWORD '********' VALID UNTIL 'infinity'"]),
        (f"ALTER ROLE app PASSWORD u&'{SECRET}", ["ALTER ROLE app PASSWORD '********'"]),  # cut by truncation
    ],
)
def test_connection_strings_and_unicode_literals_are_masked(text, kept):
    masked = redact_query(text)
    assert SECRET not in masked
    assert "********" in masked
    for part in kept:
        assert part in masked, masked


def test_a_conninfo_without_a_password_is_unchanged():
    text = "CREATE SUBSCRIPTION s CONNECTION 'host=db1 user=rep dbname=app' PUBLICATION p"
    assert redact_query(text) == text
