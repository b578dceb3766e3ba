"""network_partition on a real systemd lab host (issue 12): net_probe run ON the host over SSH,
and the playbook against a real cut - a routing rule inside the host's own network namespace
(molecule/network_partition/files/cut_path.sh), always removed afterwards.

The dependency is a real HTTP server this test runs on the host's gateway address (this machine's
end of the host's veth): the controller reaches it locally, the host over its veth."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import threading
import typing as t

import pytest

import sre_testlib

PLAYBOOK = sre_testlib.REPO / "playbooks" / "outage" / "network_partition.yml"
CUT = sre_testlib.REPO / "molecule" / "network_partition" / "files" / "cut_path.sh"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def gateway(lab_host) -> str:
    return lab_host.address.rsplit(".", 1)[0] + ".1"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@pytest.fixture
def dependency(lab_host) -> t.Iterator[dict[str, t.Any]]:
    """An HTTP server on the gateway address, and a TCP listener that never answers."""
    address = gateway(lab_host)
    server = http.server.ThreadingHTTPServer((address, 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind((address, 0))
    silent.listen(16)
    try:
        yield {"address": address, "port": server.server_address[1], "silent_port": silent.getsockname()[1]}
    finally:
        server.shutdown()
        server.server_close()
        silent.close()


def pidfile(lab_host) -> str:
    state = os.environ.get("LAB_STATE_DIR") or sre_testlib.lab_var("lab_state_dir")
    return f"{state}/hosts/{lab_host.name}/nspawn.pid"


def cut_path(action: str, lab_host, address: str, port: int) -> str:
    proc = subprocess.run([str(CUT), action, pidfile(lab_host), address, str(port)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@contextlib.contextmanager
def path_cut(lab_host, address: str, port: int) -> t.Iterator[None]:
    try:
        cut_path("add", lab_host, address, port)
        assert f"dport {port}" in cut_path("show", lab_host, address, port)
        yield
    finally:
        cut_path("del", lab_host, address, port)
    assert cut_path("show", lab_host, address, port).strip() == ""


def host_connects(lab_host, address: str, port: int) -> bool:
    """A real client on the host (not our module): bash's /dev/tcp."""
    return lab_host.sh(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}'", check=False).returncode == 0


def deps(dep) -> list[dict[str, t.Any]]:
    url = f"http://{dep['address']}:{dep['port']}/"
    return [{"name": "upstream", "host": dep["address"], "port": dep["port"], "http_url": url}]


def record(report, host):
    task = "sre.runbooks.network_partition : Record | structured result for the incident timeline"
    return sre_testlib.task_results(report, task)[host]["ansible_facts"]["network_partition_result"]


def changed_tasks(report, host):
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if task["hosts"].get(host, {}).get("changed")]


def run(lab_host, dependencies, controller_dependencies=None, **kw):
    extra = {"target": lab_host.name, "network_partition_dependencies": dependencies}
    if controller_dependencies is not None:
        extra["network_partition_controller_dependencies"] = controller_dependencies
    return sre_testlib.run_playbook(PLAYBOOK, extra_vars=extra, **kw)


def test_net_probe_on_the_host_names_each_failure(lab_host, dependency):
    address, port = dependency["address"], dependency["port"]
    args = {"dependencies": [
        {"name": "http", "host": address, "port": port, "http_url": f"http://{address}:{port}/"},
        {"name": "closed", "host": address, "port": free_port(address)},
        {"name": "self-by-name", "host": lab_host.name, "port": 22},
        {"name": "no-such-name", "host": "no-such-name.invalid", "port": 80},
        {"name": "mute", "host": address, "port": dependency["silent_port"],
         "http_url": f"http://{address}:{dependency['silent_port']}/", "timeout": 1},
        {"name": "cut", "host": address, "port": port},
    ], "total_timeout": 10}
    with path_cut(lab_host, address, port):
        assert not host_connects(lab_host, address, port)  # the cut is real
        result = lab_host.module("net_probe", args)
        # The cut sits in the host's namespace only: the controller still reaches the server.
        from_controller = sre_testlib.run_module("net_probe", {"dependencies": args["dependencies"][:1]})
    assert host_connects(lab_host, address, port)
    assert result["changed"] is False and result["probed_from"] == lab_host.name
    by = {d["name"]: d for d in result["dependencies"]}
    # The HTTP one was probed while cut: same port as "cut".
    assert by["cut"]["failed_step"] == "tcp" and by["cut"]["error_category"] == "no_route", by["cut"]
    assert by["http"]["error_category"] == "no_route"
    assert by["closed"]["error_category"] == "refused"
    assert by["self-by-name"]["ok"] and not by["self-by-name"]["dns"]["skipped"]
    assert by["no-such-name"]["failed_step"] == "dns"
    assert by["no-such-name"]["error_category"] in ("nxdomain", "dns_timeout")
    assert by["mute"]["tcp"]["ok"] and by["mute"]["failed_step"] == "http"
    assert by["mute"]["error_category"] == "timeout"
    assert from_controller["all_ok"] and from_controller["dependencies"][0]["http"]["status"] == 200
    # One concurrent batch: the 1 s HTTP timeout bounds it, not the sum of the probes.
    assert result["duration_ms"] < 8000
    assert result["resolver"]["units"]["systemd-resolved.service"]["exists"] is False


def test_no_fault_control_healthy_host_changes_nothing(lab_host, dependency):
    rc, report, stderr = run(lab_host, deps(dependency))
    assert rc == 0, stderr
    result = record(report, lab_host.name)
    assert changed_tasks(report, lab_host.name) == []
    assert result["outcome"] == "no action needed" and result["healthy"] is True
    assert result["verdict"].startswith("healthy, nothing to do") and result["actions"] == []


def test_no_fault_control_other_scenarios_fault_changes_nothing(lab_host, dependency, lab_services_restored):
    """A service_down fault (nginx stopped) is not a network partition: nothing is touched."""
    lab_host.sh("systemctl stop nginx.service")
    rc, report, stderr = run(lab_host, deps(dependency))
    assert rc == 0, stderr
    assert changed_tasks(report, lab_host.name) == []
    assert record(report, lab_host.name)["outcome"] == "no action needed"
    assert lab_host.unit("nginx.service", "ActiveState") == "inactive"


def test_playbook_names_the_cut_dependency_and_the_hosts_side(lab_host, dependency):
    address, port = dependency["address"], dependency["port"]
    # ssh-self is the host's own name: the controller does not probe it.
    dependencies = deps(dependency) + [{"name": "ssh-self", "host": lab_host.name, "port": 22}]
    controller = deps(dependency)
    with path_cut(lab_host, address, port):
        # --tags assess and --check: read-only, report only, green.
        rc_assess, assess, stderr_assess = run(lab_host, dependencies, controller, tags="assess")
        rc_check, check, stderr_check = run(lab_host, dependencies, controller, check=True)
        rc, report, stderr = run(lab_host, dependencies, controller)
    assert rc_assess == 0, stderr_assess
    assert rc_check == 0, stderr_check
    for rep in (assess, check, report):
        assert changed_tasks(rep, lab_host.name) == []
    assert record(assess, lab_host.name)["cut"] == ["upstream"]
    assert record(check, lab_host.name)["cut"] == ["upstream"]
    # The full run fails: a human must act on a cut path, and the message names it.
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["cut"] == ["upstream"] and result["down"] == [] and result["restarted"] == []
    upstream = result["dependencies"]["upstream"]
    assert upstream["state"] == "partition" and upstream["side"] == "hosts"
    assert upstream["unreachable_from"] == [lab_host.name] and upstream["reachable_from"] == ["controller"]
    assert upstream["category"] == "no_route"
    assert result["dependencies"]["ssh-self"]["state"] == "healthy"
    assert f"{lab_host.name} cannot reach upstream" in result["verdict"]
    assert f"{lab_host.name}'s side of the path is cut" in result["verdict"]
    # Restored: healthy again, from the same playbook.
    rc, report, stderr = run(lab_host, dependencies, controller)
    assert rc == 0, stderr
    assert record(report, lab_host.name)["outcome"] == "no action needed"


def test_unreachable_from_everywhere_is_down_not_a_partition(lab_host, dependency):
    address = dependency["address"]
    dependencies = [{"name": "gone", "host": address, "port": free_port(address)}]
    rc, report, stderr = run(lab_host, dependencies)
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["down"] == ["gone"] and result["cut"] == []
    assert result["dependencies"]["gone"]["unreachable_from"] == [lab_host.name, "controller"]
    assert "not a partition" in result["verdict"] and changed_tasks(report, lab_host.name) == []


def test_names_failing_on_the_host_only_without_a_resolver_unit_are_reported(lab_host, dependency):
    """The lab host has no name server: the controller's own name does not resolve there, while
    the controller reaches the dependency and TCP by address works from the host. The resolver
    evidence agrees, but the host has no resolver unit: reported, nothing restarted."""
    address, port = dependency["address"], dependency["port"]
    name = socket.gethostname()
    dependencies = [{"name": f"n{i}", "host": name, "port": port, "address": address} for i in range(2)]
    from_controller = [{"name": f"n{i}", "host": address, "port": port} for i in range(2)]
    host_view = lab_host.module("net_probe", {"dependencies": dependencies})
    assert host_view["dependencies"][0]["failed_step"] == "dns", host_view["dependencies"][0]
    assert host_view["dependencies"][0]["tcp"]["ok"] and host_view["dependencies"][0]["tcp"]["via_fallback"]
    rc, report, stderr = sre_testlib.run_playbook(PLAYBOOK, extra_vars={
        "target": lab_host.name, "network_partition_dependencies": dependencies,
        "network_partition_controller_dependencies": from_controller})
    assert rc != 0
    result = record(report, lab_host.name)
    assert result["restarted"] == [] and changed_tasks(report, lab_host.name) == []
    assert result["cut"] == ["n0", "n1"]
    assert result["resolver"]["restart"] is None
    assert "no resolver unit" in result["resolver"]["reason"], result["resolver"]


def test_secret_canary_credentials_in_a_probe_url_never_leave_the_run(lab_host, dependency):
    """A dependency's http_url with credentials: the playbook at -vvv prints and records none of them."""
    canary = "np-canary-Zq81xWv"
    address, port = dependency["address"], dependency["port"]
    url = f"http://probe:{canary}@{address}:{port}/"
    dependencies = [{"name": "upstream", "host": address, "port": port, "http_url": url}]
    rc, report, stderr = sre_testlib.run_playbook(
        PLAYBOOK, extra_vars={"target": lab_host.name, "network_partition_dependencies": dependencies},
        env={"ANSIBLE_VERBOSITY": "3"})
    assert rc == 0, stderr
    # At -vvv the output is not pure JSON (report holds raw_stdout): read it as text.
    text = json.dumps(report) + stderr
    assert "healthy, nothing to do" in text and "upstream" in text, text[-3000:]
    assert canary not in text
