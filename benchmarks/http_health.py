"""Benchmark: one sre.runbooks.http_health task vs an ansible.builtin.uri loop, on 200 endpoints.

    .venv/bin/python benchmarks/http_health.py [--endpoints 200] [--slow 20] [--refused 10]
                                               [--hanging 10] [--wrong 10] [--timeout 1]

Needs no lab: it starts its own HTTP servers on 127.0.0.1 (random free ports, the ones of
tests/integration/http) and stops them at the end. The endpoints are a mix of healthy JSON
endpoints (body check `status == ok`), slow ones (answer after 200 ms), ones answering 503,
ports that refuse, and listeners that accept and never answer (they cost the full timeout).
Both playbooks run against localhost (connection local) with ansible-playbook, as a user would:

  * module: one `sre.runbooks.http_health` task over every endpoint (default concurrency);
  * uri:    the same checks as an `ansible.builtin.uri` loop (one module run per endpoint,
            same timeout, the body check in `failed_when`, `ignore_errors` so the loop goes on);
  * floor:  an empty play, Ansible's own start-up cost.

Prints the wall times, uri/module, and whether both saw the same failing endpoints. Target: the
module at least 20x faster than the loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "http"))

import sre_testlib  # noqa: E402

from http_servers import LocalServers  # noqa: E402

PLAY_HEAD = """- name: {name}
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
"""


def make_endpoints(servers: LocalServers, total: int, slow: int, refused: int, hanging: int,
                   wrong: int) -> list[dict]:
    endpoints = []
    for i in range(slow):
        endpoints.append({"name": f"slow-{i:03d}", "url": f"{servers.http}/slow/200?i={i}"})
    for i in range(refused):
        endpoints.append({"name": f"refused-{i:03d}", "url": f"{servers.refused}?i={i}"})
    for i in range(hanging):
        endpoints.append({"name": f"hanging-{i:03d}", "url": f"{servers.blackhole}?i={i}"})
    for i in range(wrong):
        endpoints.append({"name": f"wrong-{i:03d}", "url": f"{servers.http}/status/503?i={i}"})
    for i in range(total - len(endpoints)):
        endpoints.append({"name": f"ok-{i:03d}", "url": f"{servers.http}/ok?i={i}",
                          "body_path": "status", "body_equals": "ok"})
    # Interleave the kinds, as a real fleet's list would be: sort by the index in the name.
    return sorted(endpoints, key=lambda e: (e["name"].rsplit("-", 1)[1], e["name"]))


def module_playbook(endpoints: list[dict], timeout: float) -> str:
    return PLAY_HEAD.format(name="http_health") + f"""  tasks:
    - name: Check endpoints
      sre.runbooks.http_health:
        timeout: {timeout}
        endpoints: {json.dumps(endpoints)}
"""


def uri_playbook(endpoints: list[dict], timeout: float) -> str:
    items = [{"name": e["name"], "url": e["url"], "body": bool(e.get("body_path"))} for e in endpoints]
    return PLAY_HEAD.format(name="uri loop") + f"""  tasks:
    - name: Check endpoints
      ansible.builtin.uri:
        url: "{{{{ item.url }}}}"
        method: GET
        status_code: [200, 201, 202, 203, 204, 205, 206]
        timeout: {int(max(1, timeout))}
        return_content: "{{{{ item.body }}}}"
      loop: {json.dumps(items)}
      loop_control:
        label: "{{{{ item.name }}}}"
      register: checks
      failed_when: >-
        checks.status | default(-1) not in [200, 201, 202, 203, 204, 205, 206]
        or (item.body and (checks.json | default({{}})).status | default('') != 'ok')
      ignore_errors: true
"""


def run_timed(playbook: Path) -> tuple[float, dict]:
    started = time.monotonic()
    rc, report, stderr = sre_testlib.run_playbook(playbook, inventory="localhost,", timeout=3600)
    elapsed = time.monotonic() - started
    if rc != 0 or "plays" not in report:
        raise SystemExit(f"{playbook.name} failed (rc={rc}): {stderr[-2000:]}")
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--refused", type=int, default=10)
    parser.add_argument("--hanging", type=int, default=10)
    parser.add_argument("--wrong", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds; uri takes whole seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        tmpdir = Path(tmp)
        servers = LocalServers(tmpdir, tls=False).start()
        try:
            endpoints = make_endpoints(servers, args.endpoints, args.slow, args.refused, args.hanging, args.wrong)
            expected_failing = sorted(e["name"] for e in endpoints if not e["name"].startswith(("ok-", "slow-")))
            (tmpdir / "module.yml").write_text(module_playbook(endpoints, args.timeout))
            (tmpdir / "uri.yml").write_text(uri_playbook(endpoints, args.timeout))
            (tmpdir / "floor.yml").write_text(PLAY_HEAD.format(name="floor") + "  tasks: []\n")

            print(f"{len(endpoints)} endpoints: {args.endpoints - args.slow - args.refused - args.hanging - args.wrong}"
                  f" healthy, {args.slow} slow (200 ms), {args.wrong} answering 503, {args.refused} refusing,"
                  f" {args.hanging} never answering (timeout {args.timeout:g} s)")
            floor_s, _floor_report = run_timed(tmpdir / "floor.yml")
            print(f"floor  (empty play):                {floor_s:8.2f} s")
            module_s, module_report = run_timed(tmpdir / "module.yml")
            result = sre_testlib.task_results(module_report, "Check endpoints")["localhost"]
            module_failing = sorted(result["failing"])
            print(f"module (one http_health task):      {module_s:8.2f} s   (module's own checks: "
                  f"{result['duration_ms'] / 1000:.2f} s; p50 {result['summary']['latency_ms']['p50']} ms, "
                  f"p95 {result['summary']['latency_ms']['p95']} ms; {result['summary']['errors_by_category']})")
            uri_s, uri_report = run_timed(tmpdir / "uri.yml")
            loop = sre_testlib.task_results(uri_report, "Check endpoints")["localhost"]["results"]
            uri_failing = sorted(r["item"]["name"] for r in loop if r.get("failed"))
            print(f"uri    (ansible.builtin.uri loop):  {uri_s:8.2f} s")
            ratio = uri_s / module_s
            print(f"uri/module = {ratio:.1f}x (target >= 20x: {'met' if ratio >= 20 else 'MISSED'}); "
                  f"minus the floor: {(uri_s - floor_s) / max(module_s - floor_s, 1e-3):.1f}x")
            same = module_failing == uri_failing == expected_failing
            print(f"same failing endpoints in both: {'yes' if same else 'NO'} "
                  f"({len(module_failing)} module, {len(uri_failing)} uri, {len(expected_failing)} expected)")
        finally:
            servers.close()


if __name__ == "__main__":
    main()
