"""execution-environment.yml (ansible-builder v3), offline: `ansible-builder create` writes a build
context with the collection tarball from `ansible-galaxy collection build`, and the collection's
own meta/execution-environment.yml gives the image every Python library and system package the
modules need (ansible-builder introspect reads it from the installed tarball, as the build does)."""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import subprocess
import tarfile
import typing as t
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from sre_testlib import REPO, VENV_BIN

EE_FILE = REPO / "execution-environment.yml"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
# import name -> distribution name, for the third-party libraries the plugins import
DISTRIBUTIONS = {"psycopg2": "psycopg2-binary", "redis": "redis", "kubernetes": "kubernetes",
                 "confluent_kafka": "confluent-kafka"}


def run(*cmd: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # from a folder of its own: the repository's ansible.cfg would show ansible-galaxy this checkout
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The collection tarball, and the build context `ansible-builder create` makes with it."""
    work = tmp_path_factory.mktemp("ee")
    run(str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work / "build"),
        cwd=work)
    shutil.copy(EE_FILE, work / "execution-environment.yml")
    run(str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
        "--output-filename", "Containerfile", cwd=work)
    return {"tarball": work / "build" / TARBALL, "context": work / "context", "work": work}


def test_ee_definition_is_v3_and_pins_what_the_venv_runs():
    ee = yaml.safe_load(EE_FILE.read_text())
    assert ee["version"] == 3
    pins = dict(line.split("==") for line in requirement_lines(REPO / "requirements.txt") if "==" in line)
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={pins['ansible-core']}"
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={pins['ansible-runner']}"
    assert "ansible-builder" in pins, "ansible-builder is pinned in requirements.txt"
    # the collection goes in as the tarball ansible-galaxy builds (a `type: dir` source is not copied)
    assert ee["dependencies"]["galaxy"]["collections"] == [{"name": f"collections/{TARBALL}", "type": "file"}]
    assert ee["additional_build_files"] == [{"src": f"build/{TARBALL}", "dest": "collections"}]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_writes_a_context_with_the_collection_tarball(built):
    context = built["context"]
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "COPY _build /build" in containerfile and "introspect" in containerfile
    assert re.search(r'ANSIBLE_INSTALL_REFS="ansible-core==[\d.]+ ansible-runner==[\d.]+"', containerfile)
    shipped = context / "_build" / "collections" / TARBALL
    assert shipped.is_file() and digest(shipped) == digest(built["tarball"])
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": f"collections/{TARBALL}", "type": "file"}]


def test_the_tarball_carries_its_ee_metadata_and_no_link_back_to_the_checkout(built):
    with tarfile.open(built["tarball"]) as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert {"meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
            "playbooks/outage/db_exhaustion.yml", "playbooks/awx/configure.yml"} <= names
    assert not [m.name for m in members if m.issym() or m.islnk()], "links in the tarball"
    assert not [n for n in names if "/collections/" in n or n == "execution-environment.yml"]


def test_introspect_gives_the_image_the_modules_requirements(built):
    """What the builder stage computes from the installed collection: our Python and system needs."""
    work = built["work"]
    run(str(VENV_BIN / "ansible-galaxy"), "collection", "install", str(built["tarball"]), "-p", "installed",
        "--no-deps", "--force", cwd=work)
    out = yaml.safe_load(run(str(VENV_BIN / "ansible-builder"), "introspect", "installed", cwd=work).stdout)
    python = [line.split("#")[0].strip() for line in out["python"]]
    system = [line.split("#")[0].strip() for line in out["system"]]
    assert python == requirement_lines(REPO / "meta" / "ee-requirements.txt")
    assert system == requirement_lines(REPO / "meta" / "ee-bindep.txt")


def third_party_imports() -> dict[str, list[str]]:
    """Top-level modules the plugins import that are neither stdlib nor Ansible's, by file."""
    found: dict[str, list[str]] = {}
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ("ansible", "ansible_collections", "__future__") and top not in _stdlib():
                    found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def _stdlib() -> frozenset[str]:
    import sys  # noqa: PLC0415
    return frozenset(sys.stdlib_module_names)


def test_every_library_the_plugins_import_is_an_ee_requirement():
    wanted = {Requirement(line).name for line in requirement_lines(REPO / "meta" / "ee-requirements.txt")}
    imported = third_party_imports()
    unknown = sorted(set(imported) - set(DISTRIBUTIONS))
    assert not unknown, f"new third-party imports, add them to meta/ee-requirements.txt: {unknown}"
    assert {DISTRIBUTIONS[name] for name in imported} == wanted


def test_the_tested_versions_satisfy_the_ee_lower_bounds():
    pins = dict(line.split("==") for line in requirement_lines(REPO / "requirements.txt") if "==" in line)
    for line in requirement_lines(REPO / "meta" / "ee-requirements.txt"):
        req = Requirement(line)
        assert req.name in pins, f"{req.name} is not pinned in requirements.txt (tests run another version)"
        assert req.specifier.contains(pins[req.name]), f"requirements.txt pins {req.name}=={pins[req.name]}, outside {line}"


@pytest.mark.parametrize("library, bound, api", [
    # _k8s.py calls ApiClient.param_serialize() then call_api(*request): the openapi-generator 7
    # client, first in kubernetes 37.0.0 (36.x's call_api takes (resource_path, method, ...)).
    ("kubernetes", "37.0.0", lambda: __import__("kubernetes.client", fromlist=["ApiClient"]).ApiClient.param_serialize),
    # _kafka.py: AdminClient.list_offsets with OffsetSpec, added in confluent-kafka 2.3.0.
    ("confluent-kafka", "2.3.0", lambda: (__import__("confluent_kafka.admin", fromlist=["OffsetSpec"]).OffsetSpec,
                                          __import__("confluent_kafka.admin", fromlist=["AdminClient"]).AdminClient.list_offsets)),
    # _redis.py: Redis(retry=Retry(NoBackoff(), 0)) and ACL usernames.
    ("redis", "4.5", lambda: (__import__("redis.retry", fromlist=["Retry"]).Retry,
                              __import__("redis.backoff", fromlist=["NoBackoff"]).NoBackoff)),
])
def test_lower_bounds_name_the_api_the_code_uses(library, bound, api: t.Callable[[], t.Any]):
    lines = {Requirement(line).name: line for line in requirement_lines(REPO / "meta" / "ee-requirements.txt")}
    assert lines[library] == f"{library}>={bound}"
    assert api() is not None
