"""The report's Mermaid chart parses and renders in a real browser (Debian's chromium, headless,
with the pinned mermaid package): "renders as a picture on any Git forge" proven once."""

from __future__ import annotations

import datetime
import re

from conftest import render_mermaid

from ansible_collections.sre.runbooks.plugins.plugin_utils import _timeline as tl

T0 = datetime.datetime(2026, 1, 31, 3, 0, tzinfo=datetime.timezone.utc)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def task(run, name, start, end, status="ok", result=None, check=False):
    return tl.task_event(incident_id="inc", run_id=run, play="p", task_name=name, tags=[], host="db1", status=status,
                         start=at(start), end=at(end), result=result or {}, no_log=False, check_mode=check)


def report_chart() -> str:
    """The Mermaid block of a postmortem: a check-mode assessment, a failed live run, a healing one."""
    lines = [tl.run_start_event(incident_id="inc", run_id="r0", timestamp=at(0), playbook="playbooks/outage/x.yml",
                                check_mode=True),
             task("r0", "Incident | which incident", 0.1, 0.2),
             task("r0", "Assess | usage: 95% | over", 1, 2, result={"verdict": {"act": True}}, check=True),
             tl.run_start_event(incident_id="inc", run_id="r1", timestamp=at(60), playbook="playbooks/outage/x.yml",
                                check_mode=False),
             task("r1", "Act | terminate; #1", 61, 64, status="changed", result={"actions": [
                 {"timestamp": tl.iso(at(62)), "action": "terminate", "target": "db1", "result": "done"}]}),
             task("r1", "Verify | fresh connection", 65, 65, status="failed"),
             tl.run_start_event(incident_id="inc", run_id="r2", timestamp=at(600), playbook="playbooks/outage/x.yml",
                                check_mode=False),
             task("r2", "Verify | fresh connection", 601, 602)]
    events, bad = tl.parse_lines(b"".join(tl.encode(e) for e in lines).decode())
    assert bad == 0
    markdown = tl.render_markdown("db_exhaustion--db1", tl.analyse(events))
    return re.search(r"```mermaid\n(.*?)```", markdown, re.S).group(1)


def test_the_report_chart_renders_as_svg_in_chromium(chromium, mermaid_js, tmp_path):
    chart = report_chart()
    dom = render_mermaid(chromium, mermaid_js, chart, tmp_path)
    status = re.search(r'<pre id="status">(.*?)</pre>', dom, re.S).group(1)
    assert status == "rendered", status
    svg = re.search(r'<div id="chart">(<svg.*</svg>)</div>', dom, re.S)
    assert svg, dom[-2000:]
    svg = svg.group(1)
    assert 'aria-roledescription="gantt"' in svg
    for label in ("Assess", "Act", "Verify", "Detected", "Mitigated", "Resolved", "Run 1 x.yml check"):
        assert label in svg, label
    assert "Syntax error" not in svg
    assert svg.count("<rect") >= 7  # bars and milestones were drawn


def test_a_broken_chart_is_reported_as_an_error(chromium, mermaid_js, tmp_path):
    """The control: the page does report a parse error, so the test above can fail."""
    dom = render_mermaid(chromium, mermaid_js, "gantt\n    dateFormat YYYY\n    Task :x, y, z, w, v\n  ::: nonsense",
                         tmp_path)
    status = re.search(r'<pre id="status">(.*?)</pre>', dom, re.S).group(1)
    assert status.startswith("error:"), status
