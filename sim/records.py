"""Columnar per-request records: one preallocated slot per arrival, never an object each.

Codes (small integers, so the buffers stay a few dozen bytes per request):

    result     0 served (assigned version's list), 1 fallback, 2 dropped, 3 not sent (its
               user had left, ``sim.remembering``), 255 pending
    cache      0 hit, 1 miss, 2 stale (an old or other version's list), 3 bypass (no cache)
    served_by  version index, -1 popularity list, -2 nothing shown
    failure    0 none, 1 timeout, 2 queue full, 3 server error
    shadow     version index mirrored to, -1 none
    degraded   stage index whose timeout degraded the answer, -1 none
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

__all__ = ["CACHE_NAMES", "RESULT_NAMES", "Records"]

SERVED, FALLBACK, DROPPED, ABSENT, PENDING = 0, 1, 2, 3, 255
HIT, MISS, STALE, BYPASS = 0, 1, 2, 3
POPULAR, NOTHING = -1, -2
NO_FAILURE, TIMEOUT, QUEUE_FULL, SERVER_ERROR = 0, 1, 2, 3

RESULT_NAMES = {SERVED: "served", FALLBACK: "fallback", DROPPED: "dropped", ABSENT: "not_sent"}
CACHE_NAMES = {HIT: "hit", MISS: "miss", STALE: "stale", BYPASS: "bypass"}
FAILURE_NAMES = {
    NO_FAILURE: "none",
    TIMEOUT: "timeout",
    QUEUE_FULL: "queue_full",
    SERVER_ERROR: "error",
}


class Records:
    """Per-request result buffers, indexed by the request's position in the stream."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.version = np.full(n, -1, np.int8)
        self.served_by = np.full(n, NOTHING, np.int8)
        self.cache = np.full(n, BYPASS, np.uint8)
        self.result = np.full(n, PENDING, np.uint8)
        self.failure = np.zeros(n, np.uint8)
        self.latency_ms = np.zeros(n, np.float32)
        self.wait_ms = np.zeros(n, np.float32)
        self.shadow = np.full(n, -1, np.int8)
        self.shadow_result = np.full(n, PENDING, np.uint8)
        self.shadow_latency_ms = np.zeros(n, np.float32)
        # Staged serving paths: the first stage whose timeout degraded the answer (-1: none).
        self.degraded = np.full(n, -1, np.int8)
        # Single-flight cache misses: answered by another request's model call for the key.
        self.coalesced = np.zeros(n, np.bool_)
        # Filled by the user model when a window settles (see sim.users).
        self.clicks = np.zeros(n, np.uint8)
        self.click_pos = np.full(n, -1, np.int8)
        self.abandoned = np.zeros(n, np.bool_)
        self.p_click = np.zeros(n, np.float32)
        # Replayed logs: did the shown list hold an item the user consumed next (-1: no truth)?
        self.hit = np.full(n, -1, np.int8)

    def model_answered(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """bool per request in ``idx``: the assigned version's model answered it — a cache miss
        (or no cache) served at the first attempt, so its latency is the model's own (queue wait
        plus service time), not a cache hit's.  Fallbacks, timeouts and cache hits are False.
        """
        cache = self.cache[idx]
        return np.asarray((self.result[idx] == SERVED) & ((cache == MISS) | (cache == BYPASS)))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))

    def to_frame(
        self,
        t_s: np.ndarray,
        user: np.ndarray,
        session: np.ndarray,
        version_names: Sequence[str],
        *,
        stage_names: Mapping[int, Sequence[str]] | None = None,
        coalesce: bool = False,
    ) -> pl.DataFrame:
        """One row per request with readable categorical codes (the ``requests.parquet`` schema).

        With ``stage_names`` (version index -> its path's stage names, in path order; staged
        versions only) a ``degraded`` column names the stage whose timeout first degraded the
        answer, null when it was not degraded; with ``coalesce`` a ``coalesced`` column says
        whether the request waited for another request's model call (single flight).
        Without either, the columns are left out (the schema of runs without stages or
        single flight does not change).
        """
        names = [*version_names, "popular", "none"]
        lookup = pl.Series(names, dtype=pl.String)

        def version_name(codes: np.ndarray) -> pl.Series:
            idx = np.where(codes >= 0, codes, len(version_names) - 1 - codes.astype(np.int64))
            return lookup.gather(idx.astype(np.int64)).cast(pl.Categorical)

        shadow_idx = np.where(self.shadow >= 0, self.shadow, len(version_names) + 1)
        frame = pl.DataFrame(
            {
                "t_s": t_s,
                "user": user,
                "session": session,
                "version": version_name(self.version),
                "served_by": version_name(self.served_by),
                "cache": pl.Series(self.cache).replace_strict(CACHE_NAMES, return_dtype=pl.String),
                "latency_ms": self.latency_ms,
                "wait_ms": self.wait_ms,
                "result": pl.Series(self.result).replace_strict(
                    RESULT_NAMES, return_dtype=pl.String
                ),
                "failure": pl.Series(self.failure).replace_strict(
                    FAILURE_NAMES, return_dtype=pl.String
                ),
                "model_answered": self.model_answered(),
                "clicks": self.clicks,
                "click_pos": self.click_pos,
                "abandoned": self.abandoned,
                "p_click": self.p_click,
                "hit": self.hit,
                "shadow": lookup.gather(shadow_idx.astype(np.int64)).cast(pl.Categorical),
                "shadow_latency_ms": self.shadow_latency_ms,
            }
        )
        extra = []
        if stage_names:
            extra.append(self._degraded_stage(stage_names))
        if coalesce:
            extra.append(pl.Series("coalesced", self.coalesced))
        return frame.with_columns(extra) if extra else frame

    def _degraded_stage(self, stage_names: Mapping[int, Sequence[str]]) -> pl.Series:
        """Per request the name of the stage that first degraded its answer (the path of the
        version whose list was shown), else null."""
        names: list[str | None] = [None]  # code 0: not degraded
        offset = np.zeros(max(stage_names, default=0) + 1, np.int64)
        for v, stages in sorted(stage_names.items()):
            offset[v] = len(names)
            names.extend(stages)
        code = np.zeros(self.n, np.int64)
        hit = (self.degraded >= 0) & (self.served_by >= 0)
        by = self.served_by[hit].astype(np.int64)
        code[hit] = offset[by] + self.degraded[hit].astype(np.int64)
        lookup = pl.Series(names, dtype=pl.String)
        return lookup.gather(code).alias("degraded").cast(pl.Categorical)
