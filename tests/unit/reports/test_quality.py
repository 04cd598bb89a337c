"""The quality blocks of summary.json on small inputs whose answers are worked out by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from reports.numbers import num, pair
from reports.quality import (
    CALIBRATION_BINS,
    SLOPE_MAX_CI_WIDTH,
    SLOPE_MIN_EFFECTIVE_USERS,
    RequestColumns,
    calibration_block,
    diversity_block,
    engagement_blocks,
    segments_block,
    stability_block,
    window_series,
)
from sim.monitor import WindowStats


def window(version: str, t0: float, t1: float, **counts: Any) -> WindowStats:
    """A WindowStats with every field 0 except those given (robust to new fields)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(WindowStats):
        values[f.name] = 0.0 if f.type in ("float", float) else 0
    values.update(version=version, t_start_s=t0, t_end_s=t1, **counts)
    return WindowStats(**values)


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (np.int64(3), 3),
        (0.1234567891, 0.123457),
        (np.float32(0.5), 0.5),
    ],
)
def test_num_is_json_safe_and_rounded(value: Any, expected: Any) -> None:
    assert num(value) == expected


def test_pair_rounds_both_ends() -> None:
    assert pair(0.1111111111, None) == [0.111111, None]


# --- calibration -------------------------------------------------------------------------


def test_calibration_by_hand() -> None:
    # Two predictions of 0.05 (one clicked) and two of 0.5 (both clicked).
    # 0.05 is in bin 0 = (0, 1/15]; 0.5 in bin 7 = (7/15, 8/15].
    # ECE = 2/4 · |0.05 − 0.5| + 2/4 · |0.5 − 1| = 0.225 + 0.25 = 0.475.
    block = calibration_block([0.05, 0.05, 0.5, 0.5], [0, 1, 1, 1])
    assert block["requests"] == 4
    assert block["ece"] == pytest.approx(0.475)
    assert block["mean_predicted"] == pytest.approx(0.275)
    assert block["observed_rate"] == pytest.approx(0.75)
    assert block["n_bins"] == CALIBRATION_BINS
    assert block["bins"] == [
        {
            "lower": 0.0,
            "upper": num(1 / 15),
            "count": 2,
            "mean_predicted": 0.05,
            "observed_rate": 0.5,
        },
        {
            "lower": num(7 / 15),
            "upper": num(8 / 15),
            "count": 2,
            "mean_predicted": 0.5,
            "observed_rate": 1.0,
        },
    ]
    # Equal-mass bins keep tied predictions together: two bins of two requests, edges at
    # the predictions' quantiles; ECE over them is the same 0.475.
    masses = block["bins_equal_mass"]
    assert [b["count"] for b in masses] == [2, 2]
    assert [b["mean_predicted"] for b in masses] == [0.05, 0.5]
    assert [b["observed_rate"] for b in masses] == [0.5, 1.0]
    assert masses[0]["lower"] == 0.05 and masses[-1]["upper"] == 0.5
    assert block["ece_equal_mass"] == pytest.approx(0.475)
    assert block["n_bins_equal_mass"] == 10
    assert block["prediction_range"] == [0.05, 0.5]
    # logit P(click) = a + b·logit(p) through two points: P = 1/2 at p = 0.05 and P = 1 at
    # 0.5 would need an infinite slope; the fit stops large, with an interval far wider than
    # SLOPE_MAX_CI_WIDTH: four requests cannot measure a slope, so none is reported.
    low, high = block["slope_ci95"]
    assert low is None or high is None or high - low > SLOPE_MAX_CI_WIDTH
    assert block["slope"] is None and block["intercept"] is None
    assert len(block["warnings"]) == 1 and "not measured" in block["warnings"][0]


def test_slope_is_reported_only_when_its_interval_is_narrow() -> None:
    # Calibrated predictions (clicks drawn with the predicted probability) for 60 users:
    # with 40 requests each the slope's interval is narrow enough to report and covers 1;
    # the first 3 users alone (120 requests) leave it wider than the stated width.
    rng = np.random.default_rng(12)
    users = np.repeat(np.arange(60), 40)
    p = rng.uniform(0.05, 0.6, users.size)
    y = (rng.random(users.size) < p).astype(int)
    wide = calibration_block(p[:120], y[:120], users=users[:120])
    low, high = wide["slope_ci95"]
    assert high - low > SLOPE_MAX_CI_WIDTH
    assert wide["slope"] is None and wide["intercept"] is None
    assert wide["slope_effective_users"] == pytest.approx(3.0, abs=0.5)
    assert len(wide["warnings"]) == 1
    assert wide["warnings"][0].startswith("calibration slope not measured: its information")
    narrow = calibration_block(p, y, users=users)
    low, high = narrow["slope_ci95"]
    assert high - low <= SLOPE_MAX_CI_WIDTH
    assert narrow["slope"] is not None and low <= narrow["slope"] <= high
    assert low <= 1.0 <= high and narrow["warnings"] == []
    assert narrow["slope_effective_users"] >= SLOPE_MIN_EFFECTIVE_USERS


def test_slope_resting_on_a_few_users_is_not_measured() -> None:
    # The MovieLens replay's case: most users shown one list with one prediction, three
    # users with their own predictions holding all the spread.  The clustered interval of
    # such a fit can look narrow; the effective user count gives it away.
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(150), 60)
    p = np.full(users.size, 0.15)
    spread = users < 3
    p[spread] = rng.uniform(0.05, 0.6, int(spread.sum()))
    y = (rng.random(users.size) < p).astype(int)
    block = calibration_block(p, y, users=users)
    assert block["slope_users"] == 150 and block["slope_effective_users"] < 3.5
    assert block["slope"] is None and block["slope_ci95"][0] is not None
    assert "rests on" in block["warnings"][0]


def test_equal_mass_bins_split_evenly_and_keep_totals() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.0, 0.2, 1003)
    y = (rng.random(1003) < p).astype(int)
    masses = calibration_block(p, y)["bins_equal_mass"]
    counts = [b["count"] for b in masses]
    assert len(masses) == 10 and sum(counts) == 1003 and max(counts) - min(counts) <= 2
    assert sum(b["observed_rate"] * b["count"] for b in masses) == pytest.approx(y.sum(), abs=1e-3)
    lows = [b["lower"] for b in masses]
    assert lows == sorted(lows)


def test_calibration_of_nothing_is_null() -> None:
    block = calibration_block([], [])
    assert block["requests"] == 0
    assert block["ece"] is None and block["bins"] == [] and block["bins_equal_mass"] == []
    assert block["slope"] is None and block["ece_equal_mass"] is None
    assert block["warnings"] == []


def test_calibration_warns_when_predictions_sit_in_one_bin_and_rank_backwards() -> None:
    # The quick start's case: predictions within 3.5-6.5 % (one equal-width bin), baseline
    # anti-calibrated (predicted 4.2 % -> observed 5.7 %, 4.75 % -> 2.75 %).  The equal-width
    # ECE only compares the overall means; the equal-mass ECE and the slope see it.
    rng = np.random.default_rng(8)
    p = rng.uniform(0.035, 0.065, 50_000)
    y = (rng.random(p.size) < 0.1 - p).astype(int)
    block = calibration_block(p, y)
    assert len([b for b in block["bins"]]) == 1
    assert block["ece"] == pytest.approx(abs(p.mean() - y.mean()), abs=1e-6)
    assert block["ece_equal_mass"] > 3 * block["ece"]
    assert block["slope"] < 0 and block["slope_ci95"][1] < 0
    assert len(block["warnings"]) == 2
    assert "slope" in block["warnings"][0] and "one equal-width bin" in block["warnings"][1]


# --- diversity ---------------------------------------------------------------------------

FACTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
POPULARITY = np.array([4, 2, 1, 1])


def test_diversity_by_hand() -> None:
    # User A sees [0, 1] three times: orthogonal items, distance 1.
    # User B sees [0, 2] once: identical directions, distance 0.
    block = diversity_block(
        np.array([[0, 1], [0, 2]], np.int32),
        [3, 1],
        item_factors=FACTORS,
        popularity=POPULARITY,
    )
    assert block["lists"] == 2 and block["impressions"] == 4
    assert block["intra_list_diversity"] == pytest.approx((3 * 1.0 + 1 * 0.0) / 4)
    # Items 0, 1, 2 of 4 shown.
    assert block["catalogue_coverage"] == 0.75
    # Exposure [4, 3, 1, 0] sorted [0, 1, 3, 4]: Σ(2i − n − 1)x = −1 + 3 + 12 = 14; 14 / (4 · 8).
    assert block["exposure_gini"] == pytest.approx(14 / 32)
    # Add-one smoothed shares: [5, 3, 2, 2] / 12.
    nov_a = (-math.log2(5 / 12) - math.log2(3 / 12)) / 2
    nov_b = (-math.log2(5 / 12) - math.log2(2 / 12)) / 2
    assert block["novelty_bits"] == pytest.approx((3 * nov_a + nov_b) / 4, abs=1e-6)
    # ARP: A (4 + 2) / 2 = 3, B (4 + 1) / 2 = 2.5.
    assert block["average_recommended_popularity"] == pytest.approx((3 * 3 + 2.5) / 4)


def test_diversity_of_no_lists_is_null() -> None:
    block = diversity_block(
        np.zeros((0, 2), np.int32), [], item_factors=FACTORS, popularity=POPULARITY
    )
    assert block["lists"] == 0
    assert block["intra_list_diversity"] is None and block["exposure_gini"] is None


# --- stability ---------------------------------------------------------------------------


def test_stability_by_hand() -> None:
    base = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]], np.int32)
    cand = np.array([[1, 2, 3], [3, 2, 1], [4, 5, 6]], np.int32)
    block = stability_block(base, cand, against="baseline")
    assert block["users"] == 3 and block["k"] == 3 and block["rbo_p"] == 0.9
    assert block["jaccard_at_k"] == pytest.approx((1 + 1 + 0) / 3)
    assert block["identical_lists"] == pytest.approx(1 / 3)
    # Reversed list: overlaps X_1 = 0, X_2 = 1, X_3 = 3, so
    # RBO = (1 − p)/p · (0 + 1/2 · p² + 3/3 · p³) + 3/3 · p³.
    p = 0.9
    reversed_rbo = (1 - p) / p * (0.5 * p**2 + p**3) + p**3
    assert block["rbo"] == pytest.approx((1 + reversed_rbo + 0) / 3, abs=1e-6)


# --- engagement --------------------------------------------------------------------------


def test_engagement_by_hand() -> None:
    frame = pl.DataFrame(
        {
            "version": ["a", "a", "a", "b", "b", "b", "b"],
            "session": [1, 1, 2, 3, 3, 4, 5],
            "clicks": [1, 0, 0, 1, 1, 0, 0],
            "abandoned": [False, False, True, False, False, False, False],
        }
    )
    blocks = engagement_blocks(frame, ["a", "b"], baseline="a")
    a, b = blocks["a"], blocks["b"]
    assert a["sessions"] == 2 and a["clicks_per_session"] == 0.5
    assert a["abandoned_sessions_fraction"] == 0.5 and a["ctr_vs_baseline"] is None
    assert b["sessions"] == 3 and b["clicks_per_session"] == pytest.approx(2 / 3, abs=1e-6)
    assert b["abandoned_sessions_fraction"] == 0.0
    low, high = a["abandon_rate_ci95"]
    assert low is not None and high is not None and low < 1 / 3 < high
    lift = b["ctr_vs_baseline"]
    assert lift["against"] == "a"
    # Summary numbers are rounded to 6 decimals.
    assert lift["difference"] == pytest.approx(2 / 4 - 1 / 3, abs=1e-6)
    assert lift["relative_lift"] == pytest.approx((2 / 4) / (1 / 3) - 1, abs=1e-6)
    assert lift["difference_ci95"][0] < lift["difference"] < lift["difference_ci95"][1]


def test_engagement_of_a_version_without_requests() -> None:
    frame = pl.DataFrame({"version": ["a"], "session": [1], "clicks": [1], "abandoned": [False]})
    blocks = engagement_blocks(frame, ["a", "b"], baseline="a")
    assert blocks["b"]["sessions"] == 0
    assert blocks["b"]["clicks_per_session"] is None
    assert blocks["b"]["ctr_vs_baseline"] is None


# --- windows -----------------------------------------------------------------------------


def test_window_series_by_hand() -> None:
    windows = [
        [
            window(
                "a",
                0.0,
                60.0,
                requests=10,
                clicks=2,
                cache_lookups=8,
                cache_hits=6,
                latency_p99_ms=40.0,
            ),
            window("b", 0.0, 60.0),
        ],
        [
            window("a", 60.0, 120.0, requests=5, clicks=0, cache_lookups=0, latency_p99_ms=30.0),
            window(
                "b",
                60.0,
                120.0,
                requests=4,
                clicks=1,
                cache_lookups=4,
                cache_hits=1,
                latency_p99_ms=55.5,
            ),
        ],
    ]
    series = window_series(windows, ["a", "b"])
    assert series["t_start_s"] == [0.0, 60.0]
    assert series["t_end_s"] == [60.0, 120.0]
    assert series["versions"]["a"] == {
        "requests": [10, 5],
        "latency_p99_ms": [40.0, 30.0],
        "ctr": [0.2, 0.0],
        "cache_hit_rate": [0.75, None],
    }
    assert series["versions"]["b"] == {
        "requests": [0, 4],
        "latency_p99_ms": [None, 55.5],
        "ctr": [None, 0.25],
        "cache_hit_rate": [None, 0.25],
    }


# --- segments ----------------------------------------------------------------------------


def columns(users: list[int], versions: list[int], clicks: list[int]) -> RequestColumns:
    n = len(users)
    return RequestColumns(
        names=("base", "cand"),
        user=np.array(users, np.int64),
        version=np.array(versions, np.int64),
        served_by=np.array(versions, np.int64),
        clicks=np.array(clicks, np.int64),
        p_click=np.full(n, 0.1),
        abandoned=np.zeros(n, np.bool_),
    )


def test_segments_by_hand() -> None:
    # Users 0, 1 cold; 2 light; 3 heavy; user 4 (light) never requests.
    user_segment = np.array([0, 0, 1, 2, 1], np.uint8)
    history = np.array([0, 3, 10, 50, 7])
    cols = columns(
        users=[0, 1, 1, 2, 2, 3, 3, 3],
        versions=[0, 1, 1, 0, 1, 0, 1, 1],
        clicks=[1, 0, 0, 1, 0, 0, 1, 1],
    )
    block = segments_block(cols, user_segment, history, baseline="base", candidate="cand")
    assert block["rules"] == {
        "cold": "0-3 interactions",
        "light": "7-10 interactions",
        "heavy": "50-50 interactions",
    }
    cold, light, heavy = (block["by_segment"][s] for s in ("cold", "light", "heavy"))
    assert (cold["users"], light["users"], heavy["users"]) == (2, 1, 1)
    assert (cold["requests"], light["requests"], heavy["requests"]) == (3, 2, 3)
    assert cold["versions"]["base"]["ctr"] == 1.0 and cold["versions"]["cand"]["ctr"] == 0.0
    assert heavy["versions"]["base"]["ctr"] == 0.0 and heavy["versions"]["cand"]["ctr"] == 1.0
    assert cold["candidate_vs_baseline"]["difference"] == -1.0
    assert light["candidate_vs_baseline"]["difference"] == -1.0
    assert heavy["candidate_vs_baseline"]["difference"] == 1.0
    # Ties between cold and light (both −1): the worst is the first after a stable sort.
    assert block["worst"]["segment"] in ("cold", "light")
    assert block["worst"]["difference"] == -1.0


def test_segments_without_candidate_traffic_have_no_worst() -> None:
    cols = columns(users=[0, 1], versions=[0, 0], clicks=[1, 0])
    block = segments_block(
        cols, np.array([0, 2], np.uint8), np.array([1, 40]), baseline="base", candidate="cand"
    )
    assert block["worst"] is None
    assert block["by_segment"]["cold"]["candidate_vs_baseline"] is None
    assert block["by_segment"]["light"]["users"] == 0
    assert block["rules"]["light"] == "no users"


# --- request columns ---------------------------------------------------------------------


def test_request_columns_code_versions_popular_and_nothing() -> None:
    frame = pl.DataFrame(
        {
            "user": [3, 4, 5],
            "version": ["b", "a", "b"],
            "served_by": ["a", "popular", "none"],
            "clicks": [1, 0, 0],
            "p_click": [0.1, 0.2, 0.0],
            "abandoned": [False, True, False],
        }
    ).with_columns(pl.col("version", "served_by").cast(pl.Categorical))
    cols = RequestColumns.from_frame(frame, ["a", "b"])
    assert cols.version.tolist() == [1, 0, 1]
    assert cols.served_by.tolist() == [0, -1, -2]
    assert cols.user.tolist() == [3, 4, 5]
    assert cols.abandoned.tolist() == [False, True, False]
