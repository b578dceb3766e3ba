"""A simulated kubelet for the sre.runbooks lab control plane (lab/k8s).

The lab runs the real kube-apiserver, controller-manager and scheduler, but no container
runtime. This process plays every node's kubelet against the real apiserver:

* registers N Ready nodes (lab-node-1..N) that serve logs on one HTTPS port;
* gives every pod scheduled to them a kubelet-like status: Running/Ready with a pod IP (so the
  endpoints controller publishes it), or a fault chosen by pod annotations (see README.md):
  CrashLoopBackOff after an Error or OOMKilled termination, ImagePullBackOff, or Running but
  not Ready; writes kubelet-like core/v1 Warning events for faults;
* keeps containers whose env refers to a missing Secret/ConfigMap or key in
  CreateContainerConfigError until it appears (it watches their key names, never values);
* completes graceful deletion (what a kubelet does when the containers have stopped), except
  on a NotReady node: there a pod marked for deletion stays Terminating, as with a dead kubelet;
* marks a node NotReady (and taints it not-ready:NoSchedule, as the node lifecycle controller
  would) while the node carries the annotation sim.sre-runbooks.io/ready=false;
* serves /containerLogs/NS/POD/CONTAINER[?previous=true&tailLines=N] so `kubectl logs
  --previous` works through the apiserver.

Everything is driven by watches (no polling loop), and the watch payloads are parsed as plain
JSON rather than client model objects: 500 pods settle in a few seconds on 2 cores.

    kubelet_sim.py run --kubeconfig FILE --nodes 3 --port 25250 --cert C --key K
    kubelet_sim.py check --kubeconfig FILE [--nodes 3] [--timeout 30]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.server
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
import typing as t
import urllib.parse

from kubernetes import client, config

ANNOTATION_PREFIX = "sim.sre-runbooks.io/"
POD_FAULT = ANNOTATION_PREFIX + "fault"  # crashloop | oomkilled | imagepull | unready
POD_FAULT_CONTAINER = ANNOTATION_PREFIX + "fault-container"  # default: every container
POD_RESTARTS = ANNOTATION_PREFIX + "restarts"  # restartCount of a faulted container (default 5)
POD_EXIT_CODE = ANNOTATION_PREFIX + "exit-code"  # crashloop exit code (default 1; OOMKilled 137)
POD_LOG = ANNOTATION_PREFIX + "log"  # current container log text
POD_PREVIOUS_LOG = ANNOTATION_PREFIX + "previous-log"  # previous (crashed) container log text
POD_MEMORY_USAGE = ANNOTATION_PREFIX + "memory-usage"  # e.g. "300Mi": OOMKilled while above the limit
NODE_READY = ANNOTATION_PREFIX + "ready"  # "false": the node goes NotReady
NODE_PRESSURE = ANNOTATION_PREFIX + "pressure"  # e.g. "MemoryPressure,DiskPressure"
NODE_LABEL = ANNOTATION_PREFIX + "managed"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
FAULTS = ("crashloop", "oomkilled", "imagepull", "unready")
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")

log = logging.getLogger("kubelet-sim")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: int) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def quantity(value: str) -> float:
    """A Kubernetes memory quantity ("512Mi", "1G", "1e9") in bytes; 0 when unparsable."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    text = str(value).strip()
    try:
        for suffix, factor in units.items():
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * factor
        return float(text)
    except ValueError:
        return 0.0


def api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    return client.ApiClient(configuration)


def read_json(response: t.Any) -> dict[str, t.Any]:
    return json.loads(response.data)


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.api = api_client(args.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.node_names = [f"{args.node_prefix}{i}" for i in range(1, args.nodes + 1)]
        self.pods: dict[tuple[str, str], dict[str, t.Any]] = {}
        self.nodes: dict[str, dict[str, t.Any]] = {}
        self.lock = threading.Lock()
        self.pending: set[tuple[str, str]] = set()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
        self.ips_in_use: set[str] = set()
        self.ip_cursor = 2
        self.events_sent: dict[str, str] = {}  # pod uid -> fault signature already reported
        self.stopping = threading.Event()
        # Key names (never values) of every Secret and ConfigMap, as a kubelet resolves env refs.
        self.config_keys: dict[tuple[str, str, str], set[str]] = {}
        self.config_synced = {"Secret": threading.Event(), "ConfigMap": threading.Event()}

    # ---------------------------------------------------------------- nodes
    def register_nodes(self) -> None:
        for name in self.node_names:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", NODE_LABEL: "true"}},
                "spec": {},
            }
            try:
                self.core.create_node(body, _preload_content=False)
                log.info("registered node %s", name)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
            self.update_node_status(name, {})

    def node_ready(self, node: dict[str, t.Any] | None) -> bool:
        annotations = ((node or {}).get("metadata") or {}).get("annotations") or {}
        return annotations.get(NODE_READY, "true").lower() not in ("false", "0", "no")

    def update_node_status(self, name: str, node: dict[str, t.Any]) -> None:
        ready = self.node_ready(node)
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        pressure = {p.strip() for p in annotations.get(NODE_PRESSURE, "").split(",") if p.strip()}
        old = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}

        def condition(ctype: str, status: str, reason: str, message: str) -> dict[str, str]:
            previous = old.get(ctype, {})
            changed = previous.get("status") != status
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now(),
                    "lastTransitionTime": now() if changed else previous.get("lastTransitionTime", now())}

        sufficient = {"MemoryPressure": "KubeletHasSufficientMemory", "DiskPressure": "KubeletHasNoDiskPressure",
                      "PIDPressure": "KubeletHasSufficientPID"}
        conditions = [
            condition(p, "True", f"KubeletHas{p}", f"kubelet has {p} (simulated)") if p in pressure
            else condition(p, "False", sufficient[p], f"kubelet has no {p}")
            for p in PRESSURE_CONDITIONS
        ]
        if ready:
            conditions.append(condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        else:
            conditions.append(condition("Ready", "False", "KubeletNotReady",
                                        "container runtime network not ready: simulated node failure"))
        desired = {
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": self.args.bind},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.args.port}},
            "capacity": {"cpu": "64", "memory": "512Gi", "pods": "500", "ephemeral-storage": "1Ti"},
            "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "500", "ephemeral-storage": "1Ti"},
            "nodeInfo": {"kubeletVersion": "v1.20.2-sre-runbooks-sim", "kubeProxyVersion": "v1.20.2",
                         "containerRuntimeVersion": "sim://1.0", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "sre.runbooks simulated node",
                         "kernelVersion": "sim", "machineID": name, "systemUUID": name, "bootID": name},
        }
        current = node.get("status") or {}
        if {c["type"]: c["status"] for c in current.get("conditions") or []} != \
                {c["type"]: c["status"] for c in conditions} or not current.get("daemonEndpoints"):
            self.core.patch_node_status(name, {"status": desired}, _preload_content=False,
                                        _content_type="application/merge-patch+json")
            was_ready = (old.get("Ready") or {}).get("status")
            if was_ready and was_ready != conditions[-1]["status"]:
                self.node_event(name, "NodeReady" if ready else "NodeNotReady",
                                f"Node {name} status is now: {'NodeReady' if ready else 'NodeNotReady'}")
        # The node lifecycle controller is off in the lab; taint as it would, so the scheduler
        # keeps new pods off a NotReady node.
        taints = [tt for tt in (node.get("spec") or {}).get("taints") or [] if tt.get("key") != NOT_READY_TAINT]
        if not ready:
            taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
        if node and taints != ((node.get("spec") or {}).get("taints") or []):
            self.core.patch_node(name, {"spec": {"taints": taints or None}}, _preload_content=False,
                                 _content_type="application/merge-patch+json")

    def node_event(self, node: str, reason: str, message: str) -> None:
        self.create_event("default", {"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"},
                          "Normal", reason, message, node, component="node-controller")

    # ---------------------------------------------------------------- pods
    def allocate_ip(self) -> str:
        with self.lock:
            while True:
                candidate = str(POD_CIDR.network_address + self.ip_cursor)
                self.ip_cursor = self.ip_cursor + 1 if self.ip_cursor < POD_CIDR.num_addresses - 2 else 2
                if candidate not in self.ips_in_use:
                    self.ips_in_use.add(candidate)
                    return candidate

    @staticmethod
    def fault_of(pod: dict[str, t.Any]) -> tuple[str | None, str | None]:
        annotations = pod["metadata"].get("annotations") or {}
        fault = annotations.get(POD_FAULT, "").strip().lower() or None
        if fault not in FAULTS:
            fault = None
        if fault is None and annotations.get(POD_MEMORY_USAGE):
            # The working set a container would reach: above its memory limit it is OOMKilled,
            # so raising the limit (memory_exhaustion) really heals it.
            usage = quantity(annotations[POD_MEMORY_USAGE])
            for container in pod["spec"]["containers"]:
                limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
                if limit and usage > quantity(limit):
                    return "oomkilled", container["name"]
        return fault, annotations.get(POD_FAULT_CONTAINER) or None

    def config_error(self, namespace: str, container: dict[str, t.Any]) -> str | None:
        """What a kubelet says when a container's env refers to a missing Secret/ConfigMap or key."""
        refs = []
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if source.get(field):
                    refs.append((kind, source[field]))
        for env_from in container.get("envFrom") or []:
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if env_from.get(field):
                    refs.append((kind, env_from[field]))
        for kind, ref in refs:
            if ref.get("optional") or not ref.get("name"):
                continue
            keys = self.config_keys.get((kind, namespace, ref["name"]))
            if keys is None:
                return f'{kind.lower() if kind == "Secret" else "configmap"} "{ref["name"]}" not found'
            if ref.get("key") and ref["key"] not in keys:
                return f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
        return None

    def desired_status(self, pod: dict[str, t.Any], node_ready: bool) -> dict[str, t.Any]:
        spec, status, meta = pod["spec"], pod.get("status") or {}, pod["metadata"]
        annotations = meta.get("annotations") or {}
        fault, fault_container = self.fault_of(pod)
        old_containers = {c["name"]: c for c in status.get("containerStatuses") or []}
        start_time = status.get("startTime") or now()
        pod_ip = status.get("podIP") or self.allocate_ip()
        try:
            restarts = max(1, int(annotations.get(POD_RESTARTS, "5")))
        except ValueError:
            restarts = 5
        containers, all_ready, pending = [], True, False
        for container in spec["containers"]:
            name, image = container["name"], container.get("image", "")
            old = old_containers.get(name, {})
            faulted = fault and (fault_container is None or fault_container == name)
            cstatus: dict[str, t.Any] = {
                "name": name, "image": image, "imageID": f"sim://{image}",
                "containerID": f"sim://{meta['uid'][:13]}-{name}",
            }
            config_error = self.config_error(meta["namespace"], container)
            if config_error:
                cstatus.update(ready=False, started=False, restartCount=0, state={"waiting": {
                    "reason": "CreateContainerConfigError", "message": config_error}}, lastState={})
                all_ready, pending = False, True
            elif faulted and fault in ("crashloop", "oomkilled"):
                oom = fault == "oomkilled"
                try:
                    code = int(annotations.get(POD_EXIT_CODE, "137" if oom else "1"))
                except ValueError:
                    code = 137 if oom else 1
                previous = (old.get("lastState") or {}).get("terminated") or {}
                waiting = {"reason": "CrashLoopBackOff",
                           "message": f"back-off 5m0s restarting failed container={name} pod={meta['name']}_"
                                      f"{meta['namespace']}({meta['uid']})"}
                terminated = {"exitCode": code, "reason": "OOMKilled" if oom else "Error",
                              "startedAt": previous.get("startedAt") or ago(40),
                              "finishedAt": previous.get("finishedAt") or ago(30),
                              "containerID": cstatus["containerID"]}
                cstatus.update(ready=False, started=False, restartCount=restarts, state={"waiting": waiting},
                               lastState={"terminated": terminated})
                all_ready = False
            elif faulted and fault == "imagepull":
                cstatus.update(ready=False, started=False, restartCount=0, state={"waiting": {
                    "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}, lastState={})
                all_ready, pending = False, True
            else:
                running = (old.get("state") or {}).get("running") or {}
                ready = node_ready and not (faulted and fault == "unready")
                cstatus.update(ready=ready, started=True, restartCount=old.get("restartCount", 0) if not old.get(
                    "lastState", {}).get("terminated") else 0,
                    state={"running": {"startedAt": running.get("startedAt") or start_time}}, lastState={})
                all_ready = all_ready and ready
            containers.append(cstatus)
        ready_status = "True" if all_ready else "False"
        old_conditions = {c["type"]: c for c in status.get("conditions") or []}

        def condition(ctype: str, value: str, reason: str | None = None) -> dict[str, t.Any]:
            previous = old_conditions.get(ctype, {})
            result = {"type": ctype, "status": value, "lastProbeTime": None,
                      "lastTransitionTime": previous.get("lastTransitionTime") if previous.get(
                          "status") == value else now()}
            if reason and value == "False":
                result["reason"] = reason
                result["message"] = "containers with unready status: [" + " ".join(
                    c["name"] for c in containers if not c["ready"]) + "]"
            return result

        init_statuses = [{
            "name": c["name"], "image": c.get("image", ""), "imageID": f"sim://{c.get('image', '')}",
            "ready": True, "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": start_time, "finishedAt": start_time}},
        } for c in spec.get("initContainers") or []]
        conditions = [condition("Initialized", "True"),
                      condition("Ready", ready_status, "ContainersNotReady"),
                      condition("ContainersReady", ready_status, "ContainersNotReady"),
                      condition("PodScheduled", "True")]
        return {
            "phase": "Pending" if pending else "Running",
            "conditions": conditions,
            "hostIP": self.args.bind,
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": start_time,
            "containerStatuses": containers,
            "initContainerStatuses": init_statuses or None,
            "qosClass": status.get("qosClass") or "BestEffort",
        }

    @staticmethod
    def signature(status: dict[str, t.Any]) -> tuple:
        return (
            status.get("phase"), status.get("podIP"),
            tuple(sorted((c["type"], c["status"]) for c in status.get("conditions") or [])),
            tuple(sorted((c["name"], c.get("ready"), c.get("restartCount"), json.dumps(
                {k: [(v or {}).get("reason"), (v or {}).get("message")]
                 for k, v in (c.get("state") or {}).items()}, sort_keys=True),
                json.dumps({k: (v or {}).get("reason") for k, v in (c.get("lastState") or {}).items()},
                           sort_keys=True)) for c in status.get("containerStatuses") or [])),
        )

    def enqueue(self, key: tuple[str, str]) -> None:
        with self.lock:
            if key in self.pending:
                return
            self.pending.add(key)
        self.pool.submit(self.sync_pod, key)

    def sync_pod(self, key: tuple[str, str]) -> None:
        with self.lock:
            self.pending.discard(key)
            pod = self.pods.get(key)
        if pod is None:
            return
        try:
            self._sync_pod(pod)
        except client.ApiException as exc:
            if exc.status not in (404, 409):  # gone or changed meanwhile: the watch brings it back
                log.warning("pod %s/%s: %s %s", key[0], key[1], exc.status, exc.reason)
        except Exception:  # noqa: BLE001  the simulator must survive one bad pod
            log.exception("pod %s/%s", *key)

    def _sync_pod(self, pod: dict[str, t.Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = spec.get("nodeName")
        if node not in self.node_names:
            return
        if meta.get("deletionTimestamp"):
            # A dead kubelet confirms nothing: the pod stays Terminating until the node comes back
            # (handle_node requeues its pods) or someone force-deletes it, as on a real cluster.
            if not self.node_ready(self.nodes.get(node)):
                return
            # The containers are "stopped" at once; finish the graceful deletion as a kubelet does.
            if not meta.get("finalizers"):
                self.core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], _preload_content=False,
                    body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
            return
        node_ready = self.node_ready(self.nodes.get(node))
        status = pod.get("status") or {}
        if not node_ready and not status.get("containerStatuses"):
            return  # a dead kubelet starts nothing
        desired = self.desired_status(pod, node_ready)
        if self.signature(desired) == self.signature(status):
            return
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": desired}, _preload_content=False,
            _content_type="application/merge-patch+json")
        self.report_fault(pod, desired)

    def report_fault(self, pod: dict[str, t.Any], status: dict[str, t.Any]) -> None:
        meta = pod["metadata"]
        fault = self.fault_of(pod)[0]
        config_errors = [((c.get("state") or {}).get("waiting") or {}).get("message") for c in status["containerStatuses"]
                         if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError"]
        signature = "|".join([fault or ""] + config_errors)
        if signature == "" or self.events_sent.get(meta["uid"], "") == signature:
            return
        self.events_sent[meta["uid"]] = signature
        for cstatus in status["containerStatuses"]:
            waiting = (cstatus.get("state") or {}).get("waiting")
            ref = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                   "apiVersion": "v1", "fieldPath": f"spec.containers{{{cstatus['name']}}}"}
            if waiting and waiting["reason"] == "CreateContainerConfigError":
                self.create_event(meta["namespace"], ref, "Warning", "Failed", f"Error: {waiting['message']}",
                                  pod["spec"]["nodeName"])
            elif waiting and waiting["reason"] == "CrashLoopBackOff":
                self.create_event(meta["namespace"], ref, "Warning", "BackOff",
                                  "Back-off restarting failed container", pod["spec"]["nodeName"],
                                  count=cstatus["restartCount"])
            elif waiting and waiting["reason"] == "ImagePullBackOff":
                self.create_event(meta["namespace"], ref, "Warning", "Failed",
                                  f'Failed to pull image "{cstatus["image"]}": rpc error: code = NotFound '
                                  f'desc = failed to resolve reference "{cstatus["image"]}": not found',
                                  pod["spec"]["nodeName"])
                self.create_event(meta["namespace"], ref, "Warning", "Failed", "Error: ImagePullBackOff",
                                  pod["spec"]["nodeName"])
            elif fault == "unready" and not cstatus.get("ready"):
                self.create_event(meta["namespace"], ref, "Warning", "Unhealthy",
                                  "Readiness probe failed: HTTP probe failed with statuscode: 503",
                                  pod["spec"]["nodeName"], count=3)

    def create_event(self, namespace: str, ref: dict[str, t.Any], etype: str, reason: str, message: str,
                     host: str, count: int = 1, component: str = "kubelet") -> None:
        stamp = now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": etype,
            "source": {"component": component, "host": host},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": count,
            "reportingComponent": component, "reportingInstance": host,
        }
        try:
            self.core.create_namespaced_event(namespace, body, _preload_content=False)
        except client.ApiException as exc:
            log.warning("event %s for %s: %s", reason, ref["name"], exc.reason)

    # ---------------------------------------------------------------- watches
    def watch(self, list_fn: t.Callable[..., t.Any], handle: t.Callable[[str, dict[str, t.Any]], None],
              what: str, **kwargs: t.Any) -> None:
        """List then watch forever, relisting when the resourceVersion expires (410)."""
        while not self.stopping.is_set():
            try:
                listing = read_json(list_fn(_preload_content=False, **kwargs))
                for item in listing["items"]:
                    handle("ADDED", item)
                handle("SYNCED", {})
                version = listing["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    response = list_fn(watch=True, resource_version=version, allow_watch_bookmarks=True,
                                       timeout_seconds=240, _preload_content=False, **kwargs)
                    buffer = b""
                    expired = False
                    for chunk in response.stream(65536, decode_content=False):
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                expired = True
                                break
                            version = obj["metadata"].get("resourceVersion", version)
                            if event["type"] != "BOOKMARK":
                                handle(event["type"], obj)
                        if expired:
                            break
                    response.release_conn()
                    if expired:
                        break
            except Exception as exc:  # noqa: BLE001  apiserver restarts must not kill the kubelet
                if self.stopping.is_set():
                    return
                log.warning("%s watch failed (%s); relisting in 1 s", what, exc)
                time.sleep(1)

    def handle_pod(self, event: str, pod: dict[str, t.Any]) -> None:
        if event == "SYNCED":
            return
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        if event == "DELETED":
            with self.lock:
                current = self.pods.get(key)
                if current and current["metadata"]["uid"] == meta["uid"]:
                    del self.pods[key]
                ip = (pod.get("status") or {}).get("podIP")
                if ip:
                    self.ips_in_use.discard(ip)
            self.events_sent.pop(meta["uid"], None)
            return
        with self.lock:
            self.pods[key] = pod
            ip = (pod.get("status") or {}).get("podIP")
            if ip:
                self.ips_in_use.add(ip)
        self.enqueue(key)

    def handle_config(self, kind: str) -> t.Callable[[str, dict[str, t.Any]], None]:
        def handle(event: str, obj: dict[str, t.Any]) -> None:
            if event == "SYNCED":
                self.config_synced[kind].set()
                return
            meta = obj["metadata"]
            key = (kind, meta["namespace"], meta["name"])
            keys = set(obj.get("data") or {}) | set(obj.get("binaryData") or {})
            if event == "DELETED":
                changed = self.config_keys.pop(key, None) is not None
            else:
                changed = self.config_keys.get(key) != keys
                self.config_keys[key] = keys
            if changed and self.config_synced[kind].is_set():
                # A kubelet retries containers waiting on config; requeue that namespace's pods.
                with self.lock:
                    waiting = [k for k in self.pods if k[0] == meta["namespace"]]
                for pod_key in waiting:
                    self.enqueue(pod_key)
        return handle

    def handle_node(self, event: str, node: dict[str, t.Any]) -> None:
        if event == "SYNCED":
            return
        name = node["metadata"]["name"]
        if name not in self.node_names:
            return
        if event == "DELETED":
            self.nodes.pop(name, None)
            self.pool.submit(self.register_nodes)
            return
        previous = self.nodes.get(name)
        self.nodes[name] = node
        try:
            self.update_node_status(name, node)
        except client.ApiException as exc:
            if exc.status != 409:
                log.warning("node %s: %s", name, exc.reason)
        if previous is None or self.node_ready(previous) != self.node_ready(node):
            with self.lock:
                keys = [k for k, p in self.pods.items() if p["spec"].get("nodeName") == name]
            for key in keys:
                self.enqueue(key)

    # ---------------------------------------------------------------- logs
    def container_log(self, namespace: str, pod_name: str, container: str,
                      previous: bool) -> tuple[int, str]:
        with self.lock:
            pod = self.pods.get((namespace, pod_name))
        if pod is None:
            return 404, f'pods "{pod_name}" not found\n'
        names = [c["name"] for c in pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])]
        if container not in names:
            return 400, f"container {container} is not valid for pod {pod_name}\n"
        annotations = pod["metadata"].get("annotations") or {}
        fault, fault_container = self.fault_of(pod)
        crashed = fault in ("crashloop", "oomkilled") and fault_container in (None, container)
        started = (pod.get("status") or {}).get("startTime") or now()
        if previous or crashed:
            if not crashed:
                return 400, f'previous terminated container "{container}" in pod "{pod_name}" not found\n'
            text = annotations.get(POD_PREVIOUS_LOG)
            if text is None:
                if fault == "oomkilled":
                    text = (f"{started} {container} starting\n{started} loading working set into memory\n"
                            f"{started} heap usage above limit, allocating more\n")
                else:
                    text = (f"{started} {container} starting\n"
                            f"{started} fatal: required configuration is missing or invalid; exiting with "
                            f"status {annotations.get(POD_EXIT_CODE, '1')}\n")
            return 200, text
        if fault == "imagepull" and fault_container in (None, container):
            return 400, (f'container "{container}" in pod "{pod_name}" is waiting to start: '
                         "trying and failing to pull image\n")
        text = annotations.get(POD_LOG)
        if text is None:
            text = f"{started} {container} started\n{started} ready to serve requests\n"
        return 200, text

    def serve_logs(self) -> None:
        simulator = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: t.Any) -> None:  # quiet access log
                return

            def reply(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802  (http.server API)
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
                if parts == ["healthz"]:
                    return self.reply(200, "ok")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    return self.reply(404, "the simulated kubelet serves /containerLogs and /healthz only\n")
                previous = query.get("previous", ["false"])[0].lower() == "true"
                code, text = simulator.container_log(parts[1], parts[2], parts[3], previous)
                if code == 200 and query.get("tailLines"):
                    try:
                        tail = int(query["tailLines"][0])
                        text = "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
                    except ValueError:
                        pass
                return self.reply(code, text)

        server = http.server.ThreadingHTTPServer((self.args.bind, self.args.port), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.args.cert, self.args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name="logs", daemon=True).start()
        log.info("serving container logs on https://%s:%d", self.args.bind, self.args.port)

    def run(self) -> None:
        self.serve_logs()
        self.register_nodes()
        threading.Thread(target=self.watch, args=(self.core.list_node, self.handle_node, "node"),
                         kwargs={"label_selector": f"{NODE_LABEL}=true"}, daemon=True).start()
        for kind, list_fn in (("Secret", self.core.list_secret_for_all_namespaces),
                              ("ConfigMap", self.core.list_config_map_for_all_namespaces)):
            threading.Thread(target=self.watch, args=(list_fn, self.handle_config(kind), kind),
                             daemon=True).start()
        for synced in self.config_synced.values():
            synced.wait(10)
        threading.Thread(target=self.watch,
                         args=(self.core.list_pod_for_all_namespaces, self.handle_pod, "pod"),
                         kwargs={"field_selector": "spec.nodeName!="}, daemon=True).start()
        self.stopping.wait()


def check(args: argparse.Namespace) -> int:
    """Exit 0 when the apiserver is ready and the simulated nodes are Ready."""
    deadline = time.monotonic() + args.timeout
    problem = "not checked"
    while True:
        try:
            api = api_client(args.kubeconfig)
            core = client.CoreV1Api(api)
            request = api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
            response = api.call_api(*request, _request_timeout=3)
            if response.status != 200:
                raise RuntimeError(f"apiserver /readyz answered {response.status}")
            nodes = read_json(core.list_node(label_selector=f"{NODE_LABEL}=true", _preload_content=False,
                                             _request_timeout=3))["items"]
            ready = [n["metadata"]["name"] for n in nodes
                     if any(c["type"] == "Ready" and c["status"] == "True"
                            for c in (n.get("status") or {}).get("conditions") or [])]
            want = args.nodes if args.nodes else max(1, len(nodes))
            if len(nodes) >= want and nodes and (args.nodes == 0 or len(ready) >= want):
                print(f"apiserver ready; nodes: {len(nodes)} registered, {len(ready)} Ready ({', '.join(ready)})")
                return 0
            problem = f"{len(nodes)} nodes registered, {len(ready)} Ready, {want} wanted"
        except Exception as exc:  # noqa: BLE001  any failure means "not yet"
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if time.monotonic() >= deadline:
            print(f"k8s lab not ready: {problem}", file=sys.stderr)
            return 1
        time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--kubeconfig", required=True)
    run.add_argument("--nodes", type=int, default=3)
    run.add_argument("--node-prefix", default="lab-node-")
    run.add_argument("--bind", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--cert", required=True)
    run.add_argument("--key", required=True)
    run.add_argument("--workers", type=int, default=6)
    chk = sub.add_parser("check")
    chk.add_argument("--kubeconfig", required=True)
    chk.add_argument("--nodes", type=int, default=0)
    chk.add_argument("--timeout", type=float, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if args.command == "check":
        return check(args)
    simulator = Simulator(args)
    signal.signal(signal.SIGTERM, lambda *_args: simulator.stopping.set())
    simulator.run()
    os._exit(0)  # daemon threads hold open watches; do not wait for them


if __name__ == "__main__":
    sys.exit(main())
