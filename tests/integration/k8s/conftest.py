"""Fixtures for the Kubernetes integration tests: the real lab control plane and a namespace per test."""

from __future__ import annotations

import typing as t
import uuid

import pytest

import sre_testlib
from k8s_integration import NODE_READY, kubeconfig, kubectl, nodes_all_schedulable


@pytest.fixture(scope="session")
def k8s_lab() -> t.Iterator[str]:
    """The lab control plane (lab/lab k8s up), stopped after the session unless it was already up.
    A lab that cannot start errors every test that needs it: nothing is skipped."""
    with sre_testlib.lab_running("k8s"):
        kubectl("get", "--raw", "/readyz")
        yield kubeconfig()


@pytest.fixture
def namespace(k8s_lab: str) -> t.Iterator[str]:
    """A fresh namespace, deleted afterwards with everything a test created in it."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def auth(k8s_lab: str) -> dict[str, t.Any]:
    return {"kubeconfig": k8s_lab}


@pytest.fixture
def failing_node(k8s_lab: str) -> t.Iterator[t.Callable[[str], None]]:
    """Mark lab nodes NotReady for a test; afterwards they are Ready and schedulable again."""
    marked: list[str] = []

    def fail(node: str) -> None:
        marked.append(node)
        kubectl("annotate", "node", node, f"{NODE_READY}=false", "--overwrite")

    yield fail
    for node in marked:
        kubectl("annotate", "node", node, f"{NODE_READY}-", check=False)
        kubectl("uncordon", node, check=False)
    if marked:
        nodes_all_schedulable()
