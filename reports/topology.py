"""Summary blocks of the serving topology: a version's stages and degraded answers, the
cache's single-flight counts, and the SLOs' error budgets.  Present only when a scenario
uses them, so summaries of scenarios without stages, coalescing or SLOs are unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np

from lab.pipeline import RunResult
from lab.resources import footprint_bytes
from lab.slos import slo_plan
from reports.numbers import num
from reports.quality import CALIBRATION_BINS
from sim.metrics.calibration import expected_calibration_error
from sim.records import BYPASS, MISS, Records
from sim.slo import Slo, alert_firings, budget_spent, burn_rate, good_requests

__all__ = [
    "autoscaler_block",
    "coalescing_block",
    "resources_block",
    "serving_path_block",
    "slo_blocks",
    "update_window",
]


def serving_path_block(result: RunResult, v: int) -> dict[str, Any] | None:
    """Per stage (in path order) what version ``v``'s servers did with users' requests, and
    under ``shadow`` with mirrored copies (apart; null when none reached the path); the
    answers ``v`` served degraded (by the first stage whose timeout degraded them); None for
    one pool."""
    counters = result.outcome.stages.get(v)
    if counters is None:
        return None
    names = [c.name for c in counters]
    records = result.monitor.records
    # Answers the path computed: lists of ``v`` served from no cache entry (misses, bypass).
    mine = (records.served_by == v) & ((records.cache == MISS) | (records.cache == BYPASS))
    served = int(np.count_nonzero(mine))
    degraded = records.degraded[mine]
    first = np.bincount(degraded[degraded >= 0].astype(np.int64), minlength=len(names))
    mirrored = result.outcome.shadow_stages.get(v) or []
    mirrored_any = any(c.entered for c in mirrored)
    stages = []
    for k, c in enumerate(counters):
        row: dict[str, Any] = {"name": c.name}
        row.update((key, num(value)) for key, value in c.as_dict().items())
        row["degraded_first_here"] = int(first[k])
        # Mirrored copies held this stage's servers too; counted apart (null: none came).
        row["shadow"] = (
            {key: num(value) for key, value in mirrored[k].as_dict().items()}
            if mirrored_any
            else None
        )
        stages.append(row)
    n_degraded = int(np.count_nonzero(degraded >= 0))
    rows = np.flatnonzero(mine)
    return {
        "stages": stages,
        "answers": served,
        "degraded_answers": n_degraded,
        "degraded_rate": num(n_degraded / served if served else None),
        "degraded_list": "the version's own items re-ordered by popularity (retrieval order)",
        "full_quality": _answer_quality(records, rows[degraded < 0]),
        "degraded_quality": _answer_quality(records, rows[degraded >= 0]),
    }


def _answer_quality(records: Records, rows: np.ndarray) -> dict[str, Any]:
    """Engagement and calibration of the answers ``rows`` (lists the path computed and
    showed): ``lists``, ``clicks``, ``ctr`` = clicks / lists; over those not abandoned
    (``judged``, the calibration block's basis) the mean predicted P(click on the list shown),
    the observed click rate and the ECE over 15 equal-width bins (DESIGN.md's definition)."""
    clicks = records.clicks[rows].astype(np.float64)
    judged = rows[~records.abandoned[rows]]
    p = records.p_click[judged].astype(np.float64)
    y = records.clicks[judged].astype(np.float64)
    return {
        "lists": int(rows.size),
        "clicks": int(clicks.sum()),
        "ctr": num(clicks.mean() if rows.size else None),
        "judged": int(judged.size),
        "mean_predicted": num(p.mean() if judged.size else None),
        "observed_rate": num(y.mean() if judged.size else None),
        "ece": num(
            expected_calibration_error(p, y, n_bins=CALIBRATION_BINS) if judged.size else None
        ),
    }


def coalescing_block(result: RunResult) -> dict[str, Any]:
    """Single flight: misses that waited for another request's model call for their key,
    in all and by the version each was assigned to."""
    records = result.monitor.records
    names = [v.name for v in result.versions]
    by_version = np.bincount(
        records.version[records.coalesced].astype(np.int64), minlength=len(names)
    )
    return {
        "coalesced": result.outcome.coalesced,
        "coalesced_rate_of_misses": num(
            result.outcome.coalesced / max(int(np.count_nonzero(records.cache == MISS)), 1)
        ),
        "by_version": {name: int(by_version[v]) for v, name in enumerate(names)},
    }


def update_window(result: RunResult) -> tuple[float, float] | None:
    """``(from_s, to_s)`` of the update window: from the candidate's first exposure to the
    rollout's settling (its promotion or rollback, the later of the two), else to the end of
    the run; None when no user ever saw the candidate."""
    controller = result.controller
    start = controller.first_exposure_s
    if start is None:
        return None
    settled = [t for t in (controller.promote_s, controller.rollback_s) if t is not None]
    end_s = float(result.scenario.traffic.duration or 0.0)
    return float(start), max([*settled, float(start)]) if settled else max(end_s, start)


#: How often the burn-rate alerts are evaluated over the run (simulated seconds).
ALERT_STEP_S = 10.0


def slo_blocks(result: RunResult) -> dict[str, Any]:
    """Per SLO over all traffic: compliance, burn rate and error budget spent during the
    run and since the candidate's first exposure, per version, and each alert rule's firing
    (evaluated every ``ALERT_STEP_S``)."""
    scenario = result.scenario
    records = result.monitor.records
    t_s = result.monitor.t_s  # aligned with the records (every request of the stream)
    names = [v.name for v in result.versions]
    end_s = float(scenario.traffic.duration or (t_s[-1] if t_s.size else 0.0))
    exposed = result.controller.first_exposure_s
    window = update_window(result)
    bounds = [(w[0].t_start_s, w[0].t_end_s) for w in result.monitor.windows if w]
    at = np.arange(ALERT_STEP_S, end_s + ALERT_STEP_S / 2, ALERT_STEP_S)
    out: dict[str, Any] = {}
    for settings in scenario.slos:
        slo = slo_plan(settings)
        good = good_requests(slo, records)
        bad = ~good
        total, n_bad = int(good.size), int(np.count_nonzero(bad))
        since = t_s >= exposed if exposed is not None else np.zeros(t_s.size, bool)
        alerts = []
        for alert in slo.alerts:
            firing = alert_firings(t_s, bad, slo.target, alert, at)
            alerts.append(
                {
                    "long_s": alert.long_s,
                    "short_s": alert.short_s,
                    "burn_rate": alert.rate,
                    "fired": bool(firing.any()),
                    "first_fired_at_s": num(float(at[firing][0]) if firing.any() else None),
                    "firing_s": num(float(np.count_nonzero(firing)) * ALERT_STEP_S),
                }
            )
        per_version = {}
        for v, name in enumerate(names):
            mine = records.version == v
            n = int(np.count_nonzero(mine))
            if n:
                bad_v = int(np.count_nonzero(bad & mine))
                per_version[name] = {
                    "requests": n,
                    "compliance": num(1.0 - bad_v / n),
                    "burn_rate": num(burn_rate(bad_v, n, slo.target)),
                }
        out[slo.name] = {
            "kind": slo.kind,
            "target": slo.target,
            "threshold_ms": settings.threshold_ms,
            "period_s": slo.period_s,
            "requests": total,
            "good": total - n_bad,
            "compliance": num(1.0 - n_bad / total if total else None),
            "burn_rate": num(burn_rate(n_bad, total, slo.target)),
            "budget_spent": num(budget_spent(n_bad, total, slo.target, end_s, slo.period_s)),
            "budget_spent_since_exposure": num(
                budget_spent(
                    int(np.count_nonzero(bad & since)),
                    int(np.count_nonzero(since)),
                    slo.target,
                    end_s - exposed,
                    slo.period_s,
                )
                if exposed is not None
                else None
            ),
            "update_window": None
            if window is None
            else {
                "from_s": num(window[0]),
                "to_s": num(window[1]),
                "budget_spent": num(_spent_between(slo, t_s, bad, *window)),
            },
            "window_budget_spent": [num(_spent_between(slo, t_s, bad, a, b)) for a, b in bounds],
            "alerts": alerts,
            "alerts_fired": sum(a["fired"] for a in alerts),
            "versions": per_version,
        }
    return out


def _spent_between(
    slo: Slo, t_s: np.ndarray, bad: np.ndarray, start_s: float, end_s: float
) -> float:
    """Share of the period's error budget the requests arriving in ``[start_s, end_s)`` spent
    (:func:`sim.slo.budget_spent` over that stretch)."""
    lo, hi = np.searchsorted(t_s, [start_s, end_s], side="left")
    return budget_spent(
        int(np.count_nonzero(bad[lo:hi])), int(hi - lo), slo.target, end_s - start_s, slo.period_s
    )


def resources_block(result: RunResult) -> dict[str, Any]:
    """Replica memory and cost over the run: per version its footprint per replica, its
    replicas, when they ran and what that cost in replica-hours and GB-hours.

    A version's replicas run while it is deployed: the baseline from the start until a
    promotion retires it, the candidate from the start until a rollback removes it, a later
    release of a train from its release time; the others to the end of the run.  Both
    versions' replicas exist during the overlap (blue-green's preview, a canary), which is
    what an update window costs beyond the steady state.
    """
    scenario = result.scenario
    resources = scenario.resources
    assert resources is not None
    controller = result.controller
    end_s = float(scenario.traffic.duration or 0.0)
    starts = {r.name: r.at_s for r in result.prepared.releases[1:]}
    versions: dict[str, Any] = {}
    names = [t.name for t in result.versions]
    replica_hours = gb_hours = 0.0
    for v, table in enumerate(result.versions):
        name = table.name
        settings = scenario.models.get(name) or scenario.models[scenario.rollout.candidate]
        gb = footprint_bytes(table, settings.memory_mb, resources.overhead_mb) / 2**30
        stages = settings.stages or scenario.serving.stages
        replicas = (
            sum(s.replicas for s in stages)
            if stages is not None
            else settings.replicas or scenario.serving.replicas
        )
        start = starts.get(name, 0.0)
        stop = end_s
        if v == 0 and controller.promote_s is not None:
            stop = controller.promote_s
        elif v == 1 and controller.rollback_s is not None:
            stop = controller.rollback_s
        hours = max(stop - start, 0.0) / 3600.0
        trace = result.outcome.autoscalers.get(v)
        if trace is not None:  # the autoscaler's replicas over time, not a fixed count
            seconds = trace.replica_seconds(stop) - trace.replica_seconds(start)
            replicas = max(n for _, n in trace.timeline)
        else:
            seconds = replicas * hours * 3600.0
        replica_hours += seconds / 3600.0
        gb_hours += seconds / 3600.0 * gb
        versions[name] = {
            "footprint_gb": num(gb),
            "footprint": "declared" if settings.memory_mb is not None else "factor tables",
            "replicas": replicas,
            "from_s": num(start),
            "to_s": num(stop),
            "replica_hours": num(seconds / 3600.0),
            "gb_hours": num(seconds / 3600.0 * gb),
        }
    memory = result.outcome.memory
    if memory is not None:
        for v, name in enumerate(names[:2]):
            versions[name]["oom_kills"] = memory.oom_kills[v]
            versions[name]["replica_hours_lost_to_oom"] = num(memory.down_seconds[v] / 3600.0)
    nodes = None
    if memory is not None and resources.node_memory_gb is not None:
        nodes = {
            "nodes": resources.nodes,
            "node_memory_gb": resources.node_memory_gb,
            "restart_delay_s": resources.restart_delay,
            "first_oom_kill_s": num(memory.first_kill_s),
            "peak_gb": [num(b / 2**30) for b in memory.node_peak_bytes],
        }
    return {
        "overhead_mb": resources.overhead_mb,
        "nodes": nodes,
        "versions": versions,
        "replica_hours": num(replica_hours),
        "gb_hours": num(gb_hours),
    }


def autoscaler_block(result: RunResult, v: int) -> dict[str, Any] | None:
    """Version ``v``'s autoscaler: ready replicas over time and how far it scaled."""
    trace = result.outcome.autoscalers.get(v)
    if trace is None:
        return None
    counts = [n for _, n in trace.timeline]
    end_s = float(result.scenario.traffic.duration or 0.0)
    return {
        "min_replicas_seen": min(counts),
        "max_replicas_seen": max(counts),
        "peak_desired": trace.peak_desired,
        "changes": len(counts) - 1,
        "mean_replicas": num(trace.replica_seconds(end_s) / end_s if end_s else None),
        "timeline": [[num(t), n] for t, n in trace.timeline],
    }
