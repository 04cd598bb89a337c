"""Engagement: CTR with confidence intervals, lift between versions, hit@K, sessions, segments.

Definitions (DESIGN.md section 4):

- CTR = clicks / impressions.  Every request is one impression of one list; a request the
  user abandoned (latency over budget) is an impression without a click, so infrastructure
  regressions show up in CTR too.
- hit@K = share of requests whose shown top-K list contains an item the user really
  consumed next (replayed logs).
- Sessions abandoned = share of sessions with at least one abandoned request.

The request log is the simulator's polars frame, one row per request, with at least
``version`` (String), ``clicks`` (0/1), and for sessions ``user``, ``t_s``, ``abandoned``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import must_be
from sim.metrics._checks import (
    BoolArray,
    FloatArray,
    as_binary,
    as_lists,
    require_columns,
    safe_ratio,
    truncate,
    z_value,
)

__all__ = [
    "LiftEstimate",
    "RateEstimate",
    "SegmentDelta",
    "abandonment_table",
    "ctr",
    "ctr_difference",
    "ctr_table",
    "hit_at_k",
    "hit_rate_at_k",
    "segment_ctr",
    "session_table",
    "wilson_interval",
    "worst_segment_delta",
]

# Truth entries compared per block in hit@K: bounds the [block, K] temporary to ~40 MB.
_HIT_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class RateEstimate:
    """A proportion ``successes / trials`` with its Wilson score interval."""

    successes: int
    trials: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class LiftEstimate:
    """Candidate (b) against baseline (a): absolute difference and relative lift with CIs.

    ``difference = ctr_b - ctr_a``; ``relative_lift = ctr_b / ctr_a - 1`` (NaN, with NaN
    bounds, when the baseline has no click).
    """

    ctr_a: float
    ctr_b: float
    difference: float
    difference_ci: tuple[float, float]
    relative_lift: float
    relative_lift_ci: tuple[float, float]
    confidence: float
    method: Literal["delta", "bootstrap"]


@dataclass(frozen=True, slots=True)
class SegmentDelta:
    """The segment where the candidate's CTR falls furthest below the baseline's.

    ``table`` has one row per segment present in both versions with columns
    ``segment, ctr_baseline, ctr_candidate, difference, ci_low, ci_high, relative_lift``,
    sorted by ``difference`` ascending (worst first).
    """

    segment: object
    difference: float
    ci_low: float
    ci_high: float
    table: pl.DataFrame


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, *, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for binomial proportions, vectorized.

    With p̂ = s / n and z = Φ⁻¹((1 + confidence) / 2)::

        centre = (p̂ + z² / 2n) / (1 + z² / n)
        half   = z / (1 + z² / n) · sqrt(p̂ (1 − p̂) / n + z² / 4n²)

    Shapes: ``successes`` and ``trials`` broadcast together; returns ``(low, high)`` of that
    shape, NaN where ``trials == 0``.  Reference: Wilson (1927), JASA 22(158), 209–212.
    """
    z = z_value("wilson_interval", confidence)
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    bad = (s < 0) | (s > n)
    if bad.any():
        raise must_be(
            "wilson_interval",
            "successes",
            "in [0, trials]",
            float(np.broadcast_to(s, bad.shape)[bad][0]),
        )
    p = safe_ratio(s, n)
    n_safe = np.where(n > 0, n, 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n_safe
    centre = (p + z2 / (2.0 * n_safe)) / denom
    half = z / denom * np.sqrt(np.clip(p * (1.0 - p), 0.0, None) / n_safe + z2 / (4.0 * n_safe**2))
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def ctr(clicks: npt.ArrayLike, *, confidence: float = 0.95) -> RateEstimate:
    """CTR = Σ clicks / n over ``clicks`` (0/1, shape [n_requests]) with its Wilson interval."""
    z_value("ctr", confidence)
    c = as_binary("ctr", "clicks", clicks)
    s, n = int(c.sum()), int(c.shape[0])
    low, high = wilson_interval(s, n, confidence=confidence)
    return RateEstimate(s, n, s / n, float(low), float(high), confidence)


def ctr_difference(
    clicks_a: npt.ArrayLike,
    clicks_b: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    method: Literal["delta", "bootstrap"] = "delta",
    rng: np.random.Generator | None = None,
    n_resamples: int = 2000,
) -> LiftEstimate:
    """Difference and relative lift of CTR, version b against version a.

    Shapes: ``clicks_a`` [n_a], ``clicks_b`` [n_b], 0/1 per request.

    ``method="delta"`` (normal intervals; Deng, Knoblich, Lu 2018, "Applying the Delta Method
    in Metric Analytics", KDD), with v_x = p̂_x (1 − p̂_x) / n_x::

        Var(p̂_b − p̂_a)    = v_a + v_b
        Var(p̂_b / p̂_a − 1) ≈ v_b / p̂_a² + p̂_b² v_a / p̂_a⁴

    ``method="bootstrap"`` (percentile intervals over ``n_resamples``, needs ``rng``).  For
    0/1 outcomes, the click count of a resample drawn with replacement is exactly
    Binomial(n, p̂), so each resample costs O(1) instead of O(n).  Resamples whose baseline
    has no click are left out of the lift interval.
    """
    source = "ctr_difference"
    z = z_value(source, confidence)
    a = as_binary(source, "clicks_a", clicks_a)
    b = as_binary(source, "clicks_b", clicks_b)
    na, nb = a.shape[0], b.shape[0]
    pa, pb = float(a.mean()), float(b.mean())
    diff = pb - pa
    lift = pb / pa - 1.0 if pa > 0 else float("nan")
    if method == "delta":
        va, vb = pa * (1 - pa) / na, pb * (1 - pb) / nb
        se_diff = float(np.sqrt(va + vb))
        diff_ci = (diff - z * se_diff, diff + z * se_diff)
        if pa > 0:
            se_lift = float(np.sqrt(vb / pa**2 + pb**2 * va / pa**4))
            lift_ci = (lift - z * se_lift, lift + z * se_lift)
        else:
            lift_ci = (float("nan"), float("nan"))
        return LiftEstimate(pa, pb, diff, diff_ci, lift, lift_ci, confidence, "delta")
    if method != "bootstrap":
        raise must_be(source, "method", "'delta' or 'bootstrap'", method)
    if rng is None:
        raise must_be(source, "rng", "a numpy Generator when method='bootstrap'", rng)
    if not (isinstance(n_resamples, int) and n_resamples >= 100):
        raise must_be(source, "n_resamples", "an integer >= 100", n_resamples)
    ra = rng.binomial(na, pa, size=n_resamples) / na
    rb = rng.binomial(nb, pb, size=n_resamples) / nb
    tail = (1.0 - confidence) / 2.0
    q = np.array([tail, 1.0 - tail])
    d_lo, d_hi = np.quantile(rb - ra, q)
    ok = ra > 0
    if ok.any():
        l_lo, l_hi = np.quantile(rb[ok] / ra[ok] - 1.0, q)
        lift_ci = (float(l_lo), float(l_hi))
    else:
        lift_ci = (float("nan"), float("nan"))
    return LiftEstimate(
        pa, pb, diff, (float(d_lo), float(d_hi)), lift, lift_ci, confidence, "bootstrap"
    )


def _rate_table(
    source: str,
    frame: pl.DataFrame,
    column: str,
    by: Sequence[str],
    names: tuple[str, str, str],
    confidence: float,
) -> pl.DataFrame:
    require_columns(source, frame, (*by, column))
    values = frame[column].cast(pl.Int64)
    bad = values.filter((values < 0) | (values > 1))
    if bad.len():
        raise must_be(source, column, "0 or 1 per request", bad[0])
    trials, successes, rate = names
    counts = (
        frame.group_by(list(by))
        .agg(
            pl.len().cast(pl.Int64).alias(trials),
            pl.col(column).cast(pl.Int64).sum().alias(successes),
        )
        .sort(list(by))
    )
    s = counts[successes].to_numpy().astype(np.float64)
    n = counts[trials].to_numpy().astype(np.float64)
    low, high = wilson_interval(s, n, confidence=confidence)
    return counts.with_columns(
        pl.Series(rate, safe_ratio(s, n)),
        pl.Series("ci_low", low),
        pl.Series("ci_high", high),
    )


def ctr_table(
    frame: pl.DataFrame, *, by: Sequence[str] = ("version",), confidence: float = 0.95
) -> pl.DataFrame:
    """CTR per group with Wilson intervals.

    Returns columns ``*by, impressions, clicks, ctr, ci_low, ci_high``, sorted by ``by``;
    ``ctr = clicks / impressions`` where each request is one impression.
    """
    return _rate_table(
        "ctr_table", frame, "clicks", by, ("impressions", "clicks", "ctr"), confidence
    )


def abandonment_table(
    frame: pl.DataFrame, *, by: Sequence[str] = ("version",), confidence: float = 0.95
) -> pl.DataFrame:
    """Request abandonment rate per group = abandoned requests / requests, Wilson intervals.

    Returns columns ``*by, requests, abandoned, abandonment_rate, ci_low, ci_high``.
    """
    return _rate_table(
        "abandonment_table",
        frame,
        "abandoned",
        by,
        ("requests", "abandoned", "abandonment_rate"),
        confidence,
    )


def hit_at_k(
    shown: npt.ArrayLike,
    truth_ptr: npt.ArrayLike,
    truth_items: npt.ArrayLike,
    *,
    k: int | None = None,
) -> BoolArray:
    """Per request: does the shown top-k list contain an item the user consumed next?

    ``hit[r] = |shown[r, :k] ∩ truth(r)| > 0`` with ``truth(r) =
    truth_items[truth_ptr[r]:truth_ptr[r + 1]]`` (CSR layout, as in ``RequestStream``).

    Shapes: ``shown`` int32 [n, K] (-1 = empty slot), ``truth_ptr`` int64 [n + 1],
    ``truth_items`` int32 [truth_ptr[-1]].  Returns bool [n]; False where the truth is empty.
    """
    source = "hit_at_k"
    lists = truncate(source, as_lists(source, "shown", shown), k)
    ptr = np.asarray(truth_ptr)
    truth = np.asarray(truth_items)
    n = lists.shape[0]
    if ptr.ndim != 1 or ptr.shape[0] != n + 1:
        raise must_be(source, "truth_ptr.shape", f"({n + 1},) for {n} requests", ptr.shape)
    if ptr.dtype.kind not in "iu" or truth.dtype.kind not in "iu" or truth.ndim != 1:
        raise must_be(
            source, "truth_ptr/truth_items", "1-D integer arrays", (ptr.dtype, truth.dtype)
        )
    ptr64 = ptr.astype(np.int64)
    counts = ptr64[1:] - ptr64[:-1]
    if int(ptr[0]) != 0 or (counts < 0).any() or int(ptr[-1]) != truth.shape[0]:
        raise must_be(
            source,
            "truth_ptr",
            f"non-decreasing from 0 to len(truth_items) = {truth.shape[0]}",
            (int(ptr[0]), int(ptr[-1])),
        )
    if truth.size and int(truth.min()) < 0:
        raise must_be(source, "truth_items", "item ids >= 0", int(truth.min()))
    request = np.repeat(np.arange(n, dtype=np.int64), counts)
    hits = np.zeros(n, dtype=np.bool_)
    # Loop over fixed-size blocks of truth entries, not over requests: bounds memory only.
    for start in range(0, truth.shape[0], _HIT_BLOCK):
        req = request[start : start + _HIT_BLOCK]
        block = truth[start : start + _HIT_BLOCK].astype(np.int32, copy=False)
        found = (lists[req] == block[:, None]).any(axis=1)
        hits[req[found]] = True
    return hits


def hit_rate_at_k(
    shown: npt.ArrayLike,
    truth_ptr: npt.ArrayLike,
    truth_items: npt.ArrayLike,
    *,
    k: int | None = None,
    confidence: float = 0.95,
) -> RateEstimate:
    """hit@K = hits / requests with a non-empty truth, with a Wilson interval.

    Requests whose truth is empty (nothing consumed next) cannot be judged and are left out.
    Shapes as in :func:`hit_at_k`.
    """
    z_value("hit_rate_at_k", confidence)
    hits = hit_at_k(shown, truth_ptr, truth_items, k=k)
    judged = np.diff(np.asarray(truth_ptr).astype(np.int64)) > 0
    n = int(judged.sum())
    if n == 0:
        raise must_be("hit_rate_at_k", "truth_ptr", "to give at least one request a truth", 0)
    s = int(hits[judged].sum())
    low, high = wilson_interval(s, n, confidence=confidence)
    return RateEstimate(s, n, s / n, float(low), float(high), confidence)


def session_table(
    frame: pl.DataFrame,
    *,
    by: str = "version",
    gap_s: float = 1800.0,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Clicks per session and sessions abandoned, per version.

    Sessions come from the ``session`` column when the frame has one; otherwise a user's
    session ends after an inactivity gap longer than ``gap_s`` seconds (needs ``user``,
    ``t_s``).  A session whose requests were served by two versions counts once for each.

    Returns columns ``by, sessions, clicks, clicks_per_session, ci_low, ci_high,
    abandoned_sessions, abandoned_fraction``: ``clicks_per_session`` = mean over sessions
    of the session's clicks with a normal interval (mean ± z·sd/√sessions);
    ``abandoned_fraction`` = sessions with at least one abandoned request / sessions.
    """
    source = "session_table"
    z = z_value(source, confidence)
    if not gap_s > 0:
        raise must_be(source, "gap_s", "> 0", gap_s)
    require_columns(source, frame, (by, "clicks", "abandoned"))
    if "session" in frame.columns:
        keyed = frame.select(by, "clicks", "abandoned", pl.col("session").alias("_session"))
    else:
        require_columns(source, frame, ("user", "t_s"))
        ordered = frame.select("user", "t_s", by, "clicks", "abandoned").sort("user", "t_s")
        new_session = (pl.col("user") != pl.col("user").shift(1)) | (
            pl.col("t_s") - pl.col("t_s").shift(1) > gap_s
        )
        keyed = ordered.with_columns(
            new_session.fill_null(True).cast(pl.Int64).cum_sum().alias("_session")
        )
    per_session = keyed.group_by(by, "_session").agg(
        pl.col("clicks").cast(pl.Float64).sum().alias("c"),
        pl.col("abandoned").any().alias("a"),
    )
    out = (
        per_session.group_by(by)
        .agg(
            pl.len().cast(pl.Int64).alias("sessions"),
            pl.col("c").sum().cast(pl.Int64).alias("clicks"),
            pl.col("c").mean().alias("clicks_per_session"),
            pl.col("c").std(ddof=1).fill_null(0.0).alias("_sd"),
            pl.col("a").sum().cast(pl.Int64).alias("abandoned_sessions"),
        )
        .sort(by)
    )
    half = z * pl.col("_sd") / pl.col("sessions").cast(pl.Float64).sqrt()
    return out.with_columns(
        (pl.col("clicks_per_session") - half).alias("ci_low"),
        (pl.col("clicks_per_session") + half).alias("ci_high"),
        (pl.col("abandoned_sessions") / pl.col("sessions")).alias("abandoned_fraction"),
    ).select(
        by,
        "sessions",
        "clicks",
        "clicks_per_session",
        "ci_low",
        "ci_high",
        "abandoned_sessions",
        "abandoned_fraction",
    )


def segment_ctr(
    frame: pl.DataFrame, segment: str, *, version: str = "version", confidence: float = 0.95
) -> pl.DataFrame:
    """CTR with Wilson intervals per segment per version (see :func:`ctr_table`).

    Returns columns ``segment, version, impressions, clicks, ctr, ci_low, ci_high``.
    """
    return ctr_table(frame, by=(segment, version), confidence=confidence)


def worst_segment_delta(
    frame: pl.DataFrame,
    segment: str,
    *,
    baseline: str,
    candidate: str,
    version: str = "version",
    confidence: float = 0.95,
) -> SegmentDelta:
    """Per segment, ``ctr_candidate − ctr_baseline`` with a normal interval; the worst one.

    For each segment s present in both versions: d_s = p̂_c − p̂_b and
    se_s = sqrt(p̂_b(1 − p̂_b)/n_b + p̂_c(1 − p̂_c)/n_c); the worst segment is argmin d_s
    (ranked by the point estimate; its interval says whether the harm is real).
    The intervals are per segment, not adjusted for looking at many segments.
    """
    source = "worst_segment_delta"
    z = z_value(source, confidence)
    table = segment_ctr(frame, segment, version=version, confidence=confidence)
    present = set(table[version].unique().to_list())
    for name, value in (("baseline", baseline), ("candidate", candidate)):
        if value not in present:
            raise must_be(source, name, f"a version in the frame {sorted(present)}", value)
    cols = [segment, "impressions", "ctr"]
    base = table.filter(pl.col(version) == baseline).select(cols)
    cand = table.filter(pl.col(version) == candidate).select(cols)
    both = base.join(cand, on=segment, suffix="_c")
    if both.height == 0:
        raise must_be(source, segment, "shared by both versions in at least one segment", 0)
    pb = both["ctr"].to_numpy()
    pc = both["ctr_c"].to_numpy()
    nb = both["impressions"].to_numpy().astype(np.float64)
    nc = both["impressions_c"].to_numpy().astype(np.float64)
    d = pc - pb
    se = np.sqrt(pb * (1 - pb) / nb + pc * (1 - pc) / nc)
    deltas = pl.DataFrame(
        {
            "segment": both[segment],
            "ctr_baseline": pb,
            "ctr_candidate": pc,
            "difference": d,
            "ci_low": d - z * se,
            "ci_high": d + z * se,
            "relative_lift": safe_ratio(d, pb),
        }
    ).sort("difference")
    worst = deltas.row(0, named=True)
    return SegmentDelta(
        worst["segment"], worst["difference"], worst["ci_low"], worst["ci_high"], deltas
    )
