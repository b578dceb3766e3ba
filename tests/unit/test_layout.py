"""The test tree's own rules."""

from __future__ import annotations

import collections

from sre_testlib import REPO


def test_test_modules_have_unique_names():
    """pytest imports test files by basename (no __init__.py): two test_x.py in two folders stop
    the whole run at collection."""
    names = collections.Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]


def test_action_groups_name_existing_modules_that_share_their_connection_options():
    """module_defaults: group/sre.runbooks.<group> passes its keys to every member, and a member
    that lacks one fails with 'Unsupported parameters': members must exist and share the options
    of the group's first member that are about where and how to connect."""
    import ast

    import yaml

    groups = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]

    def options(name):
        tree = ast.parse((REPO / "plugins" / "modules" / f"{name}.py").read_text())
        doc = next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "DOCUMENTATION")
        return set((yaml.safe_load(doc) or {}).get("options") or {})

    connection = ("login_", "bootstrap_servers", "sasl_", "ssl_", "security_protocol", "docker_host",
                  "api_", "kubeconfig", "context", "host", "port", "password", "username")
    for group, members in groups.items():
        assert members, group
        first = options(members[0])
        shared = {o for o in first if o.startswith(connection)}
        for member in members[1:]:
            missing = shared - options(member)
            assert not missing, f"action group {group}: {member} lacks {sorted(missing)} of {members[0]}"
