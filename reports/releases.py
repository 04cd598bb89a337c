"""A release train release by release: ``summary.json``'s ``releases`` block.

Each release rolls out behind the version in production when it starts (the scenario's
baseline, or the last promoted release).  Over its own window (from its start to the next
release's start, or the end of the run) it is compared with that production version on the
requests assigned to each: CTR with a Wilson interval, the CTR difference with a delta-method
interval (requests treated as independent; the gate itself clusters by user), and p99
latency.  ``None`` for a run without a release train.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from reports.numbers import num
from sim.metrics import ctr_difference
from sim.stats import wilson_interval

__all__ = ["releases_block"]


def _arm(frame: pl.DataFrame, name: str) -> tuple[dict[str, Any], np.ndarray]:
    mine = frame.filter(pl.col("version") == name)
    clicks = mine["clicks"].cast(pl.Int64).to_numpy()
    n = int(clicks.size)
    if n == 0:
        return {
            "requests": 0,
            "ctr": None,
            "ctr_ci95": [None, None],
            "latency_p99_ms": None,
        }, clicks
    ci = wilson_interval(int(clicks.sum()), n)
    p99 = np.percentile(mine["latency_ms"].to_numpy(), 99, method="inverted_cdf")
    return {
        "requests": n,
        "ctr": num(clicks.mean()),
        "ctr_ci95": [num(ci.low), num(ci.high)],
        "latency_p99_ms": num(p99),
    }, clicks


def releases_block(
    rollout: dict[str, Any], frame: pl.DataFrame, baseline: str, end_s: float
) -> list[dict[str, Any]] | None:
    """One entry per release in order: ``release``, ``version``, ``parent``, ``production``
    (the version it rolled out behind), ``started_s``, ``ended_s``, ``outcome``, ``restored``
    (where a rollback returned production, ``release_train.rollback_to``), its window's
    numbers and ``production_window`` (the production version's), ``ctr_vs_production``."""
    releases = rollout.get("releases")
    if not releases:
        return None
    ordered = sorted(releases.values(), key=lambda r: r["release"])
    frame = frame.select("t_s", pl.col("version").cast(pl.String), "clicks", "latency_ms")
    production = baseline
    out: list[dict[str, Any]] = []
    for i, release in enumerate(ordered):
        start = float(release["started_s"] or 0.0)
        end = float(ordered[i + 1]["started_s"]) if i + 1 < len(ordered) else end_s
        window = frame.filter((pl.col("t_s") >= start) & (pl.col("t_s") < end))
        mine, clicks = _arm(window, release["version"])
        theirs, base_clicks = _arm(window, production)
        lift = None
        if clicks.size and base_clicks.size:
            estimate = ctr_difference(base_clicks, clicks)
            lift = {
                "difference": num(estimate.difference),
                "difference_ci95": [num(v) for v in estimate.difference_ci],
                "relative_lift": num(estimate.relative_lift),
            }
        out.append(
            {
                "release": release["release"],
                "version": release["version"],
                "parent": release["parent"],
                "production": production,
                "started_s": num(start),
                "ended_s": num(end),
                "outcome": release["outcome"],
                "restored": release.get("restored"),
                "time_to_decision_s": release["time_to_promote_s"]
                if release["time_to_promote_s"] is not None
                else release["time_to_rollback_s"],
                "window": mine,
                "production_window": theirs,
                "ctr_vs_production": lift,
            }
        )
        if release["outcome"] == "promoted":
            production = release["version"]
        elif release.get("restored"):
            production = release["restored"]
    return out
