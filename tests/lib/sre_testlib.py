"""Shared test helpers: lab settings, running modules and playbooks for real, lab lifecycle.

Integration tests use these against the real lab services; nothing here mocks a backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "build" / "collections"
LAB_VARS_FILE = REPO / "inventories" / "lab" / "group_vars" / "all" / "lab.yml"
# The lab inventory. scripts/test.sh points the lanes that do not own the systemd hosts at a view
# of it without the hosts' generated files (SRE_LAB_INVENTORY): while another lane has the hosts
# up, a playbook run on `postgresql` or `redis` must not reach them.
LAB_INVENTORY = Path(os.environ.get("SRE_LAB_INVENTORY") or REPO / "inventories" / "lab")
VENV_BIN = REPO / ".venv" / "bin"


def lab_vars() -> dict[str, t.Any]:
    return yaml.safe_load(LAB_VARS_FILE.read_text())


def lab_var(name: str) -> t.Any:
    return lab_vars()[name]


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra or {})
    return env


def run_module(name: str, args: dict[str, t.Any], check: bool = False, diff: bool = False,
               timeout: float = 120) -> dict[str, t.Any]:
    """Run plugins/modules/NAME.py in-process-free (a child Python) with ANSIBLE_MODULE_ARGS.

    This is how Ansible itself runs a local module, minus the controller: fast enough to call
    dozens of times per test, and it exercises the real module against the real service.
    """
    module_args = dict(args)
    module_args["_ansible_check_mode"] = check
    module_args["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, fh)
        args_file = fh.name
    try:
        env = ansible_env({"PYTHONPATH": str(COLLECTIONS)})
        proc = subprocess.run(
            [str(VENV_BIN / "python"), str(REPO / "plugins" / "modules" / f"{name}.py"), args_file],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )
    finally:
        os.unlink(args_file)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"module {name} printed no JSON (rc={proc.returncode}):\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}") from exc
    result["_stderr"] = proc.stderr
    return result


def run_playbook(playbook: str | Path, inventory: str | Path | None = None,
                 extra_vars: dict[str, t.Any] | None = None, tags: str | None = None,
                 check: bool = False, diff: bool = False, limit: str | None = None,
                 timeout: float = 600, env: dict[str, str] | None = None) -> tuple[int, dict[str, t.Any], str]:
    """Run ansible-playbook exactly as a user would, with the JSON callback.

    Returns (rc, parsed JSON report, stderr).
    """
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", str(inventory or LAB_INVENTORY)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if tags:
        cmd += ["--tags", tags]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if limit:
        cmd += ["--limit", limit]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
        env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                         "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", **(env or {})}),
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {"raw_stdout": proc.stdout}
    return proc.returncode, report, proc.stderr


def task_results(report: dict[str, t.Any], task_name: str) -> dict[str, dict[str, t.Any]]:
    """Per-host results of the (last) task called task_name in a JSON callback report."""
    found: dict[str, dict[str, t.Any]] = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] == task_name:
                found = task["hosts"]
    return found


def lab(component: str, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "lab" / "lab"), component, action, *args],
                          check=check, text=True, capture_output=action == "status")


@contextlib.contextmanager
def lab_running(component: str, *args: str) -> t.Iterator[None]:
    """Start a lab component for a test session; stop it afterwards unless it was already up
    (a developer's running lab is left alone) or LAB_KEEP=1."""
    was_up = lab(component, "status", check=False).returncode == 0
    lock_kept = False
    if not was_up:
        # Started as `flock /tmp/sre-lab.lock lab/lab X up` is, on a lock of its own: no daemon
        # it starts may keep the caller's lock (lab_daemon in lab/lib.sh).
        with tempfile.NamedTemporaryFile(prefix="sre-lab-caller-", suffix=".lock") as lock:
            subprocess.run(["flock", lock.name, str(REPO / "lab" / "lab"), component, "up", *args], check=True, text=True)
            lock_kept = subprocess.run(["flock", "-n", lock.name, "true"], check=False).returncode != 0
    try:
        assert not lock_kept, f"lab/{component}/up left a daemon holding its caller's flock (start it with lab_daemon)"
        yield
    finally:
        if not was_up and os.environ.get("LAB_KEEP") != "1":
            lab(component, "down", check=False)


def kubeconfig() -> str:
    """The lab cluster's kubeconfig (lab/lab k8s up writes it)."""
    return str(Path(lab_var("lab_state_dir")) / "k8s" / "kubeconfig")


def kubectl(*args: str, stdin: t.Any = None, check: bool = True) -> subprocess.CompletedProcess:
    """kubectl against the lab cluster; stdin may be a manifest (dict) or text."""
    if stdin is not None and not isinstance(stdin, str):
        stdin = json.dumps(stdin)
    proc = subprocess.run([str(VENV_BIN / "kubectl"), "--kubeconfig", kubeconfig(), *args], input=stdin,
                          text=True, capture_output=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def python_bin() -> str:
    return str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable


def leaks(text: str, secret: str, context: int = 160, most: int = 5) -> str:
    """Where `secret` stands in `text`, with some context each side: the message of a canary
    assertion (empty when it does not occur)."""
    found, start = [], 0
    while len(found) < most and (i := text.find(secret, start)) >= 0:
        found.append("..." + text[max(0, i - context): i + len(secret) + context].replace("\\n", "\n") + "...")
        start = i + len(secret)
    return "\n---\n".join(found)


def leaking_tasks(report: t.Any, secret: str) -> list[str]:
    """The names of the tasks (of an ansible.posix.json report) whose result holds `secret`: the
    first thing to know when a canary test fails."""
    names = []
    if isinstance(report, dict) and "raw_stdout" in report:  # verbose runs print before the JSON
        raw = report["raw_stdout"]
        with contextlib.suppress(ValueError):
            report = json.loads(raw[raw.find("\n{") + 1:] if not raw.startswith("{") else raw)
    for play in (report or {}).get("plays", []) if isinstance(report, dict) else []:
        for task in play.get("tasks", []):
            if secret in json.dumps(task.get("hosts", {})):
                names.append((task.get("task") or {}).get("name", "?"))
    return names


def lab_inventory_of(tmp_path: Path, *groups: str) -> Path:
    """An inventory with only these groups of the lab inventory (hosts.yml, and hosts_systemd.yml
    when the systemd hosts are up), its group_vars linked: what a team whose estate is only those
    services writes. The full lab inventory names every lab component, up or not."""
    import shutil  # noqa: PLC0415  (only this helper needs it)

    hosts: dict[str, t.Any] = {}
    for name in ("hosts.yml", "hosts_systemd.yml"):
        path = LAB_INVENTORY / name
        if path.exists():
            data = yaml.safe_load(path.read_text()) or {}
            # hosts.yml nests its groups under all.children; hosts_systemd.yml lists them at the top.
            children = data.get("all", {}).get("children") or {k: v for k, v in data.items() if k != "all"}
            for group in groups:
                if group in children:
                    merged = hosts.setdefault(group, {"hosts": {}})
                    merged["hosts"].update(children[group].get("hosts") or {})
                    if children[group].get("vars"):
                        merged.setdefault("vars", {}).update(children[group]["vars"])
    missing = [g for g in groups if g not in hosts]
    if missing:
        raise AssertionError(f"the lab inventory has no group {missing} (is that lab component up?)")
    inv = tmp_path / "inventory"
    if inv.exists():
        shutil.rmtree(inv)
    (inv / "group_vars").mkdir(parents=True)
    (inv / "group_vars" / "all").symlink_to(LAB_INVENTORY / "group_vars" / "all")
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": hosts}}))
    return inv


def incident_timeline(incident_id: str) -> list[dict[str, t.Any]]:
    """The lines of an incident's timeline (the incident_timeline callback's JSONL)."""
    path = Path(os.environ["SRE_RUNBOOKS_STATE_DIR"]) / f"{incident_id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
