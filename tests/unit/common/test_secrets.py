"""Masking of secrets in text modules return (command lines, logs, env, DSNs)."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import (
    MASK, is_secret_name, mask_argv, mask_env, mask_mapping, mask_text)

CANARY = "Canary-s3cr3t-7f1d"


@pytest.mark.parametrize("name", ["password", "DB_PASSWORD", "PGPASSWORD", "api_token", "clientSecret",
                                  "--auth-key", "STRIPE_WEBHOOK_SECRET", "aws_secret_access_key",
                                  "DATABASE_DSN", "redis_passwd", "api-key", "credentials"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["user", "PGUSER", "host", "public_key", "key_id", "keys", "LOG_LEVEL",
                                  "primary_key", "auth_method", "", None, "PORT"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize("text", [
    f"postgresql://app:{CANARY}@db1:5432/shop",
    f"redis://:{CANARY}@10.0.0.1:6379/0",
    f"worker --password={CANARY} --db shop",
    f"DB_PASSWORD={CANARY} python app.py",
    f"password: '{CANARY}'",
    f'{{"api_token": "{CANARY}"}}',
    f"Authorization: Bearer {CANARY}",
    f"connecting with dsn={CANARY} failed",
    f"host=db1 user=app password={CANARY} dbname=shop",
    f"https://api.example.test/v1/x?token={CANARY}&page=2",
    f"GET https://h/cb?a=1&client_secret={CANARY}",
    f"https://{CANARY}-0123456789abcdef@git.example.test/repo.git",
    f"config: STRIPE_API_KEY={CANARY}",
    f"env=DB_PASSWORD={CANARY} next",
    f"level=error msg=\"login failed\" password={CANARY}",
])
def test_mask_text_hides_the_value(text):
    masked = mask_text(text)
    assert CANARY not in masked
    assert MASK in masked


def test_mask_text_keeps_ordinary_text():
    line = "GET /health 200 user=alice key_id=42 took 12ms"
    assert mask_text(line) == line
    url = "https://status.example.test:8443/health?verbose=1"
    assert mask_text(url) == url
    cast = "SELECT token::text, config: x FROM sessions"
    assert mask_text(cast) == cast
    assert mask_text(None) is None
    assert mask_text(3) == 3


def test_mask_argv_hides_the_next_word_after_a_secret_option():
    argv = ["redis-server", "--port", "6379", "--requirepass", CANARY, "--masterauth=" + CANARY,
            "--password", CANARY, "--dsn", f"postgres://u:{CANARY}@h/db"]
    masked = mask_argv(argv)
    assert CANARY not in " ".join(masked)
    assert masked[:3] == ["redis-server", "--port", "6379"]
    assert masked[masked.index("--password") + 1] == MASK


@pytest.mark.parametrize("argv, expected", [
    (["/usr/bin/redis-cli", "-h", "db", "-a", "CANARY", "ping"],
     ["/usr/bin/redis-cli", "-h", "db", "-a", MASK, "ping"]),
    (["redis-cli", "-aCANARY", "ping"], ["redis-cli", "-a" + MASK, "ping"]),
    (["mysql", "-u", "app", "-pCANARY", "shop"], ["mysql", "-u", "app", "-p" + MASK, "shop"]),
    (["mysqldump", "-p", "CANARY"], ["mysqldump", "-p", MASK]),
])
def test_mask_argv_hides_the_password_short_options_of_the_programs_that_have_them(argv, expected):
    argv = [word.replace("CANARY", CANARY) for word in argv]
    assert mask_argv(argv) == expected


def test_mask_argv_leaves_short_options_of_other_programs_alone():
    argv = ["gunicorn", "-p8080", "-a", "app:main"]
    assert mask_argv(argv) == argv
    assert mask_argv(["-a", "x"]) == ["-a", "x"]
    assert mask_argv([]) == []


def test_mask_env_hides_secret_values_and_keeps_references():
    env = [{"name": "DB_PASSWORD", "value": CANARY},
           {"name": "DATABASE_URL", "value": f"postgresql://app:{CANARY}@db/shop"},
           {"name": "LOG_LEVEL", "value": "debug"},
           {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}]
    masked = mask_env(env)
    assert CANARY not in repr(masked)
    assert masked[2]["value"] == "debug"
    assert masked[3]["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_mask_mapping_walks_a_pod_template():
    template = {"spec": {"containers": [{"name": "api", "args": [f"--token={CANARY}"],
                                         "env": [{"name": "SECRET_KEY", "value": CANARY}]}]},
                "metadata": {"annotations": {"password": CANARY, "team": "payments"}}}
    masked = mask_mapping(template)
    assert CANARY not in repr(masked)
    assert masked["metadata"]["annotations"]["team"] == "payments"
