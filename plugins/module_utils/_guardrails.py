# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guardrails shared by remediation modules (private): caps on how much one run may do."""

from __future__ import annotations

import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._common import GuardrailTripped

T = t.TypeVar("T")


def enforce_cap(items: list[T], cap: int, mode: str, what: str = "targets",
                option: str = "max_terminate") -> tuple[list[T], list[T]]:
    """Split ``items`` (already ordered by priority) into (act on, left alone) under ``cap``.

    mode ``fail``: more than ``cap`` items raises GuardrailTripped, so nothing is touched.
    mode ``partial``: the first ``cap`` items are acted on, the rest are reported.
    """
    if cap < 1:
        raise ValueError(f"the cap must be at least 1, got {cap}")
    if len(items) <= cap:
        return list(items), []
    if mode == "partial":
        return list(items[:cap]), list(items[cap:])
    if mode != "fail":
        raise ValueError(f"unknown cap mode {mode!r}")
    raise GuardrailTripped(
        option,
        f"{len(items)} {what} match, more than {option}={cap}",
        f"raise {option} to at least {len(items)}, narrow the filters, "
        f"or set cap_mode=partial to act on the {cap} oldest",
    )
