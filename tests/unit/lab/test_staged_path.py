"""A staged path's answers and stage counts, recomputed from the run's buffers.

A degraded answer shows the version's own items re-ordered by popularity, so its predicted
P(click on the list) is the calibrator's on *that* list (other ranks, another cascade), not
the model's list's; its calibration and engagement are reported apart from full answers
(both recomputed here with plain numpy).  Mirrored copies hold the stages' servers and are
counted apart from users' requests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.pipeline import RunResult, run
from lab.scenario import load_scenario
from replay.calibration import list_features
from reports.html import render_report
from reports.summary import build_summary
from sim.records import BYPASS, MISS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def staged() -> RunResult:
    scenario = load_scenario(
        ROOT / "scenarios" / "slow_ranking_degrades.toml",
        ["traffic.duration=8m", "traffic.users=800", "traffic.items=300"],
    )
    return run(scenario)


def _cascade(p: np.ndarray, decay: float) -> np.ndarray:
    """P(click on the list) = Σ_k decay^k Π_{j<k} (1 − p_j) p_k, written out slot by slot."""
    total = np.zeros(p.shape[0])
    survive = np.ones(p.shape[0])
    for k in range(p.shape[1]):
        total += decay**k * survive * p[:, k]
        survive *= 1.0 - p[:, k]
    return total


def _ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Σ_b |B_b|/n · |mean p − mean y| over bins (b/M, (b+1)/M], the first holding 0."""
    which = np.clip(np.ceil(p * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += abs(p[inside].sum() - y[inside].sum())
    return total / p.size


def test_degraded_answers_carry_the_prediction_of_the_list_shown(staged: RunResult) -> None:
    records = staged.monitor.records
    users = staged.stream.user
    decay = staged.scenario.users.position_decay
    popularity = staged.prepared.item_popularity
    for v, table in enumerate(staged.versions):
        rows = np.flatnonzero((records.served_by == v) & (records.degraded >= 0))
        if v == 1:
            assert rows.size > 50
        if not rows.size:
            continue
        u = users[rows]
        items = table.items[u]
        # Most popular first, ties in the model's order, empty slots last.
        key = np.where(items >= 0, popularity[np.maximum(items, 0)], -1)
        order = np.array([np.lexsort((np.arange(key.shape[1]), -row)) for row in key])
        shown = np.take_along_axis(items, order, axis=1)
        calibrator = table.calibrator
        assert calibrator is not None
        no_history = table.no_history(u) | (u >= table.model.n_users)
        features = list_features(table.model, u, shown, no_history, table.history_length(u))
        z = features @ np.asarray(calibrator.weights)
        p_item = np.where(shown >= 0, 1.0 / (1.0 + np.exp(-(z + calibrator.intercept))), 0.0)
        expected = _cascade(p_item, decay)
        assert np.allclose(records.p_click[rows], expected, rtol=1e-4, atol=1e-6)
        if v == 1:
            # Not the model's own list's prediction (the bug this guards against).
            assert not np.allclose(records.p_click[rows], table.predicted[u], rtol=1e-3)
        full = np.flatnonzero((records.served_by == v) & (records.degraded < 0))
        assert np.allclose(records.p_click[full], table.predicted[users[full]])


def test_degraded_answers_are_judged_apart(staged: RunResult) -> None:
    summary = build_summary(staged, reproducible=True)
    records = staged.monitor.records
    computed = (records.cache == MISS) | (records.cache == BYPASS)
    for v, name in enumerate(staged.scenario.models):
        path = summary["versions"][name]["serving_path"]
        mine = (records.served_by == v) & computed
        for key, degraded in (("full_quality", False), ("degraded_quality", True)):
            rows = np.flatnonzero(mine & ((records.degraded >= 0) == degraded))
            block = path[key]
            assert block["lists"] == rows.size
            assert block["clicks"] == int(records.clicks[rows].sum())
            judged = rows[~records.abandoned[rows]]
            assert block["judged"] == judged.size
            if not judged.size:
                assert block["ece"] is None
                continue
            p = records.p_click[judged].astype(np.float64)
            y = records.clicks[judged].astype(np.float64)
            assert block["ece"] == pytest.approx(_ece(p, y), abs=1e-6)
            assert block["mean_predicted"] == pytest.approx(p.mean(), abs=1e-6)
            assert block["observed_rate"] == pytest.approx(y.mean(), abs=1e-6)
        assert path["degraded_quality"]["lists"] == path["degraded_answers"]


def test_mirrored_copies_are_counted_apart_in_the_stage_stats() -> None:
    """Shadow copies hold the stages' servers: each copy enters the candidate's first stage
    once and is counted under ``shadow``; the users' counters hold only users' attempts."""
    scenario = load_scenario(
        ROOT / "scenarios" / "slow_ranking_degrades.toml",
        [
            "traffic.duration=8m",
            "traffic.users=800",
            "traffic.items=300",
            'rollout={policy="shadow_then_canary", mirror=50, shadow_for="4m", weight=20, '
            'analysis={interval="2m"}}',
        ],
    )
    result = run(scenario)
    summary = build_summary(result, reproducible=True)
    records = result.monitor.records
    stages = summary["versions"]["candidate"]["serving_path"]["stages"]
    copies = int((records.shadow == 1).sum())
    assert copies > 100
    assert stages[0]["shadow"]["entered"] == copies
    # Users' attempts on the candidate's path: its own cache misses (no fallback leads to it).
    attempts = (records.version == 1) & ((records.cache == MISS) | (records.cache == BYPASS))
    assert stages[0]["entered"] == int(attempts.sum())
    for stage in stages:
        for counts in (stage, stage["shadow"]):
            assert counts["entered"] == counts["completed"] + counts["timeouts"]
    assert summary["versions"]["baseline"]["serving_path"]["stages"][0]["shadow"] is None
    page = render_report(summary, result.requests)
    stages_section = page[page.index('<section id="stages">') :]
    assert stages_section.count(">stage (mirrored copies)</th>") == 1
