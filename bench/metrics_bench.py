"""Wall time of every recommendation-quality metric on a 1M-request synthetic run.

Shapes: 1,000,000 requests, 50,000 users, 10,000 items, K = 10, 2 versions (plus a
baseline retrained with another seed for the noise floor), 16 genres, 32 factors.
List metrics are computed once per (version, user) top-K row and weighted by the user's
requests, as a report would; request metrics run on the full log.  Two extra lines run
list metrics on the 1M shown lists directly, to show that path fits too.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/metrics_bench.py [--runs 3] [--requests N]

Prints min / median / max seconds per metric over the runs, and the total.  Goal: total
<= 10 s for 1M requests on a 2-core machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from sim import metrics as m

N_USERS = 50_000
N_ITEMS = 10_000
K = 10
N_GENRES = 16
N_FACTORS = 32
HISTORY_PER_USER = 20
VERSIONS = ("baseline", "candidate")
SEED = 20240611


@dataclass(frozen=True, slots=True)
class Run:
    log: pl.DataFrame
    tables: dict[str, npt.NDArray[np.int32]]
    retrained: npt.NDArray[np.int32]
    truth_ptr: npt.NDArray[np.int64]
    truth_items: npt.NDArray[np.int32]
    history: sp.csr_matrix
    genres: npt.NDArray[np.int8]
    factors: npt.NDArray[np.float32]
    train_popularity: npt.NDArray[np.float64]
    propensity: npt.NDArray[np.float64]
    logged_slot: npt.NDArray[np.int64]


def _zipf_items(rng: np.random.Generator, size: int, a: float = 1.1) -> npt.NDArray[np.int64]:
    weights = 1.0 / np.arange(1, N_ITEMS + 1) ** a
    return rng.choice(N_ITEMS, size=size, p=weights / weights.sum())


def _topk(rng: np.random.Generator, n: int) -> npt.NDArray[np.int32]:
    """Distinct items per row: a popularity-skewed start plus increasing random gaps."""
    start = _zipf_items(rng, n)
    gaps = rng.integers(1, 60, size=(n, K))
    items = (start[:, None] + np.cumsum(gaps, axis=1)) % N_ITEMS
    return items.astype(np.int32)


def make_run(n_requests: int, rng: np.random.Generator) -> Run:
    baseline = _topk(rng, N_USERS)
    candidate = baseline.copy()
    changed = rng.random(N_USERS) < 0.3
    candidate[changed] = _topk(rng, int(changed.sum()))
    candidate[~changed, :2] = candidate[~changed, 1::-1]  # same set, first two ranks swapped
    retrained = baseline.copy()
    noisy = rng.random(N_USERS) < 0.1
    retrained[noisy] = _topk(rng, int(noisy.sum()))

    activity = rng.pareto(1.5, N_USERS) + 1.0
    user = rng.choice(N_USERS, size=n_requests, p=activity / activity.sum()).astype(np.uint32)
    t_s = np.sort(rng.uniform(0.0, 7200.0, n_requests))
    bucket = (user.astype(np.int64) * 2654435761) % 100
    on_candidate = (bucket < 50) | ((bucket < 60) & (t_s > 3600.0))  # a ramp step at 1 h
    version = np.where(on_candidate, "candidate", "baseline")
    p_click = rng.beta(2.0, 12.0, n_requests).astype(np.float32)
    clicks = (rng.random(n_requests) < p_click * np.where(on_candidate, 0.95, 0.9)).astype(np.uint8)
    latency = rng.lognormal(np.log(20.0), 0.6, n_requests).astype(np.float32)
    abandoned = latency > 120.0
    counts = np.bincount(user, minlength=N_USERS)
    segment = np.select([counts < 10, counts < 40], ["cold", "light"], "heavy")[user]
    log = pl.DataFrame(
        {
            "t_s": t_s,
            "user": user,
            "version": version,
            "served_by": version,
            "clicks": clicks,
            "click_pos": np.where(clicks == 1, rng.integers(0, K, n_requests), -1).astype(np.int8),
            "p_click": p_click,
            "latency_ms": latency,
            "abandoned": abandoned,
            "segment": segment,
        }
    )

    n_truth = rng.integers(0, 4, n_requests)
    truth_ptr = np.concatenate([[0], np.cumsum(n_truth)]).astype(np.int64)
    truth_items = _zipf_items(rng, int(truth_ptr[-1])).astype(np.int32)

    rows = np.repeat(np.arange(N_USERS), HISTORY_PER_USER)
    cols = _zipf_items(rng, rows.shape[0], a=0.9)
    history = sp.csr_matrix(
        (np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS)
    )
    history.sum_duplicates()
    genres = np.zeros((N_ITEMS, N_GENRES), dtype=np.int8)
    for extra in range(3):  # 1 to 3 genres per item
        pick = rng.integers(0, N_GENRES, N_ITEMS)
        keep = rng.random(N_ITEMS) < (1.0 if extra == 0 else 0.4)
        genres[np.flatnonzero(keep), pick[keep]] = 1
    factors = rng.normal(0.0, 0.1, (N_ITEMS, N_FACTORS)).astype(np.float32)
    train_popularity = np.asarray(history.sum(axis=0)).ravel().astype(np.float64)
    return Run(
        log=log,
        tables={"baseline": baseline, "candidate": candidate},
        retrained=retrained,
        truth_ptr=truth_ptr,
        truth_items=truth_items,
        history=history,
        genres=genres,
        factors=factors,
        train_popularity=train_popularity,
        propensity=np.full(n_requests, 1.0 / K),
        logged_slot=rng.integers(0, K, n_requests),
    )


def _requests_per_user(run: Run, version: str) -> npt.NDArray[np.float64]:
    users = run.log.filter(pl.col("version") == version)["user"].to_numpy()
    return np.bincount(users, minlength=N_USERS).astype(np.float64)


def _weighted(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> float:
    keep = np.isfinite(values) & (weights > 0)
    return float(np.average(values[keep], weights=weights[keep]))


def metric_calls(run: Run) -> dict[str, Callable[[], Any]]:
    """Every metric once, as a report would call it on this run."""
    log = run.log
    is_cand = (log["version"] == "candidate").to_numpy()
    clicks = log["clicks"].to_numpy()
    p_click = log["p_click"].to_numpy()
    user = log["user"].to_numpy()

    def per_version(fn: Callable[[npt.NDArray[np.bool_]], Any]) -> Callable[[], Any]:
        return lambda: [fn(mask) for mask in (~is_cand, is_cand)]

    def hit() -> Any:
        out = []
        for name, mask in (("baseline", ~is_cand), ("candidate", is_cand)):
            rows = np.flatnonzero(mask)
            shown = run.tables[name][user[rows]]
            lens = np.diff(run.truth_ptr)[rows]
            starts = run.truth_ptr[rows]
            ptr = np.concatenate([[0], np.cumsum(lens)])
            take = np.repeat(starts - ptr[:-1], lens) + np.arange(int(ptr[-1]))
            out.append(m.hit_rate_at_k(shown, ptr, run.truth_items[take]))
        return out

    def list_metric(fn: Callable[[npt.NDArray[np.int32]], npt.NDArray[np.float64]]) -> Any:
        return lambda: [_weighted(fn(run.tables[v]), _requests_per_user(run, v)) for v in VERSIONS]

    def catalogue(fn: Callable[..., float]) -> Any:
        return lambda: [
            fn(run.tables[v], N_ITEMS, weights=_requests_per_user(run, v)) for v in VERSIONS
        ]

    def stability() -> Any:
        cand = m.jaccard_at_k(run.tables["baseline"], run.tables["candidate"])
        floor = m.jaccard_at_k(run.tables["baseline"], run.retrained)
        return m.relative_to_noise_floor(cand, floor)

    def drift() -> Any:
        live_pop = np.bincount(
            np.concatenate(
                [
                    run.tables[v][user[mask]].ravel()
                    for v, mask in (("baseline", ~is_cand), ("candidate", is_cand))
                ]
            ),
            minlength=N_ITEMS,
        )
        train_activity = np.diff(run.history.indptr)
        live_activity = np.bincount(user, minlength=N_USERS)
        return (
            m.population_stability_index(run.train_popularity, live_pop),
            m.population_stability_index(train_activity, live_activity),
            m.ks_two_sample(train_activity, live_activity),
        )

    def shown_per_request() -> npt.NDArray[np.int32]:
        shown: npt.NDArray[np.int32] = run.tables["baseline"][user]
        shown[is_cand] = run.tables["candidate"][user[is_cand]]
        return shown

    target_slot = np.zeros(log.height, dtype=np.int64)  # target policy: always rank 1
    pi = (run.logged_slot == target_slot).astype(np.float64)
    latency = log["latency_ms"].to_numpy()
    return {
        "ctr_table": lambda: m.ctr_table(log),
        "ctr_difference (delta)": lambda: m.ctr_difference(clicks[~is_cand], clicks[is_cand]),
        "ctr_difference (bootstrap)": lambda: m.ctr_difference(
            clicks[~is_cand], clicks[is_cand], method="bootstrap", rng=np.random.default_rng(1)
        ),
        "hit_rate_at_k (1M shown lists)": hit,
        "session_table (sessionize)": lambda: m.session_table(log),
        "abandonment_table": lambda: m.abandonment_table(log),
        "expected_calibration_error": per_version(
            lambda mask: m.expected_calibration_error(p_click[mask], clicks[mask])
        ),
        "reliability_diagram": per_version(
            lambda mask: m.reliability_diagram(p_click[mask], clicks[mask])
        ),
        "expected_calibration_error (equal mass)": per_version(
            lambda mask: m.expected_calibration_error(
                p_click[mask], clicks[mask], n_bins=10, strategy="quantile"
            )
        ),
        "calibration_slope (clustered by user)": per_version(
            lambda mask: m.calibration_slope(p_click[mask], clicks[mask], groups=user[mask])
        ),
        "segment_ctr + worst_segment_delta": lambda: m.worst_segment_delta(
            log, "segment", baseline="baseline", candidate="candidate"
        ),
        "genre_calibration_kl (Steck)": list_metric(
            lambda t: m.genre_calibration_kl(t, run.history, run.genres)
        ),
        "pseudo_genres (k-means fallback)": lambda: m.pseudo_genres(
            run.factors, n_genres=N_GENRES, rng=np.random.default_rng(2)
        ),
        "intra_list_diversity (factors)": list_metric(
            lambda t: m.intra_list_diversity(t, run.factors)
        ),
        "genre_intra_list_diversity": list_metric(
            lambda t: m.genre_intra_list_diversity(t, run.genres)
        ),
        "catalogue_coverage": catalogue(m.catalogue_coverage),
        "exposure_gini": catalogue(m.exposure_gini),
        "novelty": list_metric(lambda t: m.novelty(t, run.train_popularity, pseudo_count=1.0)),
        "average_recommended_popularity": list_metric(
            lambda t: m.average_recommended_popularity(t, run.train_popularity)
        ),
        "jaccard_at_k + noise floor": stability,
        "rank_biased_overlap": lambda: m.rank_biased_overlap(
            run.tables["baseline"], run.tables["candidate"]
        ),
        "version_change_churn": lambda: m.version_change_churn(log, run.tables),
        "PSI x2 + KS (drift)": drift,
        "ks_two_sample (latency by version)": lambda: m.ks_two_sample(
            latency[~is_cand], latency[is_cand]
        ),
        "intra_list_diversity (1M request lists)": lambda: m.intra_list_diversity(
            shown_per_request(), run.factors
        ),
        "rank_biased_overlap (1M request lists)": lambda: m.rank_biased_overlap(
            shown_per_request(), run.tables["baseline"][user]
        ),
        "replay/ips/snips": lambda: (
            m.replay_estimate(run.logged_slot, clicks, target_slot),
            m.ips_estimate(clicks, run.propensity, pi),
            m.snips_estimate(clicks, run.propensity, pi),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    run = make_run(args.requests, np.random.default_rng(SEED))
    print(f"synthetic run: {args.requests:,} requests built in {time.perf_counter() - t0:.1f} s")
    calls = metric_calls(run)
    times: dict[str, list[float]] = {name: [] for name in calls}
    totals: list[float] = []
    for _ in range(args.runs):
        total = 0.0
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            total += elapsed
        totals.append(total)
    width = max(len(name) for name in calls)
    print(f"{'metric':<{width}}  {'min s':>7} {'median s':>9} {'max s':>7}")
    for name, values in times.items():
        print(
            f"{name:<{width}}  {min(values):7.3f} {statistics.median(values):9.3f}"
            f" {max(values):7.3f}"
        )
    print(
        f"{'TOTAL':<{width}}  {min(totals):7.3f} {statistics.median(totals):9.3f}"
        f" {max(totals):7.3f}"
    )


if __name__ == "__main__":
    main()
