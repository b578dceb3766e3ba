#!/usr/bin/env python
"""Fault -> alert -> rulebook -> playbook -> verified recovery, per scenario, on real Prometheus,
Alertmanager and ansible-rulebook against the lab (the drill of tests/drills/test_alert_to_recovery.py, once per
round, printed as a table of seconds since the fault):

  fault -> alert firing (Alertmanager has it) -> webhook (the rulebook received it) -> playbook
  start (the scenario playbook's first task) -> healed (the service answers, seen from here) ->
  alert resolved (Alertmanager no longer has it active)

for HighDatabaseConnections -> db_exhaustion (lab/pg/inject 300 + 20), RedisDown ->
redis_unavailable (master SIGKILLed, no sentinels) and ServiceDown -> service_down (nginx
SIGKILLed on lab-host-1). Target: fault -> healed <= 30 s (resend-delay 1 s, `for: 2s`).

    .venv/bin/python benchmarks/alert_to_recovery.py

One round per run: restoring the Redis group between rounds (lab/redis/reset) would itself fire
RedisDown while Prometheus watches; run it again for another sample.

Starts the lab components it needs (pg, redis, hosts, obs) unless running, stops those it started.
Run it under the lab lock: flock /tmp/sre-lab.lock .venv/bin/python benchmarks/alert_to_recovery.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "build" / "collections"))

import eda_drill  # noqa: E402

TARGET_S = 30.0


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0]).parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="sre-eda-bench.") as workdir:
        with eda_drill.Drill(Path(workdir)).running() as drill:
            for scenario in (drill.db_exhaustion, drill.redis_unavailable, drill.service_down):
                results.append(scenario())
                print(eda_drill.table(results[-1:]).splitlines()[-1], flush=True)
    print()
    print("seconds since the fault")
    print(eda_drill.table(results))
    print()
    ok = True
    for r in results:
        healed = r["times"]["healed"] - r["times"]["fault"]
        ok &= healed <= TARGET_S
        print(f"{r['scenario']:<18} fault -> verified recovery {healed:5.1f} s  (target <= {TARGET_S:.0f} s: "
              f"{'met' if healed <= TARGET_S else 'MISSED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
