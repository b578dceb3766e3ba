# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recreate a corrupt Kafka topic (runbook 004 Scenario 5: `kafka-topics --delete` then
`--create` with the same partitions and replication factor), behind guardrails.

Recreating a topic DELETES EVERY MESSAGE in it and every consumer group's committed offsets on
it. So a topic is recreated only when all of these hold (`decide`, unit-tested branch by branch):

1. the operator listed it (the role's `kafka_lag_recreate_topics`; the module's `topics`);
2. the operator typed the exact phrase `RECREATE <topic>` (`confirmation_phrase`);
3. the incident's memory is readable and says it was not recreated in this incident yet
   (once per incident: a second run must not throw away what producers wrote since);
4. it exists and its layout is unambiguous (one replication factor for every partition);
5. it looks broken (a partition without a leader, or offsets that cannot be read), or `force`.

The pure pieces (phrases, decide, layout, health, the plan) need no broker. Everything that talks
to Kafka is batched: one metadata call, one list_offsets call per offset kind for every partition
of every topic, one describe_configs call, one list_consumer_group_offsets call per group, one
delete_topics and one create_topics call for every approved topic.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.sre.runbooks.plugins.module_utils._common import action_record

try:
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType
except ImportError:  # pragma: no cover - _kafka.check_library reports it
    pass

ACTION = "recreate topic"
# The only describe_configs source real Kafka gives a config set on the topic itself
# (ConfigSource.DYNAMIC_TOPIC_CONFIG); broker-inherited values must not be pinned on the topic.
TOPIC_OVERRIDE_SOURCE = 1


def confirmation_phrase(topic: str) -> str:
    """What the operator types to allow recreating `topic`."""
    return f"RECREATE {topic}"


def decide(topic: str, *, flagged: bool, confirmations: t.Sequence[str], memory_readable: bool,
           recreated_at: str | None, layout: dict[str, t.Any] | None, health: dict[str, t.Any] | None,
           force: bool = False) -> dict[str, t.Any]:
    """Whether to recreate one topic: {topic, recreate, status, reason}.

    status: recreate | already | refused. `refused` is a guardrail that tripped (the module fails,
    names the override and recreates nothing, not even the other topics of the run); `already` is
    the once-per-incident skip (not an error)."""
    phrase = confirmation_phrase(topic)

    def verdict(status: str, reason: str) -> dict[str, t.Any]:
        return {"topic": topic, "recreate": status == "recreate", "status": status, "reason": reason}

    if not flagged:
        return verdict("refused", f"topic {topic} is not listed in topics (kafka_lag_recreate_topics); "
                                  f"a confirmation alone never recreates: list it there too")
    typed = [c for c in confirmations if isinstance(c, str) and c.strip()]
    if phrase not in [c.strip() for c in typed]:
        hint = f" (got {len(typed)} other phrase(s); the phrase is case-sensitive)" if typed else ""
        return verdict("refused", f"recreating topic {topic} deletes every message in it and the consumer "
                                  f"groups' offsets; to confirm, set kafka_lag_recreate_confirm to exactly "
                                  f"'{phrase}'{hint}")
    if recreated_at:
        return verdict("already", f"topic {topic} was recreated in this incident already (at {recreated_at}); "
                                  "not again: producers wrote to the new topic since")
    if not memory_readable:
        return verdict("refused", f"cannot tell whether topic {topic} was recreated in this incident already: "
                                  "the incident timeline is not readable (enable the callback "
                                  "sre.runbooks.incident_timeline, as ansible.cfg does); not recreated, to keep "
                                  "it to once per incident")
    if layout is None:
        return verdict("refused", f"topic {topic} does not exist: nothing to capture and recreate; "
                                  "create it with kafka-topics --create")
    if layout.get("problem"):
        return verdict("refused", f"topic {topic}: {layout['problem']}; recreate it by hand")
    if health and health.get("healthy") and not force:
        return verdict("refused", f"topic {topic} looks healthy (every partition has a leader and readable "
                                  "offsets); recreating it would only lose its messages. To recreate it "
                                  "anyway set force (kafka_lag_recreate_force=true)")
    why = "forced" if health and health.get("healthy") else "; ".join((health or {}).get("problems") or []) \
        or "no health data"
    return verdict("recreate", f"topic {topic}: {why}")


def layout_of(partitions: list[dict[str, t.Any]] | None) -> dict[str, t.Any] | None:
    """Partitions and replication factor from metadata partitions ({partition, leader, replicas});
    None when the topic does not exist. Differing replica counts are ambiguous: `problem`."""
    if partitions is None:
        return None
    counts = sorted({len(p.get("replicas") or []) for p in partitions})
    out: dict[str, t.Any] = {"partitions": len(partitions), "replication_factor": counts[-1] if counts else 0}
    if not partitions:
        out["problem"] = "the broker lists it with no partitions"
    elif len(counts) > 1:
        out["problem"] = f"its partitions have different replica counts {counts}: the replication factor is ambiguous"
    elif counts[0] < 1:
        out["problem"] = "the broker reports no replicas for its partitions: the replication factor is unknown"
    return out


def health_of(partitions: list[dict[str, t.Any]] | None, offsets: dict[int, dict[str, t.Any]]) -> dict[str, t.Any]:
    """Healthy: every partition has a leader and its earliest and latest offsets could be read.
    offsets: partition -> {earliest, latest, error}."""
    problems: list[str] = []
    for p in partitions or []:
        pid = p["partition"]
        if p.get("leader") is None or p["leader"] < 0:
            problems.append(f"partition {pid} has no leader")
        got = offsets.get(pid) or {}
        if got.get("error"):
            problems.append(f"partition {pid} offsets unreadable: {got['error']}")
        elif got.get("earliest") is None or got.get("latest") is None:
            problems.append(f"partition {pid} offsets unreadable")
    return {"healthy": partitions is not None and not problems, "problems": problems}


def configs_to_copy(reported: dict[str, dict[str, t.Any]], copy_configs: str) -> dict[str, str]:
    """Which of the reported topic configs the new topic gets.

    overrides: only what real Kafka reports as set on the topic (source DYNAMIC_TOPIC_CONFIG);
    all: every config the broker reports (for brokers such as Tansu, that report only the configs
    set on the topic, labelled as defaults). Sensitive or valueless entries are never copied."""
    out = {}
    for name, entry in sorted(reported.items()):
        if entry.get("sensitive") or entry.get("value") is None:
            continue
        if copy_configs == "all" or entry.get("source") == TOPIC_OVERRIDE_SOURCE:
            out[name] = str(entry["value"])
    return out


def hold_if_refused(plan: list[dict[str, t.Any]]) -> bool:
    """All or nothing: when one topic of the run is refused the operator's intent is not fully
    clear, so no topic is recreated (status `held`). True when something was refused."""
    refused = [item["topic"] for item in plan if item["status"] == "refused"]
    if not refused:
        return False
    for item in plan:
        if item["recreate"]:
            item.update(recreate=False, status="held",
                        reason=f"topic {item['topic']} not recreated: {', '.join(refused)} refused in the same run")
    return True


def summary(plan: list[dict[str, t.Any]], check_mode: bool) -> str:
    parts = []
    for item in plan:
        if item["status"] == "recreate":
            verb = "would delete and recreate" if check_mode else "recreated"
            lost = sum(item["messages"].values()) if isinstance(item.get("messages"), dict) else None
            parts.append(f"{verb} topic {item['topic']} ({item['layout']['partitions']} partitions, replication "
                         f"factor {item['layout']['replication_factor']}, configs {item['configs'] or 'none'})"
                         f"{'' if lost is None else f', losing about {lost} message(s)'}"
                         f"{', and the committed offsets of ' + ', '.join(sorted(item['committed_offsets'])) if item.get('committed_offsets') else ''}")
        else:
            parts.append(item["reason"])
    return "; ".join(parts) or "no topic to recreate"


# ------------------------------------------------------------------ broker side
def _wait(condition: t.Callable[[], bool], timeout: float, step: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def _metadata(admin: t.Any, timeout: float) -> dict[str, list[dict[str, t.Any]]]:
    md = admin.list_topics(timeout=timeout)
    out = {}
    for name, tm in md.topics.items():
        if tm.error is not None and not tm.partitions:
            continue  # UNKNOWN_TOPIC_OR_PART and friends: not there
        out[name] = [{"partition": p.id, "leader": p.leader, "replicas": list(p.replicas), "isrs": list(p.isrs)}
                     for p in sorted(tm.partitions.values(), key=lambda x: x.id)]
    return out


def _offsets(admin: t.Any, topics: dict[str, list[dict[str, t.Any]]], timeout: float
             ) -> dict[str, dict[int, dict[str, t.Any]]]:
    """Earliest and latest offset of every partition: one list_offsets call per kind."""
    out: dict[str, dict[int, dict[str, t.Any]]] = {name: {p["partition"]: {} for p in parts}
                                                   for name, parts in topics.items()}
    wanted = [TopicPartition(name, p["partition"]) for name, parts in topics.items() for p in parts]
    if not wanted:
        return out
    for kind, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest())):
        try:
            futures = admin.list_offsets({tp: spec for tp in wanted}, request_timeout=timeout)
        except KafkaException as exc:
            for name in out:
                for entry in out[name].values():
                    entry["error"] = f"{kind}: {exc}"
            continue
        for tp, fut in futures.items():
            entry = out[tp.topic][tp.partition]
            try:
                entry[kind] = fut.result(timeout=timeout).offset
            except KafkaException as exc:
                entry["error"] = f"{kind}: {exc}"
    return out


def _configs(admin: t.Any, names: list[str], timeout: float) -> tuple[dict[str, dict[str, dict[str, t.Any]]], dict[str, str]]:
    """Reported configs per topic (name -> {value, source, default, sensitive}) and read errors."""
    out: dict[str, dict[str, dict[str, t.Any]]] = {}
    errors: dict[str, str] = {}
    if not names:
        return out, errors
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=timeout)
    for res, fut in futures.items():
        try:
            entries = fut.result(timeout=timeout)
        except KafkaException as exc:
            errors[res.name] = str(exc)
            continue
        out[res.name] = {k: {"value": None if v.is_sensitive else v.value, "source": int(getattr(v.source, "value", v.source)),
                             "default": bool(v.is_default), "sensitive": bool(v.is_sensitive)}
                         for k, v in entries.items()}
    return out, errors


def _committed(admin: t.Any, names: set[str], timeout: float) -> tuple[dict[str, dict[str, dict[int, int]]], list[str]]:
    """topic -> group -> partition -> committed offset, for the given topics; read errors."""
    out: dict[str, dict[str, dict[int, int]]] = {n: {} for n in names}
    errors: list[str] = []
    listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    for group in sorted(g.group_id for g in listed.valid):
        try:
            fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                    request_timeout=timeout)[group]
            res = fut.result(timeout=timeout)
        except KafkaException as exc:
            errors.append(f"committed offsets of group {group}: {exc}")
            continue
        for tp in res.topic_partitions:
            if tp.topic in names and tp.offset >= 0:
                out[tp.topic].setdefault(group, {})[tp.partition] = tp.offset
    return out, errors


def assess(admin: t.Any, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Everything the decision and the plan need, for every topic named (flagged or confirmed)."""
    timeout = float(params.get("timeout") or 10)
    flagged = list(dict.fromkeys(params["topics"]))
    confirmed = [c.strip()[len("RECREATE "):].strip() for c in params.get("confirm") or []
                 if isinstance(c, str) and c.strip().startswith("RECREATE ")]
    names = list(dict.fromkeys(flagged + [c for c in confirmed if c]))
    metadata = _metadata(admin, timeout)
    present = {n: metadata[n] for n in names if n in metadata}
    offsets = _offsets(admin, present, timeout)
    configs, config_errors = _configs(admin, list(present), timeout)
    committed, errors = _committed(admin, set(present), timeout)
    already = params.get("already_recreated") or {}
    plan = []
    for name in names:
        parts = metadata.get(name)
        layout = layout_of(parts)
        if name in config_errors and layout is not None and not layout.get("problem"):
            layout["problem"] = f"its configs cannot be read ({config_errors[name]}), so they cannot be copied"
        health = health_of(parts, offsets.get(name, {})) if parts is not None else None
        verdict = decide(name, flagged=name in flagged, confirmations=params.get("confirm") or [],
                         memory_readable=params.get("incident_memory", True), recreated_at=already.get(name),
                         layout=layout, health=health, force=params.get("force", False))
        entry = dict(verdict, layout=layout, health=health,
                     configs=configs_to_copy(configs.get(name, {}), params.get("copy_configs") or "overrides"),
                     reported_configs=configs.get(name, {}),
                     committed_offsets=committed.get(name, {}),
                     messages={str(p): max((o.get("latest") or 0) - (o.get("earliest") or 0), 0)
                               for p, o in (offsets.get(name) or {}).items()} if parts is not None else {})
        plan.append(entry)
    return {"plan": plan, "errors": errors}


def recreate(admin: t.Any, plan: list[dict[str, t.Any]], timeout: float, settle: float
             ) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]], str | None]:
    """Delete, wait until gone, create identically, wait for leaders; verify. Returns (actions,
    verification per topic, error). On an error, the actions say exactly what was done so far."""
    todo = [item for item in plan if item["recreate"]]
    actions: list[dict[str, t.Any]] = []
    if not todo:
        return actions, [], None
    names = [item["topic"] for item in todo]
    deleted: list[str] = []
    for name, fut in admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            fut.result(timeout=timeout + 5)
            deleted.append(name)
            actions.append(action_record("delete topic", name, "deleted"))
        except KafkaException as exc:
            actions.append(action_record("delete topic", name, f"failed: {exc}"))
    if len(deleted) < len(names):
        return actions, [], (f"could not delete {sorted(set(names) - set(deleted))}; deleted {deleted or 'none'}"
                             + (f": {deleted} must now be created again by hand (see plan)" if deleted else ""))
    if not _wait(lambda: not set(deleted) & set(_metadata(admin, timeout)), settle):
        return actions, [], f"deleted {deleted} but the broker still lists some after {settle}s; not created"
    created: list[str] = []
    pending = {item["topic"]: item for item in todo}
    deadline = time.monotonic() + settle
    last_error: dict[str, str] = {}
    while pending:
        new = [NewTopic(n, i["layout"]["partitions"], i["layout"]["replication_factor"], config=dict(i["configs"]))
               for n, i in pending.items()]
        for name, fut in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
            try:
                fut.result(timeout=timeout + 5)
                created.append(name)
                pending.pop(name)
                item = plan[[p["topic"] for p in plan].index(name)]
                actions.append(action_record(ACTION, name, "recreated", partitions=item["layout"]["partitions"],
                                             replication_factor=item["layout"]["replication_factor"],
                                             configs=item["configs"]))
            except KafkaException as exc:
                last_error[name] = str(exc)
        # A broker still finishing the delete answers TOPIC_ALREADY_EXISTS for a moment: retry.
        if pending and time.monotonic() >= deadline:
            for name in pending:
                actions.append(action_record(ACTION, name, f"failed: deleted but not created: {last_error.get(name)}"))
            return actions, [], (f"DELETED and NOT recreated: {sorted(pending)} ({last_error}); create by hand with "
                                 "the layout and configs in plan")
        if pending:
            time.sleep(0.5)
    verification = verify(admin, todo, timeout, settle)
    bad = [v["topic"] for v in verification if not v["ok"]]
    return actions, verification, (f"recreated {bad} but verification failed: see verification" if bad else None)


def verify(admin: t.Any, todo: list[dict[str, t.Any]], timeout: float, settle: float) -> list[dict[str, t.Any]]:
    """Each recreated topic: same partition count and replication factor, a leader everywhere,
    the copied configs in place."""
    names = [item["topic"] for item in todo]
    state: dict[str, t.Any] = {}

    def leaders_present() -> bool:
        md = _metadata(admin, timeout)
        state["md"] = md
        return all(n in md and md[n] and all(p["leader"] is not None and p["leader"] >= 0 for p in md[n])
                   for n in names)

    _wait(leaders_present, settle)
    configs, _errors = _configs(admin, [n for n in names if n in state["md"]], timeout)
    out = []
    for item in todo:
        name = item["topic"]
        parts = state["md"].get(name)
        layout = layout_of(parts)
        health = health_of(parts, {p["partition"]: {"earliest": 0, "latest": 0} for p in parts or []})
        got = {k: v["value"] for k, v in configs.get(name, {}).items()}
        missing = {k: v for k, v in item["configs"].items() if str(got.get(k)) != v}
        problems = list(health["problems"])
        if layout is None:
            problems.append("not listed by the broker")
        else:
            if layout["partitions"] != item["layout"]["partitions"]:
                problems.append(f"{layout['partitions']} partitions, wanted {item['layout']['partitions']}")
            if layout["replication_factor"] != item["layout"]["replication_factor"]:
                problems.append(f"replication factor {layout['replication_factor']}, wanted "
                                f"{item['layout']['replication_factor']}")
        if missing:
            problems.append(f"configs not in place: {sorted(missing)}")
        out.append({"topic": name, "ok": not problems, "problems": problems,
                    "partitions": layout["partitions"] if layout else 0,
                    "replication_factor": layout["replication_factor"] if layout else 0,
                    "leaders": sum(1 for p in parts or [] if p["leader"] is not None and p["leader"] >= 0)})
    return out


def run(params: dict[str, t.Any], conf: dict[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """The module's whole job; never raises for a broker error after the first read (returns it)."""
    timeout = float(params.get("timeout") or 10)
    admin = AdminClient(conf)
    assessed = assess(admin, params)
    plan = assessed["plan"]
    result: dict[str, t.Any] = {"plan": plan, "errors": assessed["errors"], "actions": [], "verification": [],
                                "recreated": [], "refused": [p["topic"] for p in plan if p["status"] == "refused"],
                                "already_recreated": [p["topic"] for p in plan if p["status"] == "already"],
                                "data_loss": [p["topic"] for p in plan if p["recreate"]]}
    if hold_if_refused(plan):
        result["data_loss"] = []
        result["summary"] = summary(plan, check_mode)
        return result
    if check_mode:
        result["actions"] = [action_record(ACTION, p["topic"], "would delete and recreate",
                                           partitions=p["layout"]["partitions"],
                                           replication_factor=p["layout"]["replication_factor"], configs=p["configs"])
                             for p in plan if p["recreate"]]
        result["summary"] = summary(plan, True)
        return result
    actions, verification, error = recreate(admin, plan, timeout, float(params.get("settle_timeout") or 60))
    result.update(actions=actions, verification=verification,
                  recreated=[a["target"] for a in actions if a["action"] == ACTION and a["result"] == "recreated"])
    result["summary"] = summary(plan, False)
    if error:
        result["error"] = error
    return result
