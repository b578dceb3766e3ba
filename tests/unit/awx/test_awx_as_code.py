"""playbooks/awx/configure.yml and its surveys, without an AWX server (none can run here).

- every awx.awx task's keys (and sub-keys) are options of that module, as `ansible-doc -j` says:
  ansible-lint does not check module arguments, so a misspelled `survey_enabld` would pass it;
- every survey follows AWX's survey spec schema, belongs to an outage playbook, asks for the
  target, defaults every destructive flag to false and holds no secret;
- the playbook really renders: it runs against a stand-in awx.awx collection whose modules only
  return their arguments, and every template points at a playbook that exists, starts in check
  mode, carries its survey file, and no secret goes anywhere but a no_log credential task.
"""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest
import yaml

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import is_secret_name
from sre_testlib import REPO, VENV_BIN, ansible_env

CONFIGURE = REPO / "playbooks" / "awx" / "configure.yml"
SURVEYS = REPO / "playbooks" / "awx" / "surveys"
OUTAGE = sorted(p.stem for p in (REPO / "playbooks" / "outage").glob("*.yml"))
SURVEY_FILES = sorted(SURVEYS.glob("*.json"))

# AWX's survey question types and the keys of a question (awx/main/models/mixins.py, api docs).
QUESTION_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
QUESTION_KEYS = {"question_name", "question_description", "variable", "type", "required", "default",
                 "choices", "min", "max", "new_question"}
# Flags that let a run change something (or more than the default would): a survey asking for one
# must default it to false. A boolean question of ours is always one of these (test below).
DESTRUCTIVE = {
    "api_gateway_down_undo_bad_rollout", "api_gateway_down_scale_bounce", "crashloop_undo",
    "db_exhaustion_restart_pooler", "db_exhaustion_force", "disk_full_cleanup", "kafka_lag_restart",
    "lock_contention_force", "memory_exhaustion_allow_limit_raise", "network_partition_restart_resolver",
    "node_failure_drain", "node_failure_delete_emptydir_data", "node_failure_force",
    "redis_unavailable_allow_flush", "redis_unavailable_force", "service_down_restart", "stripe_webhooks_replay",
    "slow_queries_reset", "db_down_fenced", "db_down_force", "db_exhaustion_kill_blockers", "db_exhaustion_restart_app",
}
# What the stand-in run passes as secrets: none may show up outside a no_log credential task.
SECRETS = {"awx_postgresql_password": "Pg-Canary-4c1e9b", "awx_redis_password": "Rd-Canary-77a0f3",
           "awx_redis_sentinel_password": "Sn-Canary-1b2d8e", "awx_kubeconfig": "Kc-Canary-90fe51"}


class PlaybookLoader(yaml.SafeLoader):
    """YAML as Ansible reads it here: `!unsafe` marks a string Ansible must not template."""


PlaybookLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_configure() -> list[dict[str, t.Any]]:
    return yaml.load(CONFIGURE.read_text(), Loader=PlaybookLoader)  # noqa: S506 - a SafeLoader subclass


def awx_tasks() -> list[tuple[str, str, dict[str, t.Any]]]:
    """(task name, module, arguments) of every awx.awx task of configure.yml."""
    found = []
    for play in load_configure():
        for task in play.get("tasks", []):
            modules = [k for k in task if k.startswith("awx.awx.")]
            assert len(modules) <= 1, task
            if modules:
                found.append((task["name"], modules[0], task[modules[0]]))
    return found


@pytest.fixture(scope="module")
def module_docs() -> dict[str, dict[str, t.Any]]:
    names = sorted({module for _name, module, _args in awx_tasks()})
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-j", *names], capture_output=True, text=True,
                          env=ansible_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    return {name: docs[name]["doc"]["options"] for name in names}


def unknown_keys(args: t.Any, options: dict[str, t.Any], where: str) -> list[str]:
    """Keys of args that are neither an option nor an alias, recursing into suboptions."""
    if not isinstance(args, dict):
        return []  # a templated value ("{{ item.inputs }}"): checked by the rendering test
    by_name = {}
    for name, spec in options.items():
        for alias in [name, *spec.get("aliases", [])]:
            by_name[alias] = spec
    bad = []
    for key, value in args.items():
        spec = by_name.get(key)
        if spec is None:
            bad.append(f"{where}.{key}")
            continue
        sub = spec.get("suboptions")
        if not sub:
            continue
        if isinstance(value, list) and spec.get("elements") == "dict":
            for i, element in enumerate(value):
                bad += unknown_keys(element, sub, f"{where}.{key}[{i}]")
        elif spec.get("type") == "dict":
            bad += unknown_keys(value, sub, f"{where}.{key}")
    return bad


def test_configure_uses_the_modules_it_should():
    modules = {module for _name, module, _args in awx_tasks()}
    assert {"awx.awx.project", "awx.awx.inventory", "awx.awx.inventory_source", "awx.awx.credential_type",
            "awx.awx.credential", "awx.awx.job_template", "awx.awx.workflow_job_template"} <= modules


def test_every_awx_task_key_is_an_option_of_its_module(module_docs):
    bad = []
    for name, module, args in awx_tasks():
        bad += unknown_keys(args, module_docs[module], f"{name} ({module})")
    assert bad == []


def test_the_key_check_catches_a_misspelled_option(module_docs):
    args = {"name": "x", "survey_enabld": True, "credentials": ["c"]}
    assert unknown_keys(args, module_docs["awx.awx.job_template"], "jt") == ["jt.survey_enabld"]
    nodes = {"workflow_nodes": [{"identifier": "a", "related": {"success_nodes": [{"identifer": "b"}]}}]}
    assert unknown_keys(nodes, module_docs["awx.awx.workflow_job_template"], "wf") == [
        "wf.workflow_nodes[0].related.success_nodes[0].identifer"]


def test_every_outage_playbook_has_a_survey_and_every_survey_a_playbook():
    assert sorted(p.stem for p in SURVEY_FILES) == OUTAGE


@pytest.mark.parametrize("path", SURVEY_FILES, ids=lambda p: p.stem)
def test_survey_follows_the_awx_survey_spec_schema(path):
    survey = json.loads(path.read_text())
    assert set(survey) == {"name", "description", "spec"}
    assert isinstance(survey["name"], str) and survey["name"]
    assert isinstance(survey["description"], str) and survey["description"]
    assert isinstance(survey["spec"], list) and survey["spec"]
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables)), "a variable asked twice"
    for q in survey["spec"]:
        where = f"{path.name}: {q.get('variable')}"
        assert set(q) <= QUESTION_KEYS, f"{where}: unknown keys {set(q) - QUESTION_KEYS}"
        for key in ("question_name", "question_description", "variable", "type", "required", "default"):
            assert key in q, f"{where}: no {key}"
        assert q["type"] in QUESTION_TYPES, where
        assert isinstance(q["required"], bool), where
        assert q["variable"].isidentifier() and q["question_name"], where
        if q["type"] in ("multiplechoice", "multiselect"):
            assert isinstance(q["choices"], list) and q["choices"], where
            assert all(isinstance(c, str) for c in q["choices"]), where
            assert q["default"] in q["choices"], f"{where}: default not among the choices"
        else:
            assert "choices" not in q, where
        if q["type"] in ("integer", "float"):
            assert isinstance(q["default"], (int, float)) and not isinstance(q["default"], bool), where
            assert q["min"] <= q["default"] <= q["max"], f"{where}: default outside min..max"
        if q["type"] in ("text", "textarea"):
            assert isinstance(q["default"], str), where
            assert q.get("min", 0) <= len(q["default"]) <= q.get("max", 1024), f"{where}: default length outside min..max"


@pytest.mark.parametrize("path", SURVEY_FILES, ids=lambda p: p.stem)
def test_survey_asks_for_a_target_and_never_leaves_it_empty(path):
    spec = {q["variable"]: q for q in json.loads(path.read_text())["spec"]}
    target = spec["target"]
    # an empty target would be `hosts: ""`; the playbook's own default group is the survey's default
    assert target["required"] is True and target["min"] >= 1 and target["default"]
    playbook = (REPO / "playbooks" / "outage" / f"{path.stem}.yml").read_text()
    assert f"target | default('{target['default']}')" in playbook


@pytest.mark.parametrize("path", SURVEY_FILES, ids=lambda p: p.stem)
def test_destructive_flags_default_to_false(path):
    for q in json.loads(path.read_text())["spec"]:
        boolean = q["type"] == "multiplechoice" and sorted(q["choices"]) == ["false", "true"]
        if boolean or q["variable"] in DESTRUCTIVE:
            assert q["variable"] in DESTRUCTIVE, f"{path.name}: {q['variable']} is a flag not known as destructive"
            assert boolean and q["default"] == "false", f"{path.name}: {q['variable']} must default to false"


@pytest.mark.parametrize("path", SURVEY_FILES, ids=lambda p: p.stem)
def test_no_secret_in_any_survey(path):
    for q in json.loads(path.read_text())["spec"]:
        assert q["type"] != "password", f"{path.name}: secrets belong in credentials, not surveys"
        assert not is_secret_name(q["variable"]), f"{path.name}: {q['variable']} looks like a secret"
    text = path.read_text()
    lab = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "lab.yml").read_text())
    for name, value in lab.items():
        if is_secret_name(name):
            assert str(value) not in text, f"{path.name} holds the value of {name}"


@pytest.mark.parametrize("path", [p for p in SURVEY_FILES if p.stem != "assess"], ids=lambda p: p.stem)
def test_survey_variables_are_the_roles_own(path):
    """A misspelled variable would be asked for and silently ignored by the role."""
    role = REPO / "roles" / path.stem
    known = set(yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {})
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry in specs.values():
        known |= set(entry.get("options") or {})
    for q in json.loads(path.read_text())["spec"]:
        if q["variable"] != "target":
            assert q["variable"] in known, f"{path.name}: {q['variable']} is no variable of roles/{path.stem}"


# ------------------------------------------------------------------ rendering, with a stand-in awx.awx

STANDIN = """#!/usr/bin/python
# WANT_JSON
# sre.runbooks test stand-in: returns the arguments it was given, talks to nothing.
import json, sys
with open(sys.argv[1]) as fh:
    args = json.load(fh)
print(json.dumps({"changed": False, "args": {k: v for k, v in args.items() if not k.startswith("_ansible")}}))
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict[str, t.Any]]:
    """Run configure.yml with every awx.awx module replaced by the stand-in; every task's results."""
    root = tmp_path_factory.mktemp("standin")
    modules = root / "ansible_collections" / "awx" / "awx" / "plugins" / "modules"
    modules.mkdir(parents=True)
    (root / "ansible_collections" / "awx" / "awx" / "meta").mkdir()
    (root / "ansible_collections" / "awx" / "awx" / "meta" / "runtime.yml").write_text("requires_ansible: '>=2.15'\n")
    for _name, module, _args in awx_tasks():
        (modules / f"{module.rsplit('.', 1)[1]}.py").write_text(STANDIN)
    extra = {"awx_project_scm_url": "https://git.example.com/sre/runbooks.git", "awx_ee_image": "ee.example.com/sre:1",
             "awx_postgresql_host": "db.example.com", "awx_machine_credential": "ops ssh", **SECRETS,
             "ansible_python_interpreter": str(VENV_BIN / "python")}
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(CONFIGURE), "-i", "localhost,", "-e", json.dumps(extra)],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
        env=ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(root), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                         "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_LOCALHOST_WARNING": "0",
                         "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert not any(secret in proc.stderr for secret in SECRETS.values())
    return [task for play in report["plays"] for task in play["tasks"]]


def calls(rendered: list[dict[str, t.Any]], name_prefix: str) -> list[dict[str, t.Any]]:
    """The arguments of every (looped) call of the tasks whose name starts with name_prefix."""
    out = []
    for task in rendered:
        if task["task"]["name"].startswith(name_prefix):
            result = task["hosts"]["localhost"]
            for item in result.get("results", [result]):
                if not item.get("skipped"):
                    out.append(item)
    return out


def test_one_job_template_per_outage_playbook_in_check_mode_with_its_survey(rendered):
    templates = {c["args"]["name"]: c["args"] for c in calls(rendered, "AWX | one job template per outage playbook")}
    assert sorted(templates) == [f"sre.runbooks {name}" for name in OUTAGE]
    for name in OUTAGE:
        args = templates[f"sre.runbooks {name}"]
        assert (REPO / args["playbook"]).is_file() and args["playbook"] == f"playbooks/outage/{name}.yml"
        assert args["job_type"] == "check" and args["ask_job_type_on_launch"] is True
        assert args["allow_simultaneous"] is False
        assert args["survey_enabled"] is True
        assert args["survey_spec"] == json.loads((SURVEYS / f"{name}.json").read_text())
        assert all(isinstance(c, str) and c for c in args["credentials"]), args["credentials"]
    assert templates["sre.runbooks db_exhaustion"]["credentials"] == [
        "sre.runbooks PostgreSQL", "sre.runbooks kubeconfig", "ops ssh"]
    assert templates["sre.runbooks stripe_webhooks"]["credentials"] == []


def test_every_template_points_at_a_playbook_that_exists(rendered):
    playbooks = [c["args"]["playbook"] for c in calls(rendered, "AWX | ") if "playbook" in c.get("args", {})]
    # one per outage playbook, the postmortem, and the one the alert rulebook launches
    assert len(playbooks) == len(OUTAGE) + 2
    assert all((REPO / p).is_file() for p in playbooks), playbooks


def test_the_template_the_alert_rulebook_launches_exists(rendered):
    templates = {c["args"]["name"]: c["args"] for c in calls(rendered, "AWX | ") if "playbook" in c.get("args", {})}
    rulebook = (REPO / "extensions" / "eda" / "rulebooks" / "outage_awx.yml").read_text()
    assert "default('sre.runbooks eda_remediate')" in rulebook
    eda = templates["sre.runbooks eda_remediate"]
    assert eda["playbook"] == "playbooks/eda_remediate.yml"
    # check mode is sre.runbooks.eda_gate's decision per alert; the alert arrives as extra vars
    assert eda["job_type"] == "run" and eda["ask_variables_on_launch"] is True


def test_one_workflow_per_scenario_assess_remediate_report(rendered):
    workflows = {c["args"]["name"]: c["args"] for c in calls(rendered, "AWX | one workflow per scenario")}
    scenarios = [n for n in OUTAGE if n != "assess"]
    assert sorted(workflows) == [f"sre.runbooks {n} workflow" for n in scenarios]
    templates = {c["args"]["name"] for c in calls(rendered, "AWX | ") if "playbook" in c.get("args", {})}
    for name in scenarios:
        wf = workflows[f"sre.runbooks {name} workflow"]
        nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
        assert list(nodes) == ["assess", "remediate", "report"]
        assert nodes["assess"]["unified_job_template"]["name"] == "sre.runbooks assess"
        assert nodes["remediate"]["unified_job_template"]["name"] == f"sre.runbooks {name}"
        assert nodes["remediate"]["job_type"] == "check", "the workflow remediates in check mode unless told"
        assert nodes["report"]["unified_job_template"]["name"] == "sre.runbooks incident report"
        assert {n["unified_job_template"]["name"] for n in nodes.values()} <= templates
        assert nodes["assess"]["related"]["success_nodes"] == [{"identifier": "remediate"}]
        assert nodes["remediate"]["related"]["always_nodes"] == [{"identifier": "report"}]
        assert wf["survey_spec"] == json.loads((SURVEYS / f"{name}.json").read_text())
        # the incident id is templated by Ansible in each job, not by this playbook
        assert wf["extra_vars"]["incident_id"] == "awx-workflow-{{ awx_workflow_job_id }}"


def test_credential_types_inject_the_inventory_connection_variables(rendered):
    types = {c["args"]["name"]: c["args"] for c in calls(rendered, "AWX | credential types")}
    assert set(types) == {"sre.runbooks PostgreSQL", "sre.runbooks Redis", "sre.runbooks kubeconfig"}
    for args in types.values():
        secret_fields = [f["id"] for f in args["inputs"]["fields"] if f.get("secret")]
        assert secret_fields, f"{args['name']} has no secret field"
        # injector templates reach AWX unrendered (AWX fills them in for each job)
        assert all("{{" in v for v in args["injectors"]["extra_vars"].values())
    pg = types["sre.runbooks PostgreSQL"]["injectors"]["extra_vars"]
    assert pg["postgresql_login_password"] == "{{ password }}"
    assert types["sre.runbooks kubeconfig"]["injectors"]["env"]["K8S_AUTH_KUBECONFIG"] == "{{ tower.filename.kubeconfig }}"
    # every injected variable is one the playbooks read
    used = "\n".join(p.read_text() for p in (REPO / "roles").rglob("*.yml"))
    used += (REPO / "playbooks" / "outage" / "assess.yml").read_text()
    for args in types.values():
        for var in args["injectors"]["extra_vars"]:
            assert var in used, f"{var} is injected but nothing reads it"


def test_secrets_only_in_no_log_credential_tasks(rendered):
    for task in rendered:
        text = json.dumps(task)
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} shows in the output of {task['task']['name']!r}"
    creds = calls(rendered, "AWX | credentials")
    assert len(creds) == 3 and all(c.get("censored") for c in creds), "credential results must be no_log"
    source = load_configure()[0]["tasks"]
    for task in source:
        text = json.dumps(task)
        if any(name in text for name in SECRETS):
            assert task.get("no_log") is True and "awx.awx.credential" in task, task["name"]


def test_a_secret_not_given_makes_no_credential(tmp_path):
    """Without awx_redis_password the Redis credential is neither made nor attached (rendering above
    gives all three; this checks the rule the playbook uses, on the playbook's own expression)."""
    play = load_configure()[0]
    expr = play["vars"]["awx_credentials_given"]
    assert "awx_redis_password | length > 0" in expr and "awx_kubeconfig | length > 0" in expr
    creds = next(t_ for t_ in play["tasks"] if "awx.awx.credential" in t_)
    assert creds["when"] == "item.key in awx_credentials_given"
