"""The sweep report from hand-made records: self-contained, escaped, honest about gaps."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import polars as pl

from lab.sweep import ReplicationRecord, parse_grid, plan_sweep, records_frame, sweep_summary
from reports.sweep_report import SECTIONS, render_sweep_report, reproduce_command

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "scenarios" / "latency_regression_rollback.toml"
HOSTILE = "<script>alert(1)</script>"


def _record(point: int, replication: int, outcome: str, exposed: int) -> ReplicationRecord:
    rolled_back = outcome == "rolled_back"
    return ReplicationRecord(
        point=point,
        replication=replication,
        seed=100 + point,
        status="ok",
        outcome=outcome,
        time_to_detect_s=600.0 + 60 * replication,
        time_to_rollback_s=900.0 + 60 * replication if rolled_back else None,
        time_to_decision_s=900.0 + 60 * replication if rolled_back else None,
        max_candidate_weight=5.0,
        final_weight=0.0 if rolled_back else 5.0,
        analyses=3,
        failures=2 if rolled_back else 0,
        requests=10_000,
        candidate_requests=500,
        baseline_requests=9_500,
        users_exposed=exposed,
        candidate_clicks=20,
        baseline_clicks=400,
        candidate_ctr=0.04,
        baseline_ctr=0.042 + 0.001 * replication,
        ctr_difference=-0.002 - 0.001 * replication,
        candidate_p99_ms=300.0 + replication,
        baseline_p99_ms=60.0,
        candidate_timeout_rate=0.05,
        baseline_timeout_rate=0.0,
        fallback=25,
        dropped=0,
        wall_s=1.0,
    )


def _summary(
    *, interrupted: bool = False, failed: bool = False
) -> tuple[dict[str, Any], pl.DataFrame]:
    axes = parse_grid(["rollout.analysis.failure_limit=1,2,3", f'description="{HOSTILE}","plain"'])
    plan = plan_sweep(SCENARIO, ["traffic.duration=20m"], axes, 4)
    records = []
    for point in plan.points:
        for r in range(4 if not interrupted or point.index < 2 else 0):
            outcome = "rolled_back" if r < 3 - point.choice[0] else "in_progress"
            records.append(_record(point.index, r, outcome, 40 + 10 * r + point.index))
    if failed:
        records[1] = ReplicationRecord(0, 1, 100, "failed", error=f"ValueError: {HOSTILE}")
    table = records_frame(plan, records).sort(["point", "replication"])
    summary = sweep_summary(plan, table, interrupted=interrupted, execution={"engine": "test"})
    return summary, table


def test_report_is_self_contained_and_escaped() -> None:
    summary, table = _summary(failed=True)
    page = render_sweep_report(summary, table)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in page
    # Outcomes, two operating-characteristic curves, time to decision, exposure, CTR, p99.
    assert page.count('<svg class="figure"') == 7
    assert "1 of 24 replications failed" in page
    assert "ValueError: &lt;script&gt;" in page


def _figure_texts(page: str, name: str) -> list[str]:
    svg = re.search(rf'<svg class="figure"[^>]*data-figure="{name}".*?</svg>', page, re.DOTALL)
    assert svg is not None, name
    root = ElementTree.fromstring(svg.group(0))
    return [t.text or "" for t in root.iter("text")]


def test_grid_values_label_the_points_and_integer_settings_stay_integers() -> None:
    summary, table = _summary()
    page = render_sweep_report(summary, table)
    operating = _figure_texts(page, "operating-0")
    assert {"1", "2", "3"} <= set(operating)
    assert not any("." in t for t in operating if t.replace(".", "").isdigit() and float(t) > 1)
    strip = " ".join(_figure_texts(page, "strip-time-to-decision-s"))
    assert "1, plain" in strip and "grid point" not in strip


def test_reproduce_commands_carry_the_sweeps_own_settings() -> None:
    summary, table = _summary()
    page = render_sweep_report(summary, table)
    block = summary["points"][3]
    command = reproduce_command(summary, block)
    assert command.startswith(
        f"rollout-lab run latency_regression_rollback.toml --seed {block['seed']} "
    )
    assert "--set traffic.duration=20m --set rollout.analysis.failure_limit=2" in command
    assert command.endswith("--set description=plain")
    assert html.escape(command) in page


def test_rates_follow_the_grid() -> None:
    summary, _table = _summary()
    rates = [b["rates"]["rolled_back"]["rate"] for b in summary["points"]]
    # failure_limit 1, 2, 3 -> 3, 2, 1 of 4 replications rolled back (hand-made records).
    assert rates == [0.75, 0.75, 0.5, 0.5, 0.25, 0.25]
    low, high = summary["points"][0]["rates"]["rolled_back"]["ci95"]
    assert 0 < low < 0.75 < high < 1


def test_an_interrupted_sweep_says_so() -> None:
    summary, table = _summary(interrupted=True)
    assert summary["complete"] is False
    page = render_sweep_report(summary, table)
    assert "<b>Incomplete sweep</b> (interrupted): 8 of 24 replications finished" in page


def test_an_empty_sweep_still_renders() -> None:
    plan = plan_sweep(SCENARIO, [], (), 2)
    table = records_frame(plan, [])
    summary = sweep_summary(plan, table, interrupted=True, execution={})
    page = render_sweep_report(summary, table)
    assert "0 of 2 replications finished" in page
    assert "<svg" not in page
