"""module_utils/_kafka_recreate.py decision and plan (every branch), and the incident_actions lookup's
reading of the timeline (once per incident). The broker side is tested against the lab broker in
tests/integration/kafka/test_kafka_topic_recreate.py."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.sre.runbooks.plugins.lookup.incident_actions import LookupModule, done_actions, read, timeline_file
from ansible_collections.sre.runbooks.plugins.module_utils._kafka_recreate import (
    configs_to_copy,
    confirmation_phrase,
    decide,
    health_of,
    hold_if_refused,
    layout_of,
    summary,
)

LAYOUT = {"partitions": 3, "replication_factor": 1}
BROKEN = {"healthy": False, "problems": ["partition 1 has no leader"]}
HEALTHY = {"healthy": True, "problems": []}


def verdict(**kw):
    args = {"flagged": True, "confirmations": ["RECREATE orders"], "memory_readable": True, "recreated_at": None,
            "layout": dict(LAYOUT), "health": dict(BROKEN), "force": False}
    args.update(kw)
    return decide("orders", **args)


def test_phrase():
    assert confirmation_phrase("orders") == "RECREATE orders"


def test_broken_flagged_confirmed_topic_is_recreated():
    got = verdict()
    assert (got["recreate"], got["status"]) == (True, "recreate")
    assert "no leader" in got["reason"]


def test_default_flag_empty_never_recreates():
    got = verdict(flagged=False)
    assert (got["recreate"], got["status"]) == (False, "refused")
    assert "not listed in topics" in got["reason"]


@pytest.mark.parametrize("typed", [[], [""], ["recreate orders"], ["RECREATE order"], ["RECREATE other"], ["yes"]])
def test_confirmation_mismatch_refuses_and_names_the_phrase(typed):
    got = verdict(confirmations=typed)
    assert got["status"] == "refused" and not got["recreate"]
    assert "'RECREATE orders'" in got["reason"] and "kafka_lag_recreate_confirm" in got["reason"]


def test_confirmation_tolerates_surrounding_spaces_and_other_topics():
    assert verdict(confirmations=["RECREATE other", "  RECREATE orders "])["recreate"] is True


def test_healthy_topic_refused_unless_forced():
    got = verdict(health=dict(HEALTHY))
    assert got["status"] == "refused" and "looks healthy" in got["reason"] and "force" in got["reason"]
    forced = verdict(health=dict(HEALTHY), force=True)
    assert forced["recreate"] is True and "forced" in forced["reason"]


def test_once_per_incident():
    got = verdict(recreated_at="2026-01-31T03:12:00.000Z")
    assert (got["recreate"], got["status"]) == (False, "already")
    assert "03:12" in got["reason"]
    # force does not override the once-per-incident memory
    assert verdict(recreated_at="2026-01-31T03:12:00.000Z", force=True)["status"] == "already"


def test_unreadable_incident_memory_refuses():
    got = verdict(memory_readable=False)
    assert got["status"] == "refused" and "incident timeline" in got["reason"]


def test_missing_topic_and_ambiguous_layout_refuse():
    assert "does not exist" in verdict(layout=None, health=None)["reason"]
    got = verdict(layout={"partitions": 2, "replication_factor": 3, "problem": "ambiguous rf"})
    assert got["status"] == "refused" and "ambiguous rf" in got["reason"]


def test_layout_of():
    assert layout_of(None) is None
    parts = [{"partition": i, "leader": 1, "replicas": [1, 2]} for i in range(3)]
    assert layout_of(parts) == {"partitions": 3, "replication_factor": 2}
    mixed = layout_of(parts[:2] + [{"partition": 2, "leader": 1, "replicas": [1]}])
    assert "different replica counts" in mixed["problem"]
    assert "no partitions" in layout_of([])["problem"]
    assert "no replicas" in layout_of([{"partition": 0, "leader": 1, "replicas": []}])["problem"]


def test_health_of():
    parts = [{"partition": 0, "leader": 1}, {"partition": 1, "leader": -1}, {"partition": 2, "leader": 1}]
    offsets = {0: {"earliest": 0, "latest": 5}, 1: {"earliest": 0, "latest": 5}, 2: {"error": "latest: boom"}}
    got = health_of(parts, offsets)
    assert got["healthy"] is False
    assert got["problems"] == ["partition 1 has no leader", "partition 2 offsets unreadable: latest: boom"]
    assert health_of(parts[:1], {0: {"earliest": 0}})["problems"] == ["partition 0 offsets unreadable"]
    assert health_of(parts[:1], offsets)["healthy"] is True
    assert health_of(None, {})["healthy"] is False


def test_configs_to_copy():
    reported = {"retention.ms": {"value": "1000", "source": 1}, "segment.bytes": {"value": "9", "source": 5},
                "max.message.bytes": {"value": "7", "source": 4}, "secret": {"value": None, "source": 1, "sensitive": True}}
    assert configs_to_copy(reported, "overrides") == {"retention.ms": "1000"}
    assert configs_to_copy(reported, "all") == {"max.message.bytes": "7", "retention.ms": "1000", "segment.bytes": "9"}


def item(topic, status):
    return {"topic": topic, "status": status, "recreate": status == "recreate", "reason": f"{topic} {status}",
            "layout": dict(LAYOUT), "configs": {}, "messages": {"0": 4, "1": 2}, "committed_offsets": {"g1": {0: 4}}}


def test_one_refusal_holds_every_topic():
    plan = [item("a", "recreate"), item("b", "refused"), item("c", "already")]
    assert hold_if_refused(plan) is True
    assert [(p["status"], p["recreate"]) for p in plan] == [("held", False), ("refused", False), ("already", False)]
    assert "b refused" in plan[0]["reason"]
    fine = [item("a", "recreate"), item("c", "already")]
    assert hold_if_refused(fine) is False and fine[0]["recreate"] is True


def test_summary_states_the_loss():
    text = summary([item("a", "recreate")], check_mode=True)
    assert text.startswith("would delete and recreate topic a (3 partitions")
    assert "losing about 6 message(s)" in text and "committed offsets of g1" in text
    assert summary([item("a", "recreate")], check_mode=False).startswith("recreated topic a")
    assert summary([item("b", "already")], check_mode=False) == "b already"
    assert summary([], check_mode=False) == "no topic to recreate"


# ------------------------------------------------------------------ once per incident: the timeline
def task(actions, check_mode=False, kind="task"):
    return {"type": kind, "check_mode": check_mode, "actions": actions}


def act(target, result, at, action="recreate topic"):
    return {"action": action, "target": target, "result": result, "timestamp": at}


def test_done_actions_reads_only_real_recreations_of_this_incident():
    events = [
        task([act("old", "recreated", "2026-01-01T00:00:00.000Z")]),              # an earlier incident
        task([act("a", "would delete and recreate", "2026-01-31T03:00:01.000Z")]),  # check-mode preview
        task([act("b", "recreated", "2026-01-31T03:00:02.000Z")], check_mode=True),
        task([act("c", "failed: deleted but not created", "2026-01-31T03:00:03.000Z")]),
        task([act("d", "deleted", "2026-01-31T03:00:04.000Z", action="delete topic")]),
        task([act("e", "recreated", "2026-01-31T03:00:06.000Z"), act("e", "recreated", "2026-01-31T03:00:05.000Z")]),
        {"type": "run_end", "actions": [act("f", "recreated", "2026-01-31T03:00:07.000Z")]},
        task([act("g", "recreated", None)]),
    ]
    assert done_actions(events, "recreate topic", since="2026-01-31T03:00:00Z") == {"e": "2026-01-31T03:00:05.000Z"}
    assert set(done_actions(events, "recreate topic")) == {"old", "e", "g"}


def test_timeline_file():
    assert timeline_file("kafka_lag--kafka", "/s/kafka_lag--kafka.json") == "/s/kafka_lag--kafka.jsonl"
    assert timeline_file("i", None, "/x/t.jsonl") == "/x/t.jsonl"


def test_read_the_timeline_and_say_when_it_cannot(tmp_path):
    record = tmp_path / "inc-1.json"
    missing = read("inc-1", "recreate topic", record_path=str(record))
    assert missing["readable"] is False and missing["done"] == {} and missing["path"].endswith("inc-1.jsonl")
    assert "FileNotFoundError" in missing["error"]
    (tmp_path / "inc-1.jsonl").write_text(
        json.dumps(task([act("orders", "recreated", "2026-01-31T03:00:05.000Z")])) + "\n", encoding="utf-8")
    got = read("inc-1", "recreate topic", "2026-01-31T03:00:00Z", str(record))
    assert got == {"readable": True, "path": str(tmp_path / "inc-1.jsonl"), "done": {"orders": "2026-01-31T03:00:05.000Z"}}


def test_lookup_refuses_a_bad_incident_id():
    lookup = LookupModule()
    lookup.set_options = lambda **kw: None  # the options are checked by ansible-doc; here only the id
    with pytest.raises(AnsibleLookupError, match="letters, digits"):
        lookup.run(["../etc"], {}, action="recreate topic")
    with pytest.raises(AnsibleLookupError, match="exactly one"):
        lookup.run([], {}, action="recreate topic")
