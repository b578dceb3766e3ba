# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes access and logic shared by the sre.runbooks k8s_* modules (private).

Talks to the apiserver through the official ``kubernetes`` client's connection handling
(kubeconfig, contexts, tokens, TLS), but reads and writes plain JSON: one list of 500 pods is
parsed in milliseconds instead of the seconds that model objects take, which is what keeps
triage under two seconds on large namespaces. Only APIs that are stable from Kubernetes 1.20
to current releases are used (core/v1, apps/v1, core/v1 events and endpoints).
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import hmac
import json
import typing as t
import urllib.parse

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._secrets import MASK, mask_argv, mask_mapping, mask_text

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
except ImportError as exc:  # pragma: no cover - exercised by missing_required_lib
    k8s_client = None
    KUBERNETES_IMPORT_ERROR: ImportError | None = exc
else:
    KUBERNETES_IMPORT_ERROR = None

WORKLOAD_KINDS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
# Written on the workload (metadata, not the pod template: no rollout) by k8s_rollout undo, so a
# second run of the same undo knows it already happened instead of toggling back like kubectl.
ROLLBACK_MARKER = "sre.runbooks/rolled-back"


def k8s_argument_spec() -> dict[str, t.Any]:
    """Connection options every k8s_* module accepts (documented in the k8s doc fragment)."""
    return dict(
        kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
        context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
        host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
        api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
        validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
        ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
        request_timeout=dict(type="float", default=20),
    )


class K8sError(Exception):
    """An apiserver call failed; ``status`` is the HTTP status (0 when none was received)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class K8s:
    """A thin JSON client over one apiserver connection."""

    def __init__(self, api_client: t.Any, target: str, timeout: float) -> None:
        self.api = api_client
        self.target = target
        self.timeout = timeout

    def request(self, method: str, path: str, query: dict[str, t.Any] | None = None, body: t.Any = None,
                content_type: str = "application/json", timeout: float | None = None,
                raw: bool = False) -> t.Any:
        headers = {"Accept": "*/*" if raw else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None and v != ""]
        try:
            request = self.api.param_serialize(method, path, query_params=params, header_params=headers,
                                               body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(*request, _request_timeout=timeout or self.timeout)
            data = response.read()
        except Exception as exc:  # urllib3 errors: refused, TLS, timeout
            raise K8sError(f"cannot reach the Kubernetes API at {self.target}: {first_line(exc)}; "
                           "is the apiserver running and the kubeconfig/host right?") from exc
        if not 200 <= response.status <= 299:
            detail = ""
            try:
                status = json.loads(data)
                detail = status.get("message") or ""
                reason = status.get("reason") or ""
            except (ValueError, AttributeError):
                detail, reason = data.decode(errors="replace").strip()[:300], ""
            raise K8sError(f"{method} {path} failed with HTTP {response.status}: {detail}",
                           status=response.status, reason=reason)
        if raw:
            return data.decode(errors="replace")
        return json.loads(data) if data else {}

    def get(self, path: str, **query: t.Any) -> dict[str, t.Any]:
        return self.request("GET", path, query)

    def get_or_none(self, path: str) -> dict[str, t.Any] | None:
        try:
            return self.get(path)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, path: str, **query: t.Any) -> list[dict[str, t.Any]]:
        """Every item of a list call (follows ``continue`` when the server pages)."""
        found: list[dict[str, t.Any]] = []
        while True:
            page = self.get(path, **query)
            found.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found
            query["continue"] = token

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; one that is already gone is no error."""
        try:
            self.request("DELETE", f"/api/v1/namespaces/{q(namespace)}/pods/{q(name)}")
        except K8sError as exc:
            if exc.status != 404:
                raise

    def patch(self, path: str, body: t.Any, patch_type: str = "merge") -> dict[str, t.Any]:
        content_type = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                        "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return self.request("PATCH", path, body=body, content_type=content_type)


def mask_log(text: t.Any) -> t.Any:
    """Secrets in a log line or a message masked (`_secrets.mask_text`)."""
    return mask_text(text)


def mask_strings(data: t.Any) -> t.Any:
    """mask_log on every string of a JSON-like structure (annotations can hold whole log lines)."""
    if isinstance(data, dict):
        return {key: mask_strings(value) for key, value in data.items()}
    if isinstance(data, list):
        return [mask_strings(item) for item in data]
    return mask_log(data) if isinstance(data, str) else data


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(module: t.Any) -> K8s:
    """One apiserver connection from the module's auth options, or fail_json naming the target."""
    if k8s_client is None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    params = module.params
    configuration = k8s_client.Configuration()
    try:
        if params.get("host"):
            configuration.host = params["host"]
            if params.get("api_key"):
                configuration.api_key = {"authorization": params["api_key"]}
                configuration.api_key_prefix = {"authorization": "Bearer"}
            if params.get("kubeconfig") or params.get("context"):
                module.warn("host is set, so kubeconfig and context are ignored")
        else:
            try:
                k8s_config.load_kube_config(config_file=params.get("kubeconfig"), context=params.get("context"),
                                            client_configuration=configuration)
            except (ConfigException, OSError) as exc:
                if params.get("kubeconfig") or params.get("context"):
                    raise
                try:
                    k8s_config.load_incluster_config(client_configuration=configuration)
                except ConfigException:
                    raise exc from None
            if params.get("api_key"):
                configuration.api_key = {"authorization": params["api_key"]}
                configuration.api_key_prefix = {"authorization": "Bearer"}
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = params.get("kubeconfig") or "the default kubeconfig (KUBECONFIG or ~/.kube/config)"
        module.fail_json(msg=f"cannot load Kubernetes credentials from {where}"
                             f"{' context ' + params['context'] if params.get('context') else ''}: "
                             f"{first_line(exc)}; set kubeconfig/context, or host and api_key")
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    configuration.connection_pool_maxsize = 8
    return K8s(k8s_client.ApiClient(configuration), configuration.host, params.get("request_timeout") or 20)


# --------------------------------------------------------------------------- paths and times

def workload_path(kind: str, namespace: str, name: str | None = None) -> str:
    path = f"/apis/apps/v1/namespaces/{q(namespace)}/{WORKLOAD_KINDS[kind]}"
    return f"{path}/{q(name)}" if name else path


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_seconds(value: str | None, now: datetime.datetime) -> float | None:
    moment = parse_time(value)
    return None if moment is None else round((now - moment).total_seconds(), 1)


def selector_string(selector: dict[str, t.Any] | None) -> str:
    """A LabelSelector object as the label_selector query string the API takes."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# --------------------------------------------------------------------------- pods

def container_problem(status: dict[str, t.Any]) -> dict[str, t.Any]:
    """One container status condensed to what triage needs."""
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    current_state, reason, message = "unknown", None, None
    for key in ("waiting", "running", "terminated"):
        if key in state and state[key] is not None:
            current_state = key
            reason = state[key].get("reason")
            message = state[key].get("message")
            break
    result = {
        "name": status.get("name"),
        "ready": bool(status.get("ready")),
        "state": current_state,
        "reason": reason,
        # A termination message can be the log tail (FallbackToLogsOnError): mask it like a log.
        "message": mask_log(message[:300]) if message else message,
        "restart_count": status.get("restartCount", 0),
        "image": status.get("image"),
        "last_termination": None,
    }
    if last:
        result["last_termination"] = {
            "reason": last.get("reason"),
            "exit_code": last.get("exitCode"),
            "signal": last.get("signal"),
            "started_at": last.get("startedAt"),
            "finished_at": last.get("finishedAt"),
        }
    return result


POD_REASON_WEIGHT = {
    "CrashLoopBackOff": 100, "OOMKilled": 95, "CreateContainerConfigError": 90, "ImagePullBackOff": 85,
    "ErrImagePull": 85, "InvalidImageName": 85, "CreateContainerError": 80, "Error": 75,
    "RunContainerError": 75, "ContainerCannotRun": 75, "Unschedulable": 60, "NodeNotReady": 55,
    "NotReady": 40, "Pending": 30, "ContainerCreating": 10, "Terminating": 5,
}


def pod_owner(pod: dict[str, t.Any]) -> dict[str, str] | None:
    """The workload that owns a pod; a ReplicaSet is named after its Deployment plus the template hash."""
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        kind, name = ref["kind"], ref["name"]
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
            return {"kind": "Deployment", "name": name[: -len(template_hash) - 1], "replicaset": name}
        return {"kind": kind, "name": name}
    return None


def memory_resources(pod: dict[str, t.Any]) -> dict[str, dict[str, str | None]]:
    found = {}
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        found[container["name"]] = {"limit": (resources.get("limits") or {}).get("memory"),
                                    "request": (resources.get("requests") or {}).get("memory")}
    return found


def pod_problem(pod: dict[str, t.Any], now: datetime.datetime, nodes_not_ready: set[str]) -> dict[str, t.Any] | None:
    """A pod's problem summary, or None when the pod is healthy (Running and Ready, or Succeeded)."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    containers = [container_problem(c) for c in status.get("containerStatuses") or []]
    init = [container_problem(c) for c in status.get("initContainerStatuses") or []]
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    restarts = sum(c["restart_count"] for c in containers)
    terminations = [c["last_termination"]["reason"] for c in containers if c["last_termination"]]
    if phase == "Succeeded" or (phase == "Running" and ready and not meta.get("deletionTimestamp")):
        if not restarts:
            return None
    reasons = []
    if meta.get("deletionTimestamp"):
        reasons.append("Terminating")
    for c in init + containers:
        if c["state"] == "waiting" and c["reason"]:
            reasons.append(c["reason"])
        elif c["state"] == "terminated" and c["reason"] and c["reason"] != "Completed":
            reasons.append(c["reason"])
    scheduled = conditions.get("PodScheduled") or {}
    scheduler_message = None
    if scheduled.get("status") == "False":
        reasons.append(scheduled.get("reason") or "Pending")
        scheduler_message = scheduled.get("message")
    if spec.get("nodeName") in nodes_not_ready:
        reasons.append("NodeNotReady")
    if phase == "Pending" and not reasons:
        reasons.append("ContainerCreating" if spec.get("nodeName") else "Pending")
    if phase == "Failed":
        reasons.append(status.get("reason") or "Error")
    if phase == "Running" and not ready and not reasons:
        reasons.append("NotReady")
    if not reasons and restarts:
        reasons.append("Restarted")
    primary = max(reasons, key=lambda r: POD_REASON_WEIGHT.get(r, 20))
    score = POD_REASON_WEIGHT.get(primary, 20) * 1000 + min(restarts, 999)
    if "OOMKilled" in terminations:
        score += 500
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "phase": phase,
        "reason": primary,
        "reasons": sorted(set(reasons)),
        "ready": ready,
        "node": spec.get("nodeName"),
        "owner": pod_owner(pod),
        "restart_count": restarts,
        "last_termination_reasons": sorted(set(t_ for t_ in terminations if t_)),
        "oom_killed": "OOMKilled" in terminations,
        "containers": containers,
        "init_containers": init,
        "memory": memory_resources(pod),
        "scheduler_message": scheduler_message,
        "age_seconds": age_seconds(meta.get("creationTimestamp"), now),
        "started_at": status.get("startTime"),
        "score": score,
    }


# --------------------------------------------------------------------------- workloads

def workload_health(kind: str, obj: dict[str, t.Any]) -> dict[str, t.Any]:
    """Rollout progress of a Deployment, StatefulSet or DaemonSet, as kubectl rollout status judges it."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    generation, observed = meta.get("generation", 0), status.get("observedGeneration", 0)
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    stuck_reason = None
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        updated = status.get("updatedNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        available = status.get("numberAvailable", 0)
        current = status.get("currentNumberScheduled", 0)
        complete = observed >= generation and updated >= desired and available >= desired
    else:
        desired = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        ready = status.get("readyReplicas", 0)
        available = status.get("availableReplicas", ready)
        current = status.get("replicas", 0)
        if kind == "Deployment":
            complete = (observed >= generation and updated >= desired and current <= updated
                        and available >= desired)
            progressing = conditions.get("Progressing") or {}
            if progressing.get("reason") == "ProgressDeadlineExceeded":
                stuck_reason = f"ProgressDeadlineExceeded: {progressing.get('message')}"
        else:  # StatefulSet
            strategy = spec.get("updateStrategy") or {}
            partition = ((strategy.get("rollingUpdate") or {}).get("partition")) or 0
            revision_done = (strategy.get("type") == "OnDelete"
                             or status.get("updateRevision") == status.get("currentRevision")
                             or updated >= desired - partition)
            complete = observed >= generation and ready >= desired and revision_done
    return {
        "kind": kind,
        "namespace": meta["namespace"],
        "name": meta["name"],
        "desired": desired,
        "current": current,
        "updated": updated,
        "ready": ready,
        "available": available,
        "generation": generation,
        "observed_generation": observed,
        "paused": bool(spec.get("paused")),
        "complete": bool(complete),
        "stuck_reason": stuck_reason,
    }


def template_of(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return copy.deepcopy((obj.get("spec") or {}).get("template") or {})


def normalized_template(template: dict[str, t.Any]) -> dict[str, t.Any]:
    """A pod template without the labels and fields controllers add, for equality checks."""
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    labels.pop("controller-revision-hash", None)
    template.pop("$patch", None)
    meta = template.get("metadata") or {}
    meta.pop("creationTimestamp", None)
    if not meta.get("labels"):
        meta.pop("labels", None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return template


def masked_template_pair(before: dict[str, t.Any], after: dict[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """Two pod templates as a diff may show them: no env ``value`` at all (a changed one says
    so), args and commands masked like a command line, everything else through mask_mapping."""

    def env_values(template: dict[str, t.Any]) -> dict[tuple[str, str], t.Any]:
        found = {}
        for group in ("initContainers", "containers"):
            for container in (template.get("spec") or {}).get(group) or []:
                for env in container.get("env") or []:
                    if "value" in env:
                        found[(container.get("name"), env.get("name"))] = env.get("value")
        return found

    def masked(template: dict[str, t.Any], other: dict[tuple[str, str], t.Any]) -> dict[str, t.Any]:
        template = copy.deepcopy(template)
        for group in ("initContainers", "containers"):
            for container in (template.get("spec") or {}).get(group) or []:
                for env in container.get("env") or []:
                    if "value" in env:
                        key = (container.get("name"), env.get("name"))
                        env["value"] = MASK if key in other and other[key] == env["value"] else f"{MASK} (differs)"
                for field in ("command", "args"):
                    if isinstance(container.get(field), list):
                        container[field] = mask_argv([str(a) for a in container[field]])
        return mask_strings(mask_mapping(template))

    before_env, after_env = env_values(before), env_values(after)
    return masked(before, after_env), masked(after, before_env)


def template_hash(template: dict[str, t.Any]) -> str:
    encoded = json.dumps(normalized_template(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


# Pod template annotations that mark a restart or a runbook's own bookkeeping, not a different
# release: a `rollout restart` of a broken release is still the broken release.
RESTART_ANNOTATIONS = (RESTARTED_AT,)
OWN_ANNOTATION_PREFIX = "sre.runbooks/"


def release_template(template: dict[str, t.Any]) -> dict[str, t.Any]:
    """A pod template as a release: normalized, without restart stamps and sre.runbooks markers."""
    template = normalized_template(template)
    meta = template.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    for key in list(annotations):
        if key in RESTART_ANNOTATIONS or key.startswith(OWN_ANNOTATION_PREFIX):
            del annotations[key]
    if not annotations:
        meta.pop("annotations", None)
    if not meta:
        template.pop("metadata", None)
    return template


def release_hash(template: dict[str, t.Any]) -> str:
    """Equal for two templates that differ only by a restart (or by this collection's markers)."""
    encoded = json.dumps(release_template(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def owned_by(obj: dict[str, t.Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def revisions(api: K8s, kind: str, workload: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The workload's revision history, oldest first: [{revision, name, template}]."""
    meta = workload["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    selector = selector_string((workload.get("spec") or {}).get("selector"))
    history = []
    if kind == "Deployment":
        for rs in api.items(f"/apis/apps/v1/namespaces/{q(namespace)}/replicasets", labelSelector=selector):
            if not owned_by(rs, uid):
                continue
            number = (rs["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION)
            if number is None or not number.isdigit():
                continue
            history.append({"revision": int(number), "name": rs["metadata"]["name"],
                            "template": template_of(rs), "replicas": (rs.get("status") or {}).get("replicas", 0)})
    else:
        for cr in api.items(f"/apis/apps/v1/namespaces/{q(namespace)}/controllerrevisions", labelSelector=selector):
            if not owned_by(cr, uid):
                continue
            data = cr.get("data") or {}
            template = ((data.get("spec") or {}).get("template")) or {}
            history.append({"revision": int(cr.get("revision", 0)), "name": cr["metadata"]["name"],
                            "template": template})
    history.sort(key=lambda r: r["revision"])
    return history


def current_revision(kind: str, workload: dict[str, t.Any], history: list[dict[str, t.Any]]) -> int | None:
    """The revision whose template is live (the Deployment's annotation or the template match)."""
    live = template_hash(template_of(workload))
    matching = [r["revision"] for r in history if template_hash(r["template"]) == live]
    if kind == "Deployment":
        annotated = (workload["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION)
        if annotated and annotated.isdigit() and int(annotated) in matching:
            return int(annotated)
    if matching:
        return max(matching)
    if kind != "Deployment" and (workload.get("status") or {}).get("updateRevision"):
        name = workload["status"]["updateRevision"]
        for r in history:
            if r["name"] == name:
                return r["revision"]
    return None


CRASH_REASONS = ("CrashLoopBackOff", "Error", "OOMKilled", "CreateContainerConfigError", "RunContainerError",
                 "CreateContainerError", "ContainerCannotRun")


def pod_revision_name(kind: str, workload_name: str, pod: dict[str, t.Any]) -> str | None:
    """The ReplicaSet or ControllerRevision a pod was made from (its name), from the pod's labels."""
    labels = pod["metadata"].get("labels") or {}
    if kind == "Deployment":
        value = labels.get("pod-template-hash")
        return f"{workload_name}-{value}" if value else None
    value = labels.get("controller-revision-hash")
    if not value:
        return None
    # A StatefulSet's pods carry the ControllerRevision's name, a DaemonSet's only its hash.
    return value if value.startswith(workload_name + "-") else f"{workload_name}-{value}"


def release_pods(kind: str, workload: dict[str, t.Any], history: list[dict[str, t.Any]],
                 pods: list[dict[str, t.Any]], now: datetime.datetime) -> dict[str, t.Any]:
    """The live release and the one before it (the undo target), with the health of their pods.

    A release is every revision with the same template up to restart stamps, so the pods of a
    `rollout restart` of a bad release count as that release's pods."""
    name = workload["metadata"]["name"]
    live_revision = current_revision(kind, workload, history)
    live_release = release_hash(template_of(workload))
    previous = [r for r in history if (live_revision is None or r["revision"] < live_revision)
                and release_hash(r["template"]) != live_release]
    previous_release = release_hash(previous[-1]["template"]) if previous else None

    def summary(release: str, revision: int | None) -> dict[str, t.Any]:
        names = {r["name"] for r in history if release_hash(r["template"]) == release}
        mine = [pod for pod in pods if pod_revision_name(kind, name, pod) in names
                and not pod["metadata"].get("deletionTimestamp")]
        problems = [pod_problem(pod, now, set()) for pod in mine]
        unhealthy = [p for p in problems if p and not p["ready"]]
        return {"revision": revision, "revisions": sorted(names), "pods": len(mine),
                "ready": len(mine) - len(unhealthy),
                "crashing": sorted(p["name"] for p in unhealthy if p["reason"] in CRASH_REASONS),
                "oom_killed": sorted(p["name"] for p in unhealthy if p["oom_killed"]),
                "unhealthy": sorted(p["name"] for p in unhealthy)}

    return {"live": summary(live_release, live_revision),
            "previous": summary(previous_release, previous[-1]["revision"]) if previous else None}


# --------------------------------------------------------------------------- config references

def config_references(template: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every Secret and ConfigMap (and key) a pod template needs: env, envFrom, volumes, projected."""
    spec = template.get("spec") or {}
    refs: list[dict[str, t.Any]] = []

    def add(kind: str, name: str | None, key: str | None, via: str, container: str | None,
            optional: bool | None) -> None:
        if name:
            refs.append({"kind": kind, "name": name, "key": key, "via": via, "container": container,
                         "optional": bool(optional)})

    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            cname = container.get("name")
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                if source.get("secretKeyRef"):
                    ref = source["secretKeyRef"]
                    add("Secret", ref.get("name"), ref.get("key"), f"env {env.get('name')}", cname, ref.get("optional"))
                if source.get("configMapKeyRef"):
                    ref = source["configMapKeyRef"]
                    add("ConfigMap", ref.get("name"), ref.get("key"), f"env {env.get('name')}", cname,
                        ref.get("optional"))
            for env_from in container.get("envFrom") or []:
                if env_from.get("secretRef"):
                    ref = env_from["secretRef"]
                    add("Secret", ref.get("name"), None, "envFrom", cname, ref.get("optional"))
                if env_from.get("configMapRef"):
                    ref = env_from["configMapRef"]
                    add("ConfigMap", ref.get("name"), None, "envFrom", cname, ref.get("optional"))
    for volume in spec.get("volumes") or []:
        vname = f"volume {volume.get('name')}"
        sources = []
        if volume.get("secret"):
            sources.append(("Secret", volume["secret"].get("secretName"), volume["secret"]))
        if volume.get("configMap"):
            sources.append(("ConfigMap", volume["configMap"].get("name"), volume["configMap"]))
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if projected.get("secret"):
                sources.append(("Secret", projected["secret"].get("name"), projected["secret"]))
            if projected.get("configMap"):
                sources.append(("ConfigMap", projected["configMap"].get("name"), projected["configMap"]))
        for kind, name, source in sources:
            items = source.get("items") or []
            if items:
                for item in items:
                    add(kind, name, item.get("key"), vname, None, source.get("optional"))
            else:
                add(kind, name, None, vname, None, source.get("optional"))
    return refs


def secret_fingerprint(encoded: str | None, hmac_key: bytes | None = None) -> dict[str, t.Any]:
    """Proof that a secret value is set, without the value: its length, and with ``hmac_key`` an
    HMAC-SHA256 of it. Never an unkeyed hash: a plain SHA-256 (even a prefix) lets anyone who reads
    the result confirm a guessed password offline."""
    try:
        value = base64.b64decode(encoded or "", validate=False)
    except (ValueError, TypeError):
        value = b""
    result: dict[str, t.Any] = {"length": len(value), "empty": len(value) == 0}
    if hmac_key and value:
        result["hmac_sha256"] = hmac.new(hmac_key, value, hashlib.sha256).hexdigest()
    return result


def event_summary(event: dict[str, t.Any], now: datetime.datetime) -> dict[str, t.Any]:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get(
        "creationTimestamp")
    return {
        "namespace": (event.get("metadata") or {}).get("namespace"),
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": mask_log((event.get("message") or "")[:300]),
        "object": f"{involved.get('kind')}/{involved.get('name')}",
        "count": event.get("count") or 1,
        "last_seen": last,
        "age_seconds": age_seconds(last, now),
        "source": (event.get("source") or {}).get("component") or event.get("reportingComponent"),
    }


# --------------------------------------------------------------------------- quantities

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value: t.Any) -> float:
    """A Kubernetes resource quantity ("512Mi", "1G", "1.5Gi", "1e9", 268435456) as a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    if text and text[-1] in _DECIMAL and not text[-1].isdigit():
        return float(text[:-1]) * _DECIMAL[text[-1]]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from None


def memory_quantity(size: float) -> str:
    """Bytes as a memory quantity, rounded up to whole MiB (what people write in manifests)."""
    mib = -(-int(size) // 2**20)
    if mib % 1024 == 0:
        return f"{mib // 1024}Gi"
    return f"{mib}Mi"


# --------------------------------------------------------------------------- node drain

MIRROR_POD = "kubernetes.io/config.mirror"


def drain_plan(pods: list[dict[str, t.Any]], ignore_daemonsets: bool = True, delete_emptydir_data: bool = False,
               force: bool = False) -> dict[str, list[str]]:
    """How a drain treats each pod on a node, as ``kubectl drain`` does.

    ``evict``: pods to evict (PodDisruptionBudgets apply); ``delete``: finished pods (nothing to
    disrupt); ``terminating``: pods already marked for deletion - evicting them again achieves
    nothing, and in a namespace being deleted the eviction is refused (403) forever;
    ``daemonset`` / ``mirror``: pods a drain leaves (a DaemonSet ignores ``unschedulable``; a
    mirror pod belongs to the kubelet); ``blocked``: why a pod cannot be moved (the caller
    refuses before changing anything).
    """
    plan: dict[str, list[str]] = {"evict": [], "delete": [], "terminating": [], "daemonset": [], "mirror": [],
                                  "blocked": []}
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        where = f"{meta['namespace']}/{meta['name']}"
        owner = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
        if MIRROR_POD in (meta.get("annotations") or {}):
            plan["mirror"].append(where)
        elif meta.get("deletionTimestamp"):
            plan["terminating"].append(where)
        elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            plan["delete"].append(where)
        elif owner and owner.get("kind") == "DaemonSet":
            if ignore_daemonsets:
                plan["daemonset"].append(where)
            else:
                plan["blocked"].append(f"{where} is managed by the DaemonSet {owner.get('name')} "
                                       "(set ignore_daemonsets to leave it)")
        elif any("emptyDir" in volume for volume in spec.get("volumes") or []) and not delete_emptydir_data:
            plan["blocked"].append(f"{where} has emptyDir data that the drain would delete "
                                   "(set delete_emptydir_data to allow it)")
        elif not owner and not force:
            plan["blocked"].append(f"{where} is not managed by a controller, so nothing would recreate it "
                                   "(set force to delete it anyway)")
        else:
            plan["evict"].append(where)
    return plan


def node_ready(node: dict[str, t.Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])
