"""Summary blocks of the serving topology: a version's stages and degraded answers, and the
cache's single-flight counts.  Present only when a scenario uses them, so summaries of
scenarios without stages or coalescing are unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np

from lab.pipeline import RunResult
from reports.numbers import num
from sim.records import BYPASS, MISS

__all__ = ["coalescing_block", "serving_path_block"]


def serving_path_block(result: RunResult, v: int) -> dict[str, Any] | None:
    """Per stage (in path order) what version ``v``'s servers did, and the answers ``v``
    served degraded (by the first stage whose timeout degraded them); None for one pool."""
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
    stages = []
    for k, c in enumerate(counters):
        row: dict[str, Any] = {"name": c.name}
        row.update((key, num(value)) for key, value in c.as_dict().items())
        row["degraded_first_here"] = int(first[k])
        stages.append(row)
    n_degraded = int(np.count_nonzero(degraded >= 0))
    return {
        "stages": stages,
        "answers": served,
        "degraded_answers": n_degraded,
        "degraded_rate": num(n_degraded / served if served else None),
        "degraded_list": "the version's own items re-ordered by popularity (retrieval order)",
    }


def coalescing_block(result: RunResult) -> dict[str, Any]:
    """Single flight: misses that waited for another request's model call for their key."""
    records = result.monitor.records
    return {
        "coalesced": result.outcome.coalesced,
        "coalesced_rate_of_misses": num(
            result.outcome.coalesced / max(int(np.count_nonzero(records.cache == MISS)), 1)
        ),
    }
