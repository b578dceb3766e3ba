"""Benchmark: k8s_triage_info vs the runbook's kubectl-per-pod triage, on 500 pods (50 crash-looping).

    .venv/bin/python benchmarks/k8s_triage.py [--pods 500] [--crashing 50] [--runs 3]

Starts the k8s lab when it is not up (and stops it again afterwards), creates a namespace of
Deployments whose pods the simulated kubelet runs (one Deployment's pods crash-loop with an
OOMKilled or Error last termination), then times:

  * module:  sre.runbooks.k8s_triage_info over the namespace, as Ansible runs it (a child
             Python process), with the previous log tail of the 10 worst pods;
  * kubectl: what runbook 000 Scenario D does by hand - `kubectl get pods`, then for every
             failing pod `kubectl describe pod` and `kubectl logs --previous`.

Prints both times; the target for the module is 2 s. The namespace is deleted on exit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))

import sre_testlib  # noqa: E402

from sre_testlib import kubeconfig, kubectl  # noqa: E402

NAMESPACE = "bench-triage"


def deployment(name: str, replicas: int, fault: str | None) -> dict:
    annotations = {"sim.sre-runbooks.io/fault": fault} if fault else {}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                              "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{name}:1",
                                                       "resources": {"limits": {"memory": "256Mi"}}}]}}},
    }


def populate(pods: int, crashing: int) -> None:
    kubectl("create", "namespace", NAMESPACE)
    per = 50
    healthy = pods - crashing
    objects = [deployment(f"svc-{i:02d}", min(per, healthy - i * per), None) for i in range((healthy + per - 1) // per)]
    objects.append(deployment("crasher", crashing, "crashloop"))
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        listing = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
        settled = [p for p in listing if (p.get("status") or {}).get("containerStatuses")]
        if len(listing) >= pods and len(settled) >= pods:
            return
        time.sleep(1)
    raise SystemExit(f"only {len(settled)}/{pods} pods settled within 180 s")


def time_module(runs: int) -> tuple[list[float], dict]:
    times, result = [], {}
    for _run in range(runs):
        start = time.monotonic()
        result = sre_testlib.run_module("k8s_triage_info", {"kubeconfig": kubeconfig(), "namespace": NAMESPACE,
                                                            "previous_logs": 10})
        times.append(time.monotonic() - start)
        if result.get("failed"):
            raise SystemExit(f"k8s_triage_info failed: {result.get('msg')}")
    return times, result


def time_kubectl() -> tuple[float, int]:
    start = time.monotonic()
    lines = kubectl("get", "pods", "-n", NAMESPACE, "--no-headers").stdout.splitlines()
    failing = [line.split()[0] for line in lines if line.split()[2] != "Running" or line.split()[1].split("/")[0] == "0"]
    for pod in failing:
        kubectl("describe", "pod", "-n", NAMESPACE, pod)
        kubectl("logs", "-n", NAMESPACE, pod, "--previous", "--tail", "20", check=False)
    return time.monotonic() - start, len(failing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--crashing", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with sre_testlib.lab_running("k8s"):
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s", check=False)
        try:
            t0 = time.monotonic()
            populate(args.pods, args.crashing)
            print(f"set-up: {args.pods} pods ({args.crashing} crash-looping) running in {time.monotonic() - t0:.1f} s")
            times, result = time_module(args.runs)
            summary = result["summary"]
            assert summary["pods_total"] == args.pods, summary
            assert summary["crashloop"] == args.crashing, summary
            kubectl_time, failing = time_kubectl()
            assert failing == args.crashing, failing
            print(f"k8s_triage_info: median {statistics.median(times):.2f} s over {args.runs} runs "
                  f"(in-module {result['elapsed_seconds']:.2f} s; {summary['pods_total']} pods, "
                  f"{summary['crashloop']} crash-looping, 10 previous logs) - target 2 s")
            print(f"kubectl per pod: {kubectl_time:.2f} s (get pods + describe + logs --previous for {failing} pods)")
            print(f"speed-up: {kubectl_time / statistics.median(times):.0f}x")
            return 0 if statistics.median(times) <= 2.0 else 1
        finally:
            kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


if __name__ == "__main__":
    sys.exit(main())
