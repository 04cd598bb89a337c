"""``summary.json``: the machine-readable result of a run (schema version 1, see README).

Everything in it is a pure function of the scenario and the seed, except the wall-clock
figures in ``timing`` (``wall_s``, ``prepare_s``, ``simulate_s``, ``requests_per_wall_s``);
``reproducible=True`` writes those as 0 so that two runs are byte-identical.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from lab.background import in_background
from lab.offpolicy_log import offpolicy_block
from lab.pipeline import SEGMENTS, RunResult
from replay.calibration import ClickCalibrator
from reports.attributes import by_attribute_blocks, fairness_block, user_group_blocks
from reports.buckets import bucket_block, worst_group
from reports.decision import decision_block, gate_projection
from reports.exposure import exposure
from reports.numbers import num as _num
from reports.quality import (
    RequestColumns,
    churn_block,
    quality_blocks,
    request_windows,
    segments_block,
    window_ctr_delta,
    window_ece,
    window_series,
)
from reports.releases import releases_block
from reports.segment_quality import add_segment_quality
from reports.topology import (
    autoscaler_block,
    coalescing_block,
    resources_block,
    serving_path_block,
    slo_blocks,
)
from sim.metrics.retention import remembering_outcomes
from sim.records import ABSENT
from sim.stats import wilson_interval

__all__ = [
    "SCHEMA_VERSION",
    "build_summary",
    "dumps",
    "miss_storms",
    "shadow_timeline",
    "timeline",
]

SCHEMA_VERSION = 1


def _version_block(frame: pl.DataFrame, name: str, budget_ms: float) -> dict[str, Any]:
    mine = frame.filter(pl.col("version") == name)
    n = mine.height
    shown = mine.filter(pl.col("result") != "dropped")
    latency = mine["latency_ms"].to_numpy()
    if n:
        p50, p95, p99 = np.percentile(latency, [50, 95, 99], method="inverted_cdf")
        mean = float(latency.mean())
    else:
        p50 = p95 = p99 = mean = float("nan")
    answered = mine.filter(pl.col("model_answered"))["latency_ms"].to_numpy()
    lookups = mine.filter(pl.col("cache").is_in(["hit", "miss", "stale"])).height
    hits = mine.filter(pl.col("cache") == "hit").height
    stale = mine.filter(pl.col("cache") == "stale").height
    clicks = int(mine["clicks"].sum()) if n else 0
    ci = wilson_interval(clicks, n) if n else None
    return {
        "requests": n,
        "users": mine["user"].n_unique() if n else 0,
        "served": mine.filter(pl.col("result") == "served").height,
        "fallback": mine.filter(pl.col("result") == "fallback").height,
        "dropped": mine.filter(pl.col("result") == "dropped").height,
        "latency_ms": {"p50": _num(p50), "p95": _num(p95), "p99": _num(p99), "mean": _num(mean)},
        "model_latency_ms": _model_latency(answered),
        "slo_under_budget": _num((latency <= budget_ms).mean() if n else None),
        "cache_hit_rate": _num(hits / lookups if lookups else None),
        # Like the hit rate, null without cache lookups (cache off): nothing could be stale.
        "stale_rate": _num(stale / n if n and lookups else None),
        "timeout_rate": _num(mine.filter(pl.col("failure") == "timeout").height / n if n else None),
        "error_rate": _num(
            mine.filter(pl.col("failure").is_in(["error", "queue_full"])).height / n if n else None
        ),
        "clicks": clicks,
        "ctr": _num(clicks / n if n else None),
        "ctr_ci95": [_num(ci.low), _num(ci.high)] if ci else [None, None],
        "abandon_rate": _num(int(shown["abandoned"].sum()) / n if n else None),
    }


def served_block(frame: pl.DataFrame, names: list[str]) -> dict[str, Any]:
    """Engagement by what was actually shown, beside ``versions`` (by assigned version).

    ``versions`` is intention to treat: a request counts for the version it was assigned to,
    whatever answered it, which is what the gate judges.  This block counts each request
    under the list the user saw: fresh lists by the version that computed them (a
    baseline fallback counts for the baseline), the popularity list, and ``stale`` — a
    cached list of an older or other version — as its own row, with whose lists they were.
    Dropped requests showed nothing and are left out.
    """
    shown = frame.filter(pl.col("result") != "dropped")
    stale = pl.col("cache") == "stale"
    rows: dict[str, pl.DataFrame] = {
        name: shown.filter((pl.col("served_by") == name) & ~stale) for name in [*names, "popular"]
    }
    rows["stale"] = shown.filter(stale)
    out: dict[str, Any] = {}
    total = max(frame.height, 1)
    for name, mine in rows.items():
        n = mine.height
        if n == 0:
            continue
        clicks = int(mine["clicks"].sum())
        ci = wilson_interval(clicks, n)
        latency = mine["latency_ms"].to_numpy()
        p50, p99 = np.percentile(latency, [50, 99], method="inverted_cdf")
        assigned = mine["version"].value_counts(sort=True)
        block: dict[str, Any] = {
            "requests": n,
            "share_of_requests": _num(n / total),
            "clicks": clicks,
            "ctr": _num(clicks / n),
            "ctr_ci95": [_num(ci.low), _num(ci.high)],
            "latency_ms": {"p50": _num(p50), "p99": _num(p99)},
            "assigned_to": {
                str(v): int(c) for v, c in zip(assigned["version"], assigned["count"], strict=True)
            },
        }
        if name == "stale":
            lists = mine["served_by"].value_counts(sort=True)
            block["lists_of"] = {
                str(v): int(c) for v, c in zip(lists["served_by"], lists["count"], strict=True)
            }
        out[name] = block
    return out


def _calibrator(calibrator: ClickCalibrator) -> dict[str, Any]:
    """The click calibrator's coefficients (:mod:`replay.calibration`), rounded."""
    document = calibrator.as_dict()
    weights = document["weights"]
    assert isinstance(weights, dict)
    return {
        **document,
        "intercept": _num(calibrator.intercept),
        "weights": {name: _num(w) for name, w in weights.items()},
    }


def _provenance(provenance: dict[str, Any] | None, reproducible: bool) -> dict[str, Any] | None:
    """A version's provenance; its wall-clock training time is 0 when reproducible."""
    if provenance is None:
        return None
    out: dict[str, Any] = _json_ready(provenance)
    if reproducible and "training_seconds" in out:
        out["training_seconds"] = 0.0
    return out


def _model_latency(latency_ms: np.ndarray) -> dict[str, Any]:
    """Percentiles of the requests a version's model answered (cache misses served at the
    first attempt): the model's own latency, which cache hits hide from ``latency_ms``."""
    if latency_ms.size == 0:
        return {"requests": 0, "p50": None, "p95": None, "p99": None, "mean": None}
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99], method="inverted_cdf")
    return {
        "requests": int(latency_ms.size),
        "p50": _num(p50),
        "p95": _num(p95),
        "p99": _num(p99),
        "mean": _num(float(latency_ms.mean())),
    }


def _rounded(value: Any) -> Any:
    """``value`` with every float rounded like the rest of the summary (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | np.number):
        return _num(value)
    return value


def timeline(frame: pl.DataFrame, bucket_s: float) -> pl.DataFrame:
    """Per-version aggregates in buckets of ``bucket_s`` simulated seconds (report figures)."""
    return (
        frame.with_columns((pl.col("t_s") // bucket_s * bucket_s).alias("bucket_s"))
        .group_by(["bucket_s", "version"])
        .agg(
            pl.len().alias("requests"),
            pl.col("latency_ms").quantile(0.5, "nearest").alias("p50_ms"),
            pl.col("latency_ms").quantile(0.95, "nearest").alias("p95_ms"),
            pl.col("latency_ms").quantile(0.99, "nearest").alias("p99_ms"),
            pl.col("latency_ms")
            .filter(pl.col("model_answered"))
            .quantile(0.5, "nearest")
            .alias("model_p50_ms"),
            pl.col("cache").is_in(["hit", "miss", "stale"]).sum().alias("lookups"),
            (pl.col("cache") == "hit").sum().alias("hits"),
            pl.col("clicks").cast(pl.Int64).sum().alias("clicks"),
        )
        .sort(["bucket_s", "version"])
    )


def miss_storms(
    frame: pl.DataFrame,
    flush_times_s: list[float],
    *,
    before_s: float = 300.0,
    after_s: float = 60.0,
    drop: float = 0.1,
) -> list[dict[str, Any]]:
    """The cache's hit rate around each flush: over the ``before_s`` seconds before it and the
    ``after_s`` seconds after it (all versions' lookups); ``storm`` when it fell by more than
    ``drop`` (10 percentage points).  A flush with no lookups on a side is left out."""
    lookups = frame.filter(pl.col("cache").cast(pl.String).is_in(["hit", "miss", "stale"]))
    t = lookups["t_s"].to_numpy()
    hit = (lookups["cache"].cast(pl.String) == "hit").to_numpy()
    out: list[dict[str, Any]] = []
    for flush in flush_times_s:
        before = hit[(t >= flush - before_s) & (t < flush)]
        after = hit[(t >= flush) & (t < flush + after_s)]
        if before.size == 0 or after.size == 0:
            continue
        rate_before, rate_after = float(before.mean()), float(after.mean())
        out.append(
            {
                "t_s": flush,
                "before": rate_before,
                "after": rate_after,
                "after_window_s": after_s,
                "storm": rate_before - rate_after > drop,
            }
        )
    return out


def shadow_timeline(frame: pl.DataFrame, bucket_s: float) -> pl.DataFrame:
    """Mirrored (shadow) copies per bucket of ``bucket_s`` simulated seconds and target
    version: ``bucket_s``, ``shadow`` (the version mirrored to), ``copies``."""
    return (
        frame.filter(pl.col("shadow").cast(pl.String) != "none")
        .with_columns(
            (pl.col("t_s") // bucket_s * bucket_s).alias("bucket_s"),
            pl.col("shadow").cast(pl.String),
        )
        .group_by(["bucket_s", "shadow"])
        .agg(pl.len().alias("copies"))
        .sort(["bucket_s", "shadow"])
    )


def _windows(result: RunResult, columns: RequestColumns, names: list[str]) -> dict[str, Any]:
    """The monitor's window series plus ECE per window and the candidate's CTR delta."""
    windows = result.monitor.windows
    block = window_series(windows, names)
    per_request = request_windows(windows, columns.user.shape[0])
    for name, series in zip(names, window_ece(columns, per_request, len(windows)), strict=True):
        block["versions"][name]["ece"] = series
    rollout = result.scenario.rollout
    block["candidate_vs_baseline"] = window_ctr_delta(
        windows, baseline=rollout.baseline, candidate=rollout.candidate
    )
    return block


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"skipped.duplicate": 3}`` -> ``{"skipped": {"duplicate": 3}}``: every figure gets a
    dotted path that expectations can name."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _json_ready(value: Any) -> Any:
    """Nested dicts of numbers and strings, numbers rounded like the rest of the summary."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    return _num(value)


def build_summary(
    result: RunResult,
    *,
    scenario_file: str | None = None,
    reproducible: bool = False,
    extra_timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    scenario = result.scenario
    frame = result.requests
    prepared = result.prepared
    names = [v.name for v in result.versions]
    roles = {scenario.rollout.baseline: "baseline", scenario.rollout.candidate: "candidate"}
    # A release train's later releases are candidates of their own release.
    roles.update({r.name: "release" for r in prepared.releases[1:]})
    results = frame["result"].value_counts()
    counts = dict(zip(results["result"].to_list(), results["count"].to_list(), strict=True))
    columns = RequestColumns.from_frame(frame, names)
    # The shown lists' exposure is numpy work that releases the GIL (and the report's
    # costliest block): it runs on another core while the blocks that do not read it are
    # built here.  A pure function of the run, so the order changes no number.
    exposure_job = in_background(
        partial(exposure, result, columns.user, columns.served_by, columns.hit), name="exposure"
    )
    by_attribute = by_attribute_blocks(result, columns.served_by)
    plain = {name: _version_block(frame, name, scenario.serving.budget_ms) for name in names}
    served = served_block(frame, names)
    windows = _windows(result, columns, names)
    churn = churn_block(
        columns.user,
        frame["t_s"].to_numpy(),
        columns.version,
        [t.items for t in result.versions],
        names,
    )
    shown = exposure_job.result()
    quality = quality_blocks(result, columns, shown)
    versions: dict[str, Any] = {}
    for v, name in enumerate(names):
        block = plain[name]
        table = result.versions[v]
        block["role"] = roles.get(name, "other")
        block["model"] = {
            "algorithm": table.model.spec.algorithm,
            "parent": table.parent,
            "update": table.update,
            # Lists from a table or a plugin have no factors (their scorer is a stand-in).
            "factors": 0
            if table.origin["source"] in ("topk", "plugin")
            else int(table.model.user_factors.shape[1]),
            "training_s": 0.0 if reproducible else _num(table.model.training_seconds, 3),
            "popularity_fallback_users": table.popularity_fallback_users,
            # Raw-score Platt scaling is no longer used (see ``calibration``); kept as null so
            # the key stays within schema version 1.
            "platt": None,
            "calibration": None if table.calibrator is None else _calibrator(table.calibrator),
            "source": table.origin["source"],
            "registry_id": table.origin["registry_id"],
            "provenance": _provenance(table.origin["provenance"], reproducible),
            "coverage": table.origin.get("coverage"),
        }
        block["quality"] = quality[name]
        if by_attribute[name]:
            block["quality"]["by_attribute"] = by_attribute[name]
        shadow = frame.filter(pl.col("shadow") == name)
        if shadow.height:
            lat = shadow["shadow_latency_ms"].to_numpy()
            block["shadow"] = {
                "requests": shadow.height,
                "latency_ms": {
                    "p50": _num(np.percentile(lat, 50, method="inverted_cdf")),
                    "p99": _num(np.percentile(lat, 99, method="inverted_cdf")),
                },
            }
        path = serving_path_block(result, v)
        if path is not None:
            block["serving_path"] = path
        scaling = autoscaler_block(result, v)
        if scaling is not None:
            block["autoscaler"] = scaling
        versions[name] = block
    cache = result.outcome.cache
    cache_block: dict[str, Any] = {"enabled": cache is not None}
    if cache is not None:
        s = cache.stats
        lookups = s.hits + s.misses
        cache_block.update(
            hits=s.hits,
            misses=s.misses,
            expired=s.expired,
            stale_serves=s.stale_serves,
            evictions=s.evictions,
            flushes=s.flushes,
            hit_rate=_num(s.hits / lookups if lookups else None),
            flush_times_s=[_num(t) for t in result.outcome.flush_times_s],
        )
        if scenario.cache.coalesce:
            cache_block["single_flight"] = coalescing_block(result)
    n = frame.height
    sim_wall = result.timing.get("simulate_s", 0.0)
    floor = prepared.noise_floor
    timing = {
        "wall_s": result.timing.get("wall_s", 0.0),
        "prepare_s": result.timing.get("prepare_s", 0.0),
        "simulate_s": sim_wall,
        "sim_s": scenario.traffic.duration,
        "requests_per_wall_s": n / sim_wall if sim_wall > 0 else 0.0,
        # The re-seeded baseline of the stability noise floor, built in the background beside
        # the simulation (not part of prepare_s): inside its training call, and all its work.
        "noise_floor_training_s": None if floor is None else floor.model.training_seconds,
        "noise_floor_s": result.timing.get("noise_floor_s"),
        # Parts of prepare_s: the world (or log), implicit's training calls (0 when every
        # version came from the artifact cache), top-K scoring.
        "world_s": result.timing.get("world_s", 0.0),
        "training_s": result.timing.get("training_s", 0.0),
        "top_k_s": result.timing.get("top_k_s", 0.0),
        **(extra_timing or {}),
    }
    if reproducible:
        timing = {k: (v if k == "sim_s" else 0.0) for k, v in timing.items()}
    rollout = _json_ready(result.controller.summary())
    for release in (rollout.get("releases") or {}).values():
        if release["parent"] is None:
            # Release 1 is the scenario's candidate: its parent is the model it updates.
            release["parent"] = result.versions[names.index(release["version"])].parent
    baseline, candidate = scenario.rollout.baseline, scenario.rollout.candidate
    segments = segments_block(
        columns,
        prepared.user_segment,
        prepared.history_counts,
        baseline=baseline,
        candidate=candidate,
        hit=shown.hit,
        hit_method=shown.method,
    )
    segments["item_popularity"] = bucket_block(
        columns,
        shown.items,
        prepared.item_popularity,
        baseline=baseline,
        candidate=candidate,
        hit_slots=shown.hit_slots,
        hit=shown.hit,
        hit_method=shown.method,
    )
    # New users (no interaction before the run: nobody could learn them) against returning.
    tenure_of = (np.asarray(prepared.history_counts) > 0).astype(np.int64)
    tenure = segments_block(
        columns,
        tenure_of,
        prepared.history_counts,
        baseline=baseline,
        candidate=candidate,
        names=("new", "returning"),
        hit=shown.hit,
        hit_method=shown.method,
    )
    tenure["basis"] = "new: no interaction before the run; returning: at least one"
    per_user = result.monitor.list_quality
    add_segment_quality(segments, columns, prepared.user_segment, SEGMENTS, per_user)
    add_segment_quality(tenure, columns, tenure_of, ("new", "returning"), per_user)
    segments["tenure"] = tenure
    segments["by_attribute"] = user_group_blocks(
        result, columns.user, columns.version, columns.clicks
    )
    segments["worst_overall"] = worst_group(
        segments["by_segment"], segments["item_popularity"]["by_bucket"], tenure["by_segment"]
    )
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "seed": scenario.seed,
            "file": scenario_file,
            "settings": scenario.model_dump(mode="json"),
        },
        "outcome": result.controller.outcome,
        "requests": {
            "arrivals": n,
            "served": int(counts.get("served", 0)),
            "fallback": int(counts.get("fallback", 0)),
            "dropped": int(counts.get("dropped", 0)),
            "shadow": int(frame.filter(pl.col("shadow") != "none").height),
        },
        "versions": versions,
        "served": served,
        "cache": cache_block,
        "rollout": rollout,
        "routing": _rounded(result.final_routing),
        "releases": releases_block(
            rollout, frame, scenario.rollout.baseline, float(scenario.traffic.duration or 0.0)
        ),
        "decisions": [d.as_dict() for d in result.controller.decisions],
        "windows": windows,
        "segments": segments,
        "churn": churn,
        # Off-policy estimates (replay, IPS, SNIPS) of every version on the logged impressions,
        # when the log maps a propensity and a reward column; null otherwise.
        "off_policy": (
            offpolicy_block(
                prepared.source.impressions,
                {t.name: t.items for t in result.versions},
                n_items=prepared.world.n_items,
            )
            if prepared.source.impressions is not None
            else None
        ),
        # Provider fairness by the item attribute table's provider column; null without one.
        "fairness": fairness_block(result, columns.served_by, prepared.attributes),
        "drift": _rounded(result.drift) if result.drift else None,
        "data": {
            "source": scenario.traffic.source,
            "users": prepared.world.n_users,
            "items": prepared.world.n_items,
            "history_events": prepared.history_events,
            "attributes": _rounded(prepared.attributes.summary()),
            # Replayed logs: row accounting (kept + skipped.* == input_rows) and windows.
            **{
                key: _json_ready(_nest(value) if isinstance(value, dict) else value)
                for key, value in prepared.source.data.items()
                if key
                in ("path", "format", "accounting", "windows", "replayed_requests", "fold_in")
            },
        },
        "timing": {k: _num(v, 4) for k, v in timing.items()},
    }
    if scenario.slos:
        summary["slos"] = slo_blocks(result)
    memory = result.monitor.memory
    if memory is not None:
        # Remembering users: the requests of users who had left were never sent.
        not_sent = int(np.count_nonzero(result.monitor.records.result == ABSENT))
        summary["requests"]["not_sent"] = not_sent
        summary["remembering"] = _rounded(
            remembering_outcomes(
                memory,
                result.monitor.records,
                names,
                t_s=result.monitor.t_s,
                rollback_s=result.controller.rollback_s,
                candidate=result.controller.candidate,
            )
        )
    if scenario.resources is not None:
        summary["resources"] = resources_block(result)
    decision = _rounded(decision_block(summary, gate_projection(result)))
    # Right after the outcome: the first thing a reader (or a notebook) looks for.
    out: dict[str, Any] = {}
    for key, value in summary.items():
        out[key] = value
        if key == "outcome":
            out["decision"] = decision
    return out


def dumps(summary: dict[str, Any]) -> str:
    """Stable JSON text (sorted keys would scramble reading order; insertion order is stable)."""
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"
