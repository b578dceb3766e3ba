"""Unit tests for plugins/module_utils/_common.py: durations, timestamps, action records, truncation."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    GuardrailTripped,
    action_record,
    parse_duration,
    parse_moment,
    truncate,
    utc_iso,
)


@pytest.mark.parametrize(
    "value, seconds",
    [
        (0, 0.0),
        (300, 300.0),
        (1.5, 1.5),
        ("0", 0.0),
        ("300", 300.0),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("5m30s", 330.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1w", 604800.0),
        (" 5M ", 300.0),
        ("1H30M", 5400.0),
    ],
)
def test_parse_duration_accepts_seconds_and_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize("value", ["", "   ", "abc", "5x", "m5", "5m3", "5 minutes", ".5s", "5.s", "-5m", "5m-", None])
def test_parse_duration_rejects_unparsable_values_naming_the_option(value):
    with pytest.raises(ValueError) as err:
        parse_duration(value, "min_state_age")
    message = str(err.value)
    assert message.startswith("min_state_age:")
    # The message tells the user what would have been accepted.
    assert "5m" in message


@pytest.mark.parametrize("value", [-1, -0.5, "-1", "-300"])
def test_parse_duration_rejects_negative_values(value):
    with pytest.raises(ValueError, match=r"^min_state_age: must not be negative"):
        parse_duration(value, "min_state_age")


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_booleans(value):
    # YAML turns `yes`/`no` into booleans; 1/0 seconds would be a silent surprise.
    with pytest.raises(ValueError, match=r"^long_query_threshold: .*boolean"):
        parse_duration(value, "long_query_threshold")


def test_parse_duration_default_option_name():
    with pytest.raises(ValueError, match=r"^duration:"):
        parse_duration("soon")


@pytest.mark.parametrize("value", ["nan", "inf", "infinity", float("nan"), float("inf")])
def test_parse_duration_rejects_non_finite_values(value):
    with pytest.raises(ValueError, match=r"^min_state_age:"):
        parse_duration(value, "min_state_age")


def test_utc_iso_is_utc_with_milliseconds_and_z_suffix():
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
    assert utc_iso(moment) == "2026-01-02T03:04:05.678Z"


def test_utc_iso_converts_other_timezones_to_utc():
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)
    assert utc_iso(moment) == "2026-01-02T01:04:05.000Z"


def test_utc_iso_defaults_to_now():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    stamp = utc_iso()
    parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert stamp.endswith("Z")
    assert before <= parsed <= datetime.datetime.now(datetime.timezone.utc)


def test_action_record_has_the_timeline_fields_and_details():
    record = action_record("terminate", "db1:5432", "done", pid=4242)
    assert set(record) == {"timestamp", "action", "target", "result", "pid"}
    assert record["action"] == "terminate"
    assert record["target"] == "db1:5432"
    assert record["result"] == "done"
    assert record["pid"] == 4242
    assert record["timestamp"].endswith("Z")


def test_action_record_details_cannot_hide_the_mandatory_fields_by_accident():
    # details are merged last: a detail named like a mandatory field overrides it, on purpose only.
    record = action_record("cancel", "socket /run/postgresql (port 5432)", "check mode")
    assert list(record)[:4] == ["timestamp", "action", "target", "result"]


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        (None, 200, None),
        ("", 200, ""),
        ("short", 200, "short"),
        ("x" * 200, 200, "x" * 200),
        ("x" * 201, 200, "x" * 197 + "..."),
        (12345, 3, "..."),
        (12345, 10, "12345"),
    ],
)
def test_truncate(text, limit, expected):
    assert truncate(text, limit) == expected


def test_truncate_never_exceeds_the_limit():
    for length in range(0, 260, 7):
        out = truncate("q" * length, 200)
        assert len(out) <= 200


def test_guardrail_tripped_names_the_guardrail_and_the_override():
    exc = GuardrailTripped("max_terminate", "312 sessions match", "raise max_terminate")
    assert exc.guardrail == "max_terminate"
    assert exc.detail == "312 sessions match"
    assert exc.override == "raise max_terminate"
    assert str(exc) == (
        "guardrail 'max_terminate' tripped: 312 sessions match; nothing was changed. "
        "To override: raise max_terminate"
    )


def test_parse_moment_reads_a_timestamp_or_a_duration_ago():
    utc = datetime.timezone.utc
    assert parse_moment("2026-12-03T04:00:00Z") == datetime.datetime(2026, 12, 3, 4, tzinfo=utc)
    assert parse_moment("2026-12-03T04:00:00") == datetime.datetime(2026, 12, 3, 4, tzinfo=utc)
    assert parse_moment("2026-12-03T05:00:00+01:00") == datetime.datetime(2026, 12, 3, 4, tzinfo=utc)
    assert parse_moment("2026-12-03T04:00:00.5+00:00").second == 0
    ago = datetime.datetime.now(utc) - parse_moment("10m")
    assert 599 <= ago.total_seconds() <= 605
    with pytest.raises(ValueError, match="restarted_after"):
        parse_moment("yesterday-ish", "restarted_after")
