"""Every filter and test plugin name the collection exports has its own ansible-doc: a file of
several filters (FilterModule.filters()) documents each in a YAML file of the filter's name beside
it, and ansible-doc only reads those when the .py holds no DOCUMENTATION (else every filter of the
file shows the first one's page)."""

from __future__ import annotations

import importlib
import json
import subprocess

from sre_testlib import REPO, VENV_BIN, ansible_env

KINDS = {"filter": ("FilterModule", "filters"), "test": ("TestModule", "tests")}


def exported(kind: str) -> dict[str, str]:
    """{plugin name: file} of every name the collection's KIND plugins export."""
    cls_name, method = KINDS[kind]
    names: dict[str, str] = {}
    for path in sorted((REPO / "plugins" / kind).glob("*.py")):
        if path.name.startswith("_"):
            continue
        mod = importlib.import_module(f"ansible_collections.sre.runbooks.plugins.{kind}.{path.stem}")
        for name in getattr(getattr(mod, cls_name)(), method)():
            assert name not in names, f"{kind} {name} is exported by {names.get(name)} and {path.name}"
            names[name] = path.name
    return names


def test_every_exported_plugin_name_has_its_own_ansible_doc():
    assert exported("filter"), "no filter plugin found: the check below would prove nothing"
    for kind in sorted(KINDS):
        names = exported(kind)
        if names:  # the collection has no test plugin yet
            check_docs(kind, names)


def check_docs(kind: str, names: dict[str, str]) -> None:
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", *(f"sre.runbooks.{n}" for n in names)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=ansible_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(f"sre.runbooks.{n}" for n in names), proc.stderr[-4000:]
    wrong = {name: docs[f"sre.runbooks.{name}"]["doc"].get("name") for name in names
             if docs[f"sre.runbooks.{name}"]["doc"].get("name") != name}
    assert not wrong, (f"ansible-doc -t {kind} shows another plugin's page ({{exported: shown}}): {wrong}; "
                       f"document each name in plugins/{kind}/<name>.yml and keep no DOCUMENTATION in its .py")
    for name in names:
        entry = docs[f"sre.runbooks.{name}"]
        assert entry["doc"].get("short_description"), f"{name}: no short_description"
        assert entry.get("examples"), f"{name}: no EXAMPLES"
        assert entry.get("return"), f"{name}: no RETURN"


# Result keys ansible-core interprets itself: a module returning `skipped` (even an empty dict)
# makes the task count as skipped for `is skipped` and turns off failed_when / changed_when
# (TaskExecutor evaluates them only when 'skipped' is not in the result).
RESERVED_RESULT_KEYS = ("skipped", "skip_reason", "unreachable")


def test_no_module_returns_a_key_ansible_core_interprets():
    import yaml

    found = []
    for path in sorted((REPO / "plugins" / "modules").glob("*.py")):
        mod = importlib.import_module(f"ansible_collections.sre.runbooks.plugins.modules.{path.stem}")
        returned = yaml.safe_load(getattr(mod, "RETURN", "") or "") or {}
        found += [f"{path.name}: {key}" for key in RESERVED_RESULT_KEYS if key in returned]
    assert not found, found
