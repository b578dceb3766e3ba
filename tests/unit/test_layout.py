"""The test tree's own rules."""

from __future__ import annotations

import collections

from sre_testlib import REPO


def test_test_modules_have_unique_names():
    """pytest imports test files by basename (no __init__.py): two test_x.py in two folders stop
    the whole run at collection."""
    names = collections.Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]
