"""Recommendation quality of a finished run, as JSON-ready blocks (DESIGN.md section 4).

Per version: calibration of its click predictions (and genre calibration,
:mod:`reports.genres`), diversity of the lists it showed, stability of its lists against the
baseline's and against the seed-noise floor, engagement with intervals and hit@K
(:mod:`reports.exposure`).  Per analysis window: the monitor's series, ECE and the
candidate's CTR difference.  Per user segment: CTR, abandonment and hit@K by version and the
worst segment (item popularity buckets: :mod:`reports.buckets`).  Per run: the churn users
see when their assigned version changes.

Everything is vectorized (numpy, polars, ``sim.metrics``) and rounded with
:func:`reports.numbers.num`, so each block is a pure function of the run.  List metrics are
computed once per (version, user) row of the top-K tables and weighted by that user's
requests, never once per request.

Choices, each named in ``summary.json`` and the README:

* calibration is judged per *serving* version (the model whose prediction ``p_click`` is)
  on requests whose list was shown and not abandoned (an abandoned list was never examined);
* intra-list diversity uses the true world's item factors, one taste space shared by every
  version, so versions are comparable (each model's own factors live in its own space);
* novelty and average recommended popularity use one popularity for every version: users
  per item in the history before time zero (``prepared.item_popularity``);
* user segments are the run's own (``prepared.user_segment``, the ones rollout targeting
  uses), defined on history length, the interactions before time zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from lab.background import in_background
from lab.pipeline import NOISE_FLOOR, SEGMENTS, RunResult
from reports.exposure import Exposure, HitMethod, exposure
from reports.genres import genre_block, genres_of, history_matrix
from reports.numbers import num, pair
from sim import metrics, wording
from sim.monitor import WindowStats
from sim.stats import Z95

__all__ = [
    "CALIBRATION_BINS",
    "EQUAL_MASS_BINS",
    "RBO_P",
    "SLOPE_MAX_CI_WIDTH",
    "SLOPE_MIN_EFFECTIVE_USERS",
    "RequestColumns",
    "calibration_block",
    "churn_block",
    "diversity_block",
    "engagement_blocks",
    "hit_blocks",
    "hit_rates",
    "quality_blocks",
    "request_windows",
    "segments_block",
    "stability_block",
    "window_ctr_delta",
    "window_ece",
    "window_series",
]

CALIBRATION_BINS = 15
EQUAL_MASS_BINS = 10
#: A calibration slope is reported only when its 95 % interval is at most this wide: an
#: interval of ±0.3 can still tell a calibrated slope (1) from predictions 40 % too spread
#: (0.7); a wider one mostly measures how few users there were (the MovieLens replay's
#: ~20 users with a history give [0.1, 1.1]).
SLOPE_MAX_CI_WIDTH = 0.6
#: ... and when it rests on at least this many users (Kish's effective count of the users
#: holding the slope's information, ``CalibrationSlope.effective_clusters``): a clustered
#: interval from fewer is too narrow (Cameron & Miller 2015 ask for 30-50 clusters).  The
#: MovieLens replay's baseline has 129 users of whom 3.4 hold the slope's information (the
#: rest get the popularity list, one prediction for all): its interval [0.42, 0.85] looked
#: measured and was not.
SLOPE_MIN_EFFECTIVE_USERS = 30
RBO_P = 0.9
POPULAR_CODE, NOTHING_CODE = -1, -2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ItemArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]

CALIBRATION_BASIS = "requests whose list this version served, shown and not abandoned"
DIVERSITY_BASIS = "lists this version served, weighted by requests"
FACTORS_BASIS = "true world item factors"
POPULARITY_BASIS = "users per item in the history before time zero"
CHURN_BASIS = "assigned version, consecutive requests of a user by arrival time"
SEGMENT_BASIS = (
    "history length (interactions before time zero): cold < 5, heavy >= the 75th percentile "
    "of the other users, light in between; the segments rollout targeting uses"
)


@dataclass(frozen=True, slots=True)
class RequestColumns:
    """The request frame's columns as numpy arrays; versions as codes into ``names``.

    user       int64   [n]
    version    int64   [n]  assigned version (index into ``names``)
    served_by  int64   [n]  whose list was shown: index into ``names``, -1 the popularity
                            list, -2 nothing shown
    clicks     int64   [n]  0/1
    p_click    float64 [n]  predicted probability of a click on the shown list
    abandoned  bool    [n]
    t_s        float64 [n]  arrival time (None when not needed)
    click_pos  int64   [n]  position clicked, -1 none (None when not needed)
    hit        int64   [n]  replayed logs' hit@K: -1 without truth, else 0/1 (None: no column)
    """

    names: tuple[str, ...]
    user: IntArray
    version: IntArray
    served_by: IntArray
    clicks: IntArray
    p_click: FloatArray
    abandoned: BoolArray
    t_s: FloatArray | None = None
    click_pos: IntArray | None = None
    hit: IntArray | None = None

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, names: Sequence[str]) -> RequestColumns:
        codes = {name: i for i, name in enumerate(names)}
        codes.update(popular=POPULAR_CODE, none=NOTHING_CODE)

        def coded(column: str) -> IntArray:
            series = (
                frame[column]
                .cast(pl.String)
                .replace_strict(codes, default=NOTHING_CODE, return_dtype=pl.Int64)
            )
            return np.asarray(series.to_numpy(), dtype=np.int64)

        return cls(
            names=tuple(names),
            user=np.asarray(frame["user"].to_numpy(), dtype=np.int64),
            version=coded("version"),
            served_by=coded("served_by"),
            clicks=np.asarray(frame["clicks"].to_numpy(), dtype=np.int64),
            p_click=np.asarray(frame["p_click"].to_numpy(), dtype=np.float64),
            abandoned=np.asarray(frame["abandoned"].to_numpy(), dtype=np.bool_),
            t_s=_optional(frame, "t_s", np.float64),
            click_pos=_optional(frame, "click_pos", np.int64),
            hit=_optional(frame, "hit", np.int64),
        )


def _optional(frame: pl.DataFrame, column: str, dtype: type[np.generic]) -> Any:
    return np.asarray(frame[column].to_numpy(), dtype=dtype) if column in frame.columns else None


def _weighted_mean(values: FloatArray, weights: FloatArray) -> float | None:
    keep = np.isfinite(values) & (weights > 0)
    if not keep.any():
        return None
    return float(np.average(values[keep], weights=weights[keep]))


# --- calibration ---------------------------------------------------------------------------


def _bins(diagram: metrics.ReliabilityDiagram) -> list[dict[str, Any]]:
    """The non-empty bins of a reliability diagram as JSON rows."""
    return [
        {
            "lower": num(diagram.lower[b]),
            "upper": num(diagram.upper[b]),
            "count": int(diagram.count[b]),
            "mean_predicted": num(diagram.mean_predicted[b]),
            "observed_rate": num(diagram.observed_rate[b]),
        }
        for b in np.flatnonzero(diagram.count > 0)
    ]


def calibration_block(
    p_click: npt.ArrayLike,
    clicks: npt.ArrayLike,
    *,
    users: npt.ArrayLike | None = None,
    n_bins: int = CALIBRATION_BINS,
) -> dict[str, Any]:
    """How well predicted click probabilities match observed clicks.

    * ``ece``: over ``n_bins`` equal-width bins (DESIGN.md's definition), Σ_b |B_b| / n ·
      |mean predicted in B_b − observed click rate in B_b|
      (:func:`sim.metrics.expected_calibration_error`), with ``bins`` its non-empty bins;
    * ``ece_equal_mass``: the same over ``EQUAL_MASS_BINS`` bins of equal count (edges at
      the predictions' quantiles, ties kept together), with ``bins_equal_mass`` — the
      reliability diagram, informative when all predictions are small;
    * ``slope``, ``slope_ci95``, ``intercept``: logistic recalibration logit P(click) =
      intercept + slope · logit(p̂) (:func:`sim.metrics.calibration_slope`); 1 and 0 when
      calibrated, ≤ 0 when higher predictions get fewer clicks; the interval is clustered
      by ``users [n]`` (one user's requests are correlated) when given, and
      ``slope_effective_users`` says how many users its information rests on.  ``slope``
      and ``intercept`` are null (not measured, with a warning) when the interval is wider
      than :data:`SLOPE_MAX_CI_WIDTH` or unknown, or rests on fewer than
      :data:`SLOPE_MIN_EFFECTIVE_USERS` users; ``slope_ci95`` is reported either way;
    * ``mean_predicted`` against ``observed_rate`` over all n: calibration in the large;
      ``prediction_range``: the smallest and largest prediction;
    * ``warnings``: :func:`sim.wording.calibration_warnings` (slope not measured; slope
      ≤ 0; predictions spanning less than one equal-width bin).

    Shapes: ``p_click`` [n] in [0, 1], ``clicks`` [n] 0/1.
    """
    p = np.asarray(p_click, dtype=np.float64)
    y = np.asarray(clicks, dtype=np.float64)
    block: dict[str, Any] = {
        "basis": CALIBRATION_BASIS,
        "requests": int(p.shape[0]),
        "n_bins": n_bins,
        "n_bins_equal_mass": EQUAL_MASS_BINS,
    }
    if p.shape[0] == 0:
        return {
            **block,
            "ece": None,
            "ece_equal_mass": None,
            "slope": None,
            "slope_ci95": [None, None],
            "slope_users": None,
            "slope_effective_users": None,
            "intercept": None,
            "mean_predicted": None,
            "observed_rate": None,
            "prediction_range": [None, None],
            "bins": [],
            "bins_equal_mass": [],
            "warnings": [],
        }
    fit = metrics.calibration_slope(p, y, groups=users)
    measured = fit.measured(SLOPE_MAX_CI_WIDTH, SLOPE_MIN_EFFECTIVE_USERS)
    slope = fit.slope if measured else None
    span = float(p.max() - p.min())
    return {
        **block,
        "ece": num(metrics.expected_calibration_error(p, y, n_bins=n_bins)),
        "ece_equal_mass": num(
            metrics.expected_calibration_error(p, y, n_bins=EQUAL_MASS_BINS, strategy="quantile")
        ),
        "slope": num(slope),
        "slope_ci95": pair(fit.slope_ci_low, fit.slope_ci_high),
        "slope_users": fit.clusters,
        "slope_effective_users": num(fit.effective_clusters, 1),
        "intercept": num(fit.intercept) if measured else None,
        "mean_predicted": num(p.mean()),
        "observed_rate": num(y.mean()),
        "prediction_range": pair(p.min(), p.max()),
        "bins": _bins(metrics.reliability_diagram(p, y, n_bins=n_bins)),
        "bins_equal_mass": _bins(
            metrics.reliability_diagram(p, y, n_bins=EQUAL_MASS_BINS, strategy="quantile")
        ),
        "warnings": wording.calibration_warnings(
            slope,
            span,
            1.0 / n_bins,
            requests=int(p.shape[0]),
            slope_ci95=(num(fit.slope_ci_low), num(fit.slope_ci_high)),
            max_slope_ci_width=SLOPE_MAX_CI_WIDTH,
            slope_effective_users=fit.effective_clusters,
            min_effective_users=SLOPE_MIN_EFFECTIVE_USERS,
        ),
    }


# --- diversity -----------------------------------------------------------------------------


def _coverage_and_gini(lists: ItemArray, weights: FloatArray, n_items: int) -> dict[str, Any]:
    exposure = metrics.exposure_counts(lists, n_items, weights=weights)
    shown = exposure > 0
    return {
        "catalogue_coverage": num(shown.sum() / n_items),
        "exposure_gini": num(metrics.gini(exposure)) if shown.any() else None,
    }


def diversity_block(
    lists: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    item_factors: npt.ArrayLike,
    popularity: npt.ArrayLike,
) -> dict[str, Any]:
    """Diversity and popularity bias of the lists a version showed.

    Shapes: ``lists`` int32 [n, K] (one row per user, -1 = empty slot), ``weights`` [n]
    (requests that showed the row), ``item_factors`` [n_items, f], ``popularity`` [n_items].

    * ``intra_list_diversity``: request-weighted mean over lists of the mean pairwise
      (1 − cosine) of item factors;
    * ``catalogue_coverage``: distinct items shown / n_items;
    * ``exposure_gini``: Gini of request-weighted item exposure over the whole catalogue;
    * ``novelty_bits``: request-weighted mean of −log2(popularity share), add-one smoothed;
    * ``average_recommended_popularity``: request-weighted mean popularity of shown items.
    """
    table = np.asarray(lists, dtype=np.int32)
    w = np.asarray(weights, dtype=np.float64)
    factors = np.asarray(item_factors, dtype=np.float64)
    pop = np.asarray(popularity, dtype=np.float64)
    n_items = int(factors.shape[0])
    block: dict[str, Any] = {
        "basis": DIVERSITY_BASIS,
        "factors": FACTORS_BASIS,
        "popularity": POPULARITY_BASIS,
        "lists": int(table.shape[0]),
        "impressions": int(w.sum()),
    }
    if table.shape[0] == 0 or not (table >= 0).any():
        return {
            **block,
            "intra_list_diversity": None,
            "catalogue_coverage": None,
            "exposure_gini": None,
            "novelty_bits": None,
            "average_recommended_popularity": None,
        }
    ild = metrics.intra_list_diversity(table, factors)
    novelty = metrics.novelty(table, pop, pseudo_count=1.0)
    arp = metrics.average_recommended_popularity(table, pop)
    return {
        **block,
        "intra_list_diversity": num(_weighted_mean(ild, w)),
        **_coverage_and_gini(table, w, n_items),
        "novelty_bits": num(_weighted_mean(novelty, w)),
        "average_recommended_popularity": num(_weighted_mean(arp, w)),
    }


# --- stability -----------------------------------------------------------------------------


def _overlap(a: ItemArray, b: ItemArray, p: float) -> tuple[FloatArray, dict[str, Any]]:
    """Per-user Jaccard@K and the JSON means of Jaccard@K, RBO and identical lists."""
    jaccard = metrics.jaccard_at_k(a, b)
    rbo = metrics.rank_biased_overlap(a, b, p=p)
    return jaccard, {
        "jaccard_at_k": num(jaccard.mean()),
        "rbo": num(rbo.mean()),
        "identical_lists": num((a == b).all(axis=1).mean()),
    }


def stability_block(
    baseline_lists: npt.ArrayLike,
    lists: npt.ArrayLike,
    *,
    against: str,
    p: float = RBO_P,
    floor_lists: npt.ArrayLike | None = None,
    floor_name: str = NOISE_FLOOR,
) -> dict[str, Any]:
    """How far a version's lists are from the baseline's for the same users.

    Row r of both tables is the same user (every user in the traffic once).  Means over
    users of Jaccard@K (set overlap) and extrapolated RBO with persistence ``p`` (rank-aware
    overlap, top ranks weigh most); ``identical_lists`` is the share of users whose two
    lists are equal item for item.  Shapes: int32 [n_users, K], -1 trailing empty slots.

    ``floor_lists`` (same rows) are the baseline retrained with another seed: ``noise_floor``
    gives the same three numbers for baseline against it — how far lists move from training
    noise alone — with a 95 % normal interval of its mean Jaccard@K over users and a
    warning when it is low (:func:`sim.wording.noise_floor_warning`), and
    ``relative_to_noise_floor`` reads this version against that floor
    (:func:`sim.metrics.relative_to_noise_floor`, per-user paired): ``jaccard_difference``
    = mean Jaccard(version) − mean Jaccard(floor) with a 95 % interval (below 0: the version
    moves lists more than seed noise does), ``change_ratio`` = (1 − J_version) /
    (1 − J_floor) (1: as much change as seed noise; null when the floor changes nothing).
    """
    a = np.asarray(baseline_lists, dtype=np.int32)
    b = np.asarray(lists, dtype=np.int32)
    block: dict[str, Any] = {"against": against, "users": int(a.shape[0]), "k": int(a.shape[1])}
    empty = {"jaccard_at_k": None, "rbo": None, "identical_lists": None}
    if a.shape[0] == 0:
        return {
            **block,
            **empty,
            "rbo_p": p,
            "noise_floor": None,
            "relative_to_noise_floor": None,
        }
    jaccard, means = _overlap(a, b, p)
    out = {**block, **means, "rbo_p": p, "noise_floor": None, "relative_to_noise_floor": None}
    if floor_lists is not None:
        floor = np.asarray(floor_lists, dtype=np.int32)
        floor_jaccard, floor_means = _overlap(a, floor, p)
        half = (
            Z95 * float(floor_jaccard.std(ddof=1)) / np.sqrt(floor_jaccard.size)
            if floor_jaccard.size > 1
            else float("nan")
        )
        mean = float(floor_jaccard.mean())
        warning = wording.noise_floor_warning(mean, int(a.shape[1]))
        out["noise_floor"] = {
            "against": floor_name,
            **floor_means,
            "jaccard_at_k_ci95": pair(mean - half, mean + half),
            "warnings": [] if warning is None else [warning],
        }
        versus = metrics.relative_to_noise_floor(jaccard, floor_jaccard)
        out["relative_to_noise_floor"] = {
            "jaccard_difference": num(versus.difference),
            "jaccard_difference_ci95": pair(versus.ci_low, versus.ci_high),
            "change_ratio": num(versus.change_ratio),
        }
    return out


def churn_block(
    user: npt.ArrayLike,
    t_s: npt.ArrayLike,
    version: npt.ArrayLike,
    tables: Sequence[npt.ArrayLike],
    names: Sequence[str],
) -> dict[str, Any]:
    """What users see when their assigned version changes between consecutive requests.

    Requests are ordered by arrival within a user; a change is a request whose assigned
    version differs from the user's previous request's.  Per change, churn = 1 − |A ∩ B| /
    max(|A|, |B|) of the two versions' lists for that user
    (:func:`sim.metrics.version_change_churn`).  ``users`` counts users with at least two
    requests (the only ones whose version can change); ``share_changed`` = users with a
    change / ``users``; ``mean_churn`` averages, over the users with a change, the mean churn
    of their changes; ``by_pair`` lists changes and mean churn per (from, to) version.
    Shapes: ``user``, ``t_s``, ``version`` (codes into ``names``) [n]; ``tables`` int32
    [n_users, K], one per name.
    """
    u = np.asarray(user, dtype=np.int64)
    codes = np.asarray(version, dtype=np.int64)
    requests = np.bincount(u) if u.size else np.zeros(0, np.int64)
    block: dict[str, Any] = {
        "basis": CHURN_BASIS,
        "users": int((requests >= 2).sum()),
        "users_changed": 0,
        "share_changed": None,
        "changes": 0,
        "mean_churn": None,
        "by_pair": [],
    }
    if u.size == 0:
        return block
    frame = pl.DataFrame(
        {
            "user": u,
            "t_s": np.asarray(t_s, dtype=np.float64),
            "version": pl.Series(list(names), dtype=pl.String).gather(codes),
        }
    )
    changes = metrics.version_change_churn(frame, dict(zip(names, tables, strict=True)))
    block["share_changed"] = num(0.0) if block["users"] else None
    if changes.height == 0:
        return block
    per_user = changes.group_by("user").agg(pl.col("churn").mean())
    pairs = (
        changes.group_by("from_version", "to_version")
        .agg(pl.len().alias("changes"), pl.col("churn").mean().alias("mean_churn"))
        .sort("from_version", "to_version")
    )
    return {
        **block,
        "users_changed": per_user.height,
        "share_changed": num(per_user.height / block["users"]),
        "changes": changes.height,
        "mean_churn": num(per_user["churn"].to_numpy().mean()),
        "by_pair": [
            {
                "from": r["from_version"],
                "to": r["to_version"],
                "changes": int(r["changes"]),
                "mean_churn": num(r["mean_churn"]),
            }
            for r in pairs.iter_rows(named=True)
        ],
    }


# --- engagement ----------------------------------------------------------------------------


def engagement_blocks(
    frame: pl.DataFrame, names: Sequence[str], *, baseline: str
) -> dict[str, dict[str, Any]]:
    """Per assigned version: sessions, clicks per session, abandonment, CTR lift.

    * ``clicks_per_session``: mean clicks over the version's sessions with a normal 95 %
      interval (:func:`sim.metrics.session_table`);
    * ``abandon_rate_ci95``: Wilson interval of abandoned requests / requests;
    * ``abandoned_sessions_fraction``: sessions with at least one abandoned request;
    * ``ctr_vs_baseline``: CTR difference and relative lift against the baseline with delta-
      method 95 % intervals (None for the baseline itself).

    ``frame`` needs ``version``, ``session``, ``clicks``, ``abandoned``.
    """
    small = frame.select(
        pl.col("version").cast(pl.String),
        "session",
        pl.col("clicks").cast(pl.Int64),
        "abandoned",
    )
    out: dict[str, dict[str, Any]] = {}
    empty: dict[str, Any] = {
        "sessions": 0,
        "clicks_per_session": None,
        "clicks_per_session_ci95": [None, None],
        "abandoned_sessions_fraction": None,
        "abandon_rate_ci95": [None, None],
        "ctr_vs_baseline": None,
    }
    if small.height == 0:
        return {name: dict(empty) for name in names}
    sessions = {r["version"]: r for r in metrics.session_table(small).iter_rows(named=True)}
    abandon = {r["version"]: r for r in metrics.abandonment_table(small).iter_rows(named=True)}
    clicks = {name: small.filter(pl.col("version") == name)["clicks"].to_numpy() for name in names}
    for name in names:
        block = dict(empty)
        s = sessions.get(name)
        if s is not None:
            block.update(
                sessions=int(s["sessions"]),
                clicks_per_session=num(s["clicks_per_session"]),
                clicks_per_session_ci95=pair(s["ci_low"], s["ci_high"]),
                abandoned_sessions_fraction=num(s["abandoned_fraction"]),
            )
        a = abandon.get(name)
        if a is not None:
            block["abandon_rate_ci95"] = pair(a["ci_low"], a["ci_high"])
        if name != baseline and clicks[name].size and clicks[baseline].size:
            lift = metrics.ctr_difference(clicks[baseline], clicks[name])
            block["ctr_vs_baseline"] = {
                "against": baseline,
                "difference": num(lift.difference),
                "difference_ci95": pair(*lift.difference_ci),
                "relative_lift": num(lift.relative_lift),
                "relative_lift_ci95": pair(*lift.relative_lift_ci),
            }
        out[name] = block
    return out


def hit_rates(
    hit: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int, *, method: HitMethod
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """hit@K per group: (judged requests, rate, 95 % low, 95 % high), each [n_groups].

    ``hit`` [n] is 0/1 (``observed``: Wilson interval) or a probability (``expected``:
    normal interval of the mean over requests, which measures how much the hit probability
    varies between the requests, not click noise); NaN rows are not judged.  ``groups`` [n]
    are codes in [0, n_groups); other codes are ignored.  Empty groups give NaN.
    """
    h = np.asarray(hit, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    keep = np.isfinite(h) & (g >= 0) & (g < n_groups)
    n = np.bincount(g[keep], minlength=n_groups)
    total = np.bincount(g[keep], weights=h[keep], minlength=n_groups)
    rate = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    if method == "observed":
        low, high = metrics.wilson_interval(np.rint(total), n)
        return n, rate, np.asarray(low), np.asarray(high)
    squares = np.bincount(g[keep], weights=h[keep] ** 2, minlength=n_groups)
    variance = np.where(n > 1, (squares - n * rate**2) / np.maximum(n - 1, 1), np.nan)
    half = Z95 * np.sqrt(np.maximum(variance, 0.0) / np.maximum(n, 1))
    return n, rate, rate - half, rate + half


def hit_blocks(
    hit: npt.ArrayLike | None,
    version: npt.ArrayLike,
    names: Sequence[str],
    *,
    method: HitMethod | None,
    basis: str | None,
    k: int,
) -> dict[str, dict[str, Any] | None]:
    """hit@K by assigned version (intention to treat, like CTR); None without truth.

    Each block: ``method`` (``observed`` or ``expected``, see :mod:`reports.exposure`),
    ``basis``, ``k``, ``requests`` judged, ``rate`` and ``ci95``.
    """
    if hit is None or method is None:
        return {name: None for name in names}
    n, rate, low, high = hit_rates(hit, version, len(names), method=method)
    return {
        name: {
            "method": method,
            "basis": basis,
            "k": k,
            "requests": int(n[v]),
            "rate": num(rate[v]),
            "ci95": pair(low[v], high[v]),
        }
        for v, name in enumerate(names)
    }


# --- windows -------------------------------------------------------------------------------


def window_series(windows: Sequence[Sequence[WindowStats]], names: Sequence[str]) -> dict[str, Any]:
    """The monitor's analysis windows as per-version series (one entry per window).

    ``t_start_s``/``t_end_s`` bound each window in simulated seconds; per version
    ``requests``, ``latency_p99_ms``, ``ctr`` (clicks / requests) and ``cache_hit_rate``
    (hits / lookups); null where the window has no requests (or no cache lookups).
    """
    series: dict[str, dict[str, list[Any]]] = {
        name: {"requests": [], "latency_p99_ms": [], "ctr": [], "cache_hit_rate": []}
        for name in names
    }
    for window in windows:
        by_name = {w.version: w for w in window}
        for name in names:
            w = by_name.get(name)
            s = series[name]
            n = w.requests if w is not None else 0
            s["requests"].append(n)
            s["latency_p99_ms"].append(num(w.latency_p99_ms) if w is not None and n else None)
            s["ctr"].append(num(w.clicks / n) if w is not None and n else None)
            lookups = w.cache_lookups if w is not None else 0
            s["cache_hit_rate"].append(
                num(w.cache_hits / lookups) if w is not None and lookups else None
            )
    return {
        "t_start_s": [num(w[0].t_start_s) if w else None for w in windows],
        "t_end_s": [num(w[0].t_end_s) if w else None for w in windows],
        "versions": series,
    }


def request_windows(windows: Sequence[Sequence[WindowStats]], n_requests: int) -> IntArray:
    """The analysis window of every request [n] (-1: in none), as the monitor cut them.

    The monitor settles requests in arrival order, each window a contiguous range of
    request indices, and counts each request once under its assigned version; so window w
    holds the next Σ_v requests_wv requests after the earlier windows'.
    """
    sizes = np.array([sum(s.requests for s in window) for window in windows], dtype=np.int64)
    ends = np.cumsum(sizes)
    w = np.searchsorted(ends, np.arange(n_requests), side="right")
    return np.where(w < len(windows), w, -1).astype(np.int64)


def window_ece(
    columns: RequestColumns,
    window: npt.ArrayLike,
    n_windows: int,
    *,
    n_bins: int = CALIBRATION_BINS,
) -> list[list[float | int | None]]:
    """ECE per analysis window and serving version: ``[n_versions][n_windows]``.

    The calibration block's basis and bins (requests whose list the version served, shown
    and not abandoned; ``n_bins`` equal-width bins, right-closed), split by ``window`` [n]
    (:func:`request_windows`; -1 rows are left out).  All windows and versions at once: one
    ``bincount`` over (window, version, bin) keys.
    ECE_wv = Σ_b |Σ_{i ∈ B} p_i − Σ_{i ∈ B} y_i| / n_wv.  Null where n_wv = 0.
    """
    n_versions = len(columns.names)
    w = np.asarray(window, dtype=np.int64)
    keep = (
        (w >= 0)
        & (w < n_windows)
        & (columns.served_by >= 0)
        & (columns.served_by < n_versions)
        & ~columns.abandoned
    )
    p = columns.p_click[keep]
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.searchsorted(inner, p, side="left")
    key = (w[keep] * n_versions + columns.served_by[keep]) * n_bins + bins
    size = n_windows * n_versions * n_bins
    sum_p = np.bincount(key, weights=p, minlength=size).reshape(-1, n_bins)
    sum_y = np.bincount(key, weights=columns.clicks[keep], minlength=size).reshape(-1, n_bins)
    count = np.bincount(key, minlength=size).reshape(-1, n_bins).sum(axis=1)
    ece = np.abs(sum_p - sum_y).sum(axis=1) / np.maximum(count, 1)
    table = np.where(count > 0, ece, np.nan).reshape(n_windows, n_versions)
    return [[num(x) for x in table[:, v]] for v in range(n_versions)]


def window_ctr_delta(
    windows: Sequence[Sequence[WindowStats]], *, baseline: str, candidate: str
) -> dict[str, Any]:
    """Candidate − baseline CTR per analysis window (assigned versions), 95 % normal interval.

    d_w = c_c / n_c − c_b / n_b, se_w = sqrt(p̂_b (1 − p̂_b) / n_b + p̂_c (1 − p̂_c) / n_c)
    (the delta method of :func:`sim.metrics.ctr_difference`); null where a version has no
    request in the window.
    """
    diffs: list[float | int | None] = []
    cis: list[list[float | int | None]] = []
    for window in windows:
        by_name = {w.version: w for w in window}
        b, c = by_name.get(baseline), by_name.get(candidate)
        if b is None or c is None or not b.requests or not c.requests:
            diffs.append(None)
            cis.append([None, None])
            continue
        pb, pc = b.clicks / b.requests, c.clicks / c.requests
        se = float(np.sqrt(pb * (1 - pb) / b.requests + pc * (1 - pc) / c.requests))
        d = pc - pb
        diffs.append(num(d))
        cis.append(pair(d - Z95 * se, d + Z95 * se))
    return {
        "against": baseline,
        "candidate": candidate,
        "difference": diffs,
        "difference_ci95": cis,
    }


# --- segments ------------------------------------------------------------------------------


def _count_ranges(segment: npt.NDArray[np.integer[Any]], counts: IntArray, n: int) -> list[str]:
    """The range of history lengths per segment code, over the users that have it."""
    out = []
    for code in range(n):
        mine = counts[segment == code]
        out.append(f"{int(mine.min())}-{int(mine.max())} interactions" if mine.size else "no users")
    return out


def segments_block(
    columns: RequestColumns,
    user_segment: npt.ArrayLike,
    history_counts: npt.ArrayLike,
    *,
    baseline: str,
    candidate: str,
    names: Sequence[str] = SEGMENTS,
    hit: npt.ArrayLike | None = None,
    hit_method: HitMethod | None = None,
) -> dict[str, Any]:
    """CTR by user segment and assigned version, and the segment the candidate hurts most.

    Each (segment, version) cell also has ``abandon_rate`` (abandoned requests / requests)
    and, given per-request ``hit`` [n] (see :mod:`reports.exposure`), ``hit_at_k`` and
    ``hit_at_k_ci95`` (:func:`hit_rates`; null without truth).

    ``user_segment`` int [n_users] indexes ``names``; ``history_counts`` int [n_users] is each
    user's history length (used only to describe the segments: ``rules`` gives the range of
    history lengths in each).  Per segment and version: impressions, clicks, CTR with a
    Wilson 95 % interval; per segment the candidate − baseline CTR difference with a normal
    95 % interval; ``worst`` is the segment with the lowest difference
    (:func:`sim.metrics.worst_segment_delta`; intervals are per segment, not adjusted for
    looking at several).
    """
    segment = np.asarray(user_segment).astype(np.int64)
    counts = np.asarray(history_counts, dtype=np.int64)
    in_traffic = np.zeros(segment.shape[0], dtype=np.bool_)
    in_traffic[columns.user] = True
    users = np.bincount(segment[in_traffic], minlength=len(names))
    block: dict[str, Any] = {
        "basis": SEGMENT_BASIS,
        "rules": dict(zip(names, _count_ranges(segment, counts, len(names)), strict=True)),
        "baseline": baseline,
        "candidate": candidate,
        "by_segment": {},
        "worst": None,
    }
    if columns.user.size == 0:
        return block
    frame = pl.DataFrame(
        {
            "segment": pl.Series(names, dtype=pl.String).gather(segment[columns.user]),
            "version": pl.Series(columns.names, dtype=pl.String).gather(columns.version),
            "clicks": columns.clicks,
        }
    )
    table = metrics.segment_ctr(frame, "segment")
    n_versions = len(columns.names)
    cell = segment[columns.user] * n_versions + columns.version
    cells = len(names) * n_versions
    abandon = _ratio(
        np.bincount(cell, weights=columns.abandoned, minlength=cells),
        np.bincount(cell, minlength=cells),
    )
    hits: tuple[Any, ...] | None = None
    if hit is not None and hit_method is not None:
        hits = hit_rates(hit, cell, cells, method=hit_method)
    deltas: dict[str, dict[str, Any]] = {}
    versions_present = set(frame["version"].unique().to_list())
    if (
        {baseline, candidate} <= versions_present
        and baseline != candidate
        and _both_in_one(frame, "segment", baseline, candidate)
    ):
        delta = metrics.worst_segment_delta(
            frame, "segment", baseline=baseline, candidate=candidate
        )
        for row in delta.table.iter_rows(named=True):
            deltas[row["segment"]] = {
                "difference": num(row["difference"]),
                "difference_ci95": pair(row["ci_low"], row["ci_high"]),
                "relative_lift": num(row["relative_lift"]),
            }
        block["worst"] = {"segment": delta.segment, **deltas[str(delta.segment)]}
    for code, name in enumerate(names):
        rows = table.filter(pl.col("segment") == name)
        block["by_segment"][name] = {
            "users": int(users[code]),
            "requests": int(rows["impressions"].sum()),
            "versions": {
                r["version"]: {
                    "impressions": int(r["impressions"]),
                    "clicks": int(r["clicks"]),
                    "ctr": num(r["ctr"]),
                    "ctr_ci95": pair(r["ci_low"], r["ci_high"]),
                    **_cell_extras(
                        code * n_versions + columns.names.index(r["version"]), abandon, hits
                    ),
                }
                for r in rows.iter_rows(named=True)
            },
            "candidate_vs_baseline": deltas.get(name),
        }
    return block


def _both_in_one(frame: pl.DataFrame, segment: str, baseline: str, candidate: str) -> bool:
    """Some segment holds requests of both versions (a very short run may have none)."""
    seen = frame.filter(pl.col("version").is_in([baseline, candidate])).group_by(segment)
    return bool((seen.agg(pl.col("version").n_unique())["version"] == 2).any())


def _ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    num_ = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    return np.where(den > 0, num_ / np.maximum(den, 1.0), np.nan)


def _cell_extras(index: int, abandon: FloatArray, hits: tuple[Any, ...] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"abandon_rate": num(abandon[index])}
    if hits is None:
        out.update(hit_at_k=None, hit_at_k_ci95=[None, None])
    else:
        _, rate, low, high = hits
        out.update(hit_at_k=num(rate[index]), hit_at_k_ci95=pair(low[index], high[index]))
    return out


# --- composition ---------------------------------------------------------------------------


def _served_users(served: IntArray, n_users: int) -> tuple[IntArray, FloatArray]:
    """The distinct users in ``served`` (ascending) and their request counts."""
    counts = np.bincount(served, minlength=n_users)
    users = np.flatnonzero(counts)
    return users, counts[users].astype(np.float64)


def quality_blocks(
    result: RunResult,
    columns: RequestColumns | None = None,
    shown: Exposure | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``quality`` block of every version: calibration, genre calibration, diversity,
    stability (with the seed-noise floor when the run trained one), engagement with hit@K.

    ``shown`` is :func:`reports.exposure.exposure` of the run (computed when not given).
    """
    prepared = result.prepared
    scenario = result.scenario
    names = [t.name for t in result.versions]
    cols = columns if columns is not None else RequestColumns.from_frame(result.requests, names)
    seen = shown if shown is not None else exposure(result, cols.user, cols.served_by, cols.hit)
    n_users = prepared.world.n_users
    baseline = scenario.rollout.baseline
    tables: Mapping[str, ItemArray] = {t.name: t.items for t in result.versions}
    popularity = prepared.item_popularity
    traffic_users = np.flatnonzero(np.bincount(cols.user, minlength=n_users))
    all_requests = np.bincount(cols.user, minlength=n_users)[traffic_users].astype(np.float64)
    judged = [(cols.served_by == v) & ~cols.abandoned for v in range(len(names))]

    def calibration_blocks() -> list[dict[str, Any]]:
        return [
            calibration_block(cols.p_click[j], cols.clicks[j], users=cols.user[j]) for j in judged
        ]

    # Logistic fits over every judged request: numpy that releases the GIL, so they run on
    # another core while the blocks below are built (pure functions: no number changes).
    calibrations = in_background(calibration_blocks, name="calibration")
    engagement = engagement_blocks(result.requests, names, baseline=baseline)
    hits = hit_blocks(
        seen.hit,
        cols.version,
        names,
        method=seen.method,
        basis=seen.basis,
        k=scenario.users.list_size,
    )
    genres, genre_basis = genres_of(prepared)
    history = history_matrix(
        prepared.history_users, prepared.history_items, n_users, prepared.world.n_items
    )
    floor = prepared.noise_floor_items
    floor_lists = None if floor is None else floor[traffic_users]
    parts: dict[str, dict[str, Any]] = {}
    for v, name in enumerate(names):
        served = cols.served_by == v
        users, weights = _served_users(cols.user[served], n_users)
        lists = tables[name][users]
        diversity = diversity_block(
            lists, weights, item_factors=prepared.world.item_factors, popularity=popularity
        )
        genre = genre_block(lists, weights, history[users], genres, basis=genre_basis)
        diversity["genre_intra_list_diversity"] = genre.pop("genre_intra_list_diversity")
        diversity["genres"] = genre_basis
        everyone = tables[name][traffic_users]
        diversity["if_shown_to_all_traffic"] = _coverage_and_gini(
            everyone, all_requests, prepared.world.n_items
        )
        stability = (
            None
            if name == baseline
            else stability_block(
                tables[baseline][traffic_users], everyone, against=baseline, floor_lists=floor_lists
            )
        )
        parts[name] = {
            "genre_calibration": genre,
            "diversity": diversity,
            "stability": stability,
            "engagement": {**engagement[name], "hit_at_k": hits[name]},
        }
    calibration = calibrations.result()
    return {name: {"calibration": calibration[v], **parts[name]} for v, name in enumerate(names)}
