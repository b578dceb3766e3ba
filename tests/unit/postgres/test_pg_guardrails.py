"""Unit tests for plugins/module_utils/_guardrails.py: the max_terminate cap."""

from __future__ import annotations

import pytest

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped
from ansible_collections.sre.runbooks.plugins.module_utils._guardrails import enforce_cap

OLDEST_FIRST = [101, 102, 103, 104, 105]


@pytest.mark.parametrize("mode", ["fail", "partial"])
@pytest.mark.parametrize("cap", [5, 6, 1000])
def test_under_or_at_the_cap_everything_is_acted_on(mode, cap):
    act, rest = enforce_cap(OLDEST_FIRST, cap, mode)
    assert act == OLDEST_FIRST
    assert rest == []


@pytest.mark.parametrize("mode", ["fail", "partial"])
def test_nothing_to_do_is_not_an_error(mode):
    assert enforce_cap([], 1, mode) == ([], [])


def test_returns_copies_not_the_callers_list():
    items = list(OLDEST_FIRST)
    act, _rest = enforce_cap(items, 10, "fail")
    act.append(999)
    assert items == OLDEST_FIRST


def test_fail_mode_over_the_cap_raises_naming_the_guardrail_and_override():
    with pytest.raises(GuardrailTripped) as err:
        enforce_cap(OLDEST_FIRST, 3, "fail", what="sessions to terminate")
    exc = err.value
    message = str(exc)
    assert exc.guardrail == "max_terminate"
    assert "5 sessions to terminate match, more than max_terminate=3" in message
    assert "nothing was changed" in message
    # How to override: raise the cap, narrow the filters, or partial mode.
    assert "raise max_terminate to at least 5" in message
    assert "cap_mode=partial" in message
    assert "3 oldest" in message


def test_fail_mode_is_exact_at_the_boundary():
    assert enforce_cap(OLDEST_FIRST, 5, "fail") == (OLDEST_FIRST, [])
    with pytest.raises(GuardrailTripped):
        enforce_cap(OLDEST_FIRST, 4, "fail")


def test_partial_mode_acts_on_the_first_n_and_reports_the_rest_in_order():
    act, rest = enforce_cap(OLDEST_FIRST, 2, "partial")
    assert act == [101, 102]
    assert rest == [103, 104, 105]


def test_partial_mode_cap_of_one():
    assert enforce_cap(OLDEST_FIRST, 1, "partial") == ([101], [102, 103, 104, 105])


def test_custom_option_name_appears_in_the_message():
    with pytest.raises(GuardrailTripped) as err:
        enforce_cap(OLDEST_FIRST, 2, "fail", what="replicas", option="max_promote")
    assert err.value.guardrail == "max_promote"
    assert "more than max_promote=2" in str(err.value)


@pytest.mark.parametrize("cap", [0, -1])
@pytest.mark.parametrize("items", [[], OLDEST_FIRST])
def test_a_cap_below_one_is_rejected(cap, items):
    with pytest.raises(ValueError, match="at least 1"):
        enforce_cap(items, cap, "partial")


def test_unknown_mode_over_the_cap_is_rejected():
    with pytest.raises(ValueError, match="unknown cap mode 'some'"):
        enforce_cap(OLDEST_FIRST, 2, "some")
