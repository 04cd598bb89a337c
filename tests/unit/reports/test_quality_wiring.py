"""The finer quality numbers of summary.json: hand-worked answers on tiny inputs, the wiring
from a run to the summary on fabricated runs, and one small quick-start run end to end."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import polars as pl
import pytest

from lab.pipeline import NOISE_FLOOR, RunResult, run
from lab.scenario import load_scenario
from replay.synthetic import SyntheticWorld
from reports.buckets import bucket_block, popularity_buckets, worst_group
from reports.exposure import consumed_next, next_item_probability, shown_lists
from reports.genres import genre_block, history_matrix
from reports.html import render_report
from reports.numbers import num
from reports.quality import (
    RequestColumns,
    churn_block,
    hit_blocks,
    hit_rates,
    quality_blocks,
    request_windows,
    segments_block,
    stability_block,
    window_ctr_delta,
    window_ece,
)
from reports.summary import build_summary, dumps
from sim import metrics
from sim.monitor import WindowStats
from sim.stats import Z95

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SMALL = ["traffic.duration=20m", "traffic.users=3000", "traffic.items=600"]


def window(version: str, t0: float, t1: float, **counts: Any) -> WindowStats:
    values: dict[str, Any] = {}
    for f in WindowStats.__dataclass_fields__.values():
        values[f.name] = 0.0 if f.type in ("float", float) else 0
    values.update(version=version, t_start_s=t0, t_end_s=t1, **counts)
    return WindowStats(**values)


def cols(**arrays: Any) -> RequestColumns:
    """RequestColumns of two versions ("base", "cand"); omitted columns get neutral values."""
    n = len(arrays["user"])
    version = np.asarray(arrays.get("version", np.zeros(n)), np.int64)
    return RequestColumns(
        names=("base", "cand"),
        user=np.asarray(arrays["user"], np.int64),
        version=version,
        served_by=np.asarray(arrays.get("served_by", version), np.int64),
        clicks=np.asarray(arrays.get("clicks", np.zeros(n)), np.int64),
        p_click=np.asarray(arrays.get("p_click", np.full(n, 0.1)), np.float64),
        abandoned=np.asarray(arrays.get("abandoned", np.zeros(n)), np.bool_),
        t_s=np.asarray(arrays.get("t_s", np.arange(n)), np.float64),
        click_pos=np.asarray(arrays.get("click_pos", np.full(n, -1)), np.int64),
    )


# --- what each request showed ---------------------------------------------------------------


def test_shown_lists_follow_served_by() -> None:
    base = np.array([[0, 1], [2, 3]], np.int32)
    cand = np.array([[4, 5], [1, 0]], np.int32)
    shown = shown_lists([0, 1, 1, 0], [0, 1, -1, -2], [base, cand], np.array([5, 4]))
    assert shown.tolist() == [[0, 1], [1, 0], [5, 4], [-1, -1]]


def test_consumed_next_by_hand() -> None:
    items = np.array([[0, 1], [1, 0], [5, 4], [-1, -1]], np.int32)
    # Request 0 consumed {1}, request 1 nothing, request 2 {4, 2}, request 3 {0}.
    member = consumed_next(items, [0, 1, 1, 3, 4], np.array([1, 4, 2, 0], np.int32), 6)
    assert member.tolist() == [[False, True], [False, False], [False, True], [False, False]]


def tiny_world() -> SyntheticWorld:
    return SyntheticWorld(
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
        item_factors=np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32),
        item_bias=np.array([0.0, 0.5, 0.0], np.float32),
        activity=np.ones(2),
        signal=1.0,
    )


def test_next_item_probability_is_a_softmax_over_the_catalogue() -> None:
    # User 0: affinities [1, 0.5, -1]; user 1: [0, 1.5, 0].
    p0 = np.exp([1.0, 0.5, -1.0]) / np.exp([1.0, 0.5, -1.0]).sum()
    p1 = np.exp([0.0, 1.5, 0.0]) / np.exp([0.0, 1.5, 0.0]).sum()
    got = next_item_probability(tiny_world(), [0, 0, 1], np.array([[0, 2], [1, -1], [1, 0]]))
    expected = [[p0[0], p0[2]], [p0[1], 0.0], [p1[1], p1[0]]]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# --- hit@K ----------------------------------------------------------------------------------


def test_hit_rates_observed_use_wilson() -> None:
    n, rate, low, high = hit_rates([1, 0, np.nan, 1, 1], [0, 0, 0, 1, 3], 2, method="observed")
    assert n.tolist() == [2, 1] and rate.tolist() == [0.5, 1.0]
    w_low, w_high = metrics.wilson_interval(1, 2)
    assert (low[0], high[0]) == pytest.approx((float(w_low), float(w_high)))


def test_hit_rates_expected_use_the_spread_of_probabilities() -> None:
    n, rate, low, high = hit_rates([0.1, 0.3, 0.2], [0, 0, 1], 2, method="expected")
    assert n.tolist() == [2, 1] and rate == pytest.approx([0.2, 0.2])
    half = Z95 * np.std([0.1, 0.3], ddof=1) / math.sqrt(2)
    assert (low[0], high[0]) == pytest.approx((0.2 - half, 0.2 + half))
    assert math.isnan(low[1])  # one request: no spread to measure


def test_hit_blocks_are_null_without_truth() -> None:
    assert hit_blocks(None, [0, 1], ["a", "b"], method=None, basis=None, k=10) == {
        "a": None,
        "b": None,
    }
    blocks = hit_blocks([1.0, 0.0, 1.0], [0, 0, 1], ["a", "b"], method="observed", basis="x", k=3)
    assert blocks["a"] is not None and blocks["a"]["rate"] == 0.5
    assert blocks["a"]["requests"] == 2 and blocks["a"]["k"] == 3


# --- stability: noise floor and churn -------------------------------------------------------


def test_stability_against_the_noise_floor_by_hand() -> None:
    base = np.array([[1, 2], [3, 4]], np.int32)
    cand = np.array([[1, 2], [3, 5]], np.int32)  # Jaccard [1, 1/3], mean 2/3
    floor = np.array([[1, 9], [7, 8]], np.int32)  # Jaccard [1/3, 0], mean 1/6
    block = stability_block(base, cand, against="base", floor_lists=floor)
    assert block["jaccard_at_k"] == pytest.approx(2 / 3, abs=1e-6)
    assert block["noise_floor"]["against"] == NOISE_FLOOR
    assert block["noise_floor"]["jaccard_at_k"] == pytest.approx(1 / 6, abs=1e-6)
    assert block["noise_floor"]["identical_lists"] == 0.0
    rel = block["relative_to_noise_floor"]
    # Paired differences [2/3, 1/3]: mean 1/2, sd √2/6.
    assert rel["jaccard_difference"] == pytest.approx(0.5, abs=1e-6)
    half = Z95 * (math.sqrt(2) / 6) / math.sqrt(2)
    assert rel["jaccard_difference_ci95"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-6)
    # (1 − 2/3) / (1 − 1/6) = 0.4.
    assert rel["change_ratio"] == pytest.approx(0.4, abs=1e-6)


def test_stability_without_a_floor_has_null_floor_keys() -> None:
    base = np.array([[1, 2]], np.int32)
    block = stability_block(base, base, against="base")
    assert block["noise_floor"] is None and block["relative_to_noise_floor"] is None


def test_churn_by_hand() -> None:
    a = np.array([[1, 2], [3, 4], [5, 6], [1, 2]], np.int32)
    b = np.array([[1, 9], [7, 8], [5, 6], [1, 2]], np.int32)
    block = churn_block(
        user=[0, 0, 0, 1, 1, 1, 2, 3, 3],
        t_s=[0, 1, 2, 0, 1, 2, 5, 0, 1],
        version=[0, 0, 1, 1, 0, 1, 0, 0, 0],
        tables=[a, b],
        names=["a", "b"],
    )
    # User 0: a → b once, lists [1, 2] → [1, 9]: churn 1/2.  User 1: b → a → b, disjoint
    # lists: churn 1 twice.  User 2 has one request; user 3 never changes.
    assert block["users"] == 3 and block["users_changed"] == 2
    assert block["share_changed"] == pytest.approx(2 / 3, abs=1e-6)
    assert block["changes"] == 3
    assert block["mean_churn"] == pytest.approx((0.5 + 1.0) / 2)
    assert block["by_pair"] == [
        {"from": "a", "to": "b", "changes": 2, "mean_churn": 0.75},
        {"from": "b", "to": "a", "changes": 1, "mean_churn": 1.0},
    ]


def test_churn_without_changes() -> None:
    a = np.array([[1, 2]], np.int32)
    block = churn_block([0, 0], [0, 1], [0, 0], [a], ["a"])
    assert block["users"] == 1 and block["users_changed"] == 0
    assert block["share_changed"] == 0.0 and block["mean_churn"] is None


# --- windows --------------------------------------------------------------------------------


def test_request_windows_follow_the_monitor_counts() -> None:
    windows = [
        [window("a", 0, 60, requests=2), window("b", 0, 60, requests=1)],
        [window("a", 60, 120, requests=0), window("b", 60, 120, requests=2)],
    ]
    assert request_windows(windows, 6).tolist() == [0, 0, 0, 1, 1, -1]


def test_window_ece_by_hand() -> None:
    c = cols(
        user=[0, 1, 2, 3, 4],
        served_by=[0, 0, 0, 1, -1],
        p_click=[0.05, 0.05, 0.5, 0.2, 0.9],
        clicks=[0, 1, 1, 0, 1],
        abandoned=[False, False, False, True, False],
    )
    # Window 0 holds requests 0, 1 and 3; window 1 requests 2 and 4.
    ece = window_ece(c, [0, 0, 1, 0, 1], 2)
    # base, window 0: one bin, |0.1 − 1| / 2 = 0.45; window 1: |0.5 − 1| = 0.5.
    # cand: its only request was abandoned; the popular list (4) belongs to no version.
    assert ece == [[0.45, 0.5], [None, None]]
    assert ece[0][0] == num(metrics.expected_calibration_error([0.05, 0.05], [0, 1]))


def test_window_ctr_delta_by_hand() -> None:
    windows = [
        [window("a", 0, 60, requests=10, clicks=2), window("b", 0, 60, requests=5, clicks=2)],
        [window("a", 60, 120, requests=4, clicks=1), window("b", 60, 120)],
    ]
    block = window_ctr_delta(windows, baseline="a", candidate="b")
    se = math.sqrt(0.2 * 0.8 / 10 + 0.4 * 0.6 / 5)
    assert block["difference"] == [pytest.approx(0.2), None]
    assert block["difference_ci95"][0] == pytest.approx([0.2 - Z95 * se, 0.2 + Z95 * se])
    assert block["difference_ci95"][1] == [None, None]


# --- item popularity buckets ----------------------------------------------------------------

POPULARITY = np.array([5, 1, 3, 3, 0, 9])  # by rank: 5, 0 | 2, 3 | 1, 4


def test_popularity_buckets_are_catalogue_thirds() -> None:
    assert popularity_buckets(POPULARITY).tolist() == [0, 2, 1, 1, 2, 0]
    sizes = np.bincount(popularity_buckets(np.zeros(7)), minlength=3)
    assert sizes.tolist() == [3, 2, 2]  # ties by item id; sizes differ by at most one


def test_bucket_block_by_hand() -> None:
    items = np.array([[5, 2], [0, 1], [5, 4], [-1, -1]], np.int32)
    c = cols(
        user=[0, 1, 2, 3],
        version=[0, 0, 1, 1],
        served_by=[0, 0, 1, -2],
        clicks=[1, 0, 1, 0],
        click_pos=[1, -1, 0, -1],
        abandoned=[False, True, False, False],
    )
    hit_slots = np.array([[0, 1], [0, 0], [1, 0], [0, 0]], np.float64)
    block = bucket_block(
        c,
        items,
        POPULARITY,
        baseline="base",
        candidate="cand",
        hit_slots=hit_slots,
        hit=[1.0, 0.0, 1.0, np.nan],
        hit_method="observed",
    )
    head, torso, tail = (block["by_bucket"][b] for b in ("head", "torso", "tail"))
    assert block["rules"]["head"] == "2 items, 5-9 users each"
    base_head, base_torso, base_tail = (b["versions"]["base"] for b in (head, torso, tail))
    # base showed items 5, 2 (clicked 2) and 0, 1 (abandoned).
    assert (base_head["impressions"], base_head["clicks"], base_head["ctr"]) == (2, 0, 0.0)
    assert (base_torso["impressions"], base_torso["clicks"], base_torso["ctr"]) == (1, 1, 1.0)
    assert base_head["abandon_rate"] == 0.5 and base_tail["abandon_rate"] == 1.0
    assert base_torso["hit_at_k"] == 0.5 and base_head["hit_at_k"] == 0.0
    # cand showed 5, 4 (clicked 5, a hit) and nothing to the unjudged request.
    cand_head = head["versions"]["cand"]
    assert (cand_head["impressions"], cand_head["clicks"], cand_head["hit_at_k"]) == (1, 1, 1.0)
    assert "cand" not in torso["versions"] and torso["candidate_vs_baseline"] is None
    assert head["candidate_vs_baseline"]["difference"] == 1.0
    # Both tail CTRs are 0: the normal interval would collapse to a point, so it is null.
    assert tail["candidate_vs_baseline"]["difference_ci95"] == [None, None]
    assert block["worst"]["bucket"] == "tail"


def test_worst_group_compares_relative_lift_across_users_and_items() -> None:
    seg = {
        "cold": {
            "candidate_vs_baseline": {
                "relative_lift": -0.1,
                "difference": -0.01,
                "difference_ci95": [-0.02, 0.0],
            }
        },
        "light": {"candidate_vs_baseline": None},
    }
    buckets = {
        "head": {
            "candidate_vs_baseline": {
                "relative_lift": None,
                "difference": 0.0,
                "difference_ci95": [None, None],
            }
        },
        "tail": {
            "candidate_vs_baseline": {
                "relative_lift": -0.5,
                "difference": -0.001,
                "difference_ci95": [-0.002, 0.0],
            }
        },
    }
    worst = worst_group(seg, buckets)
    assert worst is not None
    assert (worst["kind"], worst["group"], worst["relative_lift"]) == (
        "item_popularity",
        "tail",
        -0.5,
    )
    assert worst_group({}, {}) is None


def test_segment_cells_have_abandonment_and_hits() -> None:
    c = cols(
        user=[0, 0, 1, 1],
        version=[0, 0, 0, 1],
        clicks=[1, 0, 0, 0],
        abandoned=[False, True, False, False],
    )
    block = segments_block(
        c,
        np.array([0, 2], np.uint8),
        np.array([1, 40]),
        baseline="base",
        candidate="cand",
        hit=np.array([1.0, 0.0, np.nan, 1.0]),
        hit_method="observed",
    )
    cold = block["by_segment"]["cold"]["versions"]["base"]
    assert cold["abandon_rate"] == 0.5 and cold["hit_at_k"] == 0.5
    heavy = block["by_segment"]["heavy"]["versions"]
    assert heavy["base"]["hit_at_k"] is None  # its only request had no truth
    assert heavy["cand"]["hit_at_k"] == 1.0 and heavy["cand"]["abandon_rate"] == 0.0


# --- genres ---------------------------------------------------------------------------------


def test_genre_block_by_hand() -> None:
    genres = np.array([[1, 0], [0, 1], [1, 1]], np.int8)
    # User 0 consumed item 0 (p = [1, 0]); user 1 has no history.
    history = history_matrix([0, 0], [0, 0], 2, 3)
    assert history.toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    block = genre_block(np.array([[1, 2], [0, 1]], np.int32), [3, 1], history, genres, basis="g")
    # List [1, 2]: q = ([0, 1] + [1/2, 1/2]) / 2 = [1/4, 3/4]; q̃ = 0.99 q + 0.01 p.
    q_tilde = 0.99 * 0.25 + 0.01
    assert block["kl"] == pytest.approx(math.log(1 / q_tilde), abs=1e-6)
    assert (block["lists"], block["impressions"], block["alpha"]) == (1, 3, 0.01)
    # Genre distances: {1} vs {0, 1} → 1/2; {0} vs {1} → 1.  Weighted (3 · 1/2 + 1) / 4.
    assert block["genre_intra_list_diversity"] == pytest.approx(0.625)


# --- wiring on fabricated runs --------------------------------------------------------------


def fabricated_run(*, synthetic: bool, noise_floor: bool = True) -> RunResult:
    """Two users, three items, K = 2: a run as small as the quality blocks accept."""
    world = tiny_world()
    base = np.array([[0, 1], [1, 2]], np.int32)
    cand = np.array([[0, 2], [1, 2]], np.int32)
    floor = np.array([[1, 0], [1, 2]], np.int32)  # the baseline's sets, user 0 reordered
    frame = pl.DataFrame(
        {
            "t_s": [0.0, 1.0, 2.0, 3.0],
            "user": [0, 1, 0, 1],
            "session": [0, 1, 2, 3],
            "version": ["base", "base", "cand", "base"],
            "served_by": ["base", "base", "cand", "popular"],
            "clicks": [1, 0, 0, 0],
            "click_pos": [0, -1, -1, -1],
            "abandoned": [False, False, False, False],
            "p_click": [0.2, 0.1, 0.3, 0.1],
            "hit": [1, 0, 1, -1],
        }
    ).with_columns(pl.col("version", "served_by").cast(pl.Categorical))
    prepared = SimpleNamespace(
        versions=(
            SimpleNamespace(name="base", items=base),
            SimpleNamespace(name="cand", items=cand),
        ),
        popular=SimpleNamespace(items=np.array([1, 0], np.int32)),
        world=world,
        source=SimpleNamespace(
            live_world=world if synthetic else None, item_genres=None, genre_names=()
        ),
        item_popularity=np.array([2, 1, 0]),
        history_users=np.array([0, 0, 1], np.int32),
        history_items=np.array([0, 1, 2], np.int32),
        noise_floor_items=floor if noise_floor else None,
        builder=None,  # built without an artifact store
    )
    stream = SimpleNamespace(
        has_truth=not synthetic,
        truth_ptr=np.array([0, 1, 2, 3, 3]),
        truth_items=np.array([0, 0, 2], np.int32),
    )
    scenario = SimpleNamespace(
        rollout=SimpleNamespace(baseline="base", candidate="cand"),
        users=SimpleNamespace(list_size=2),
    )
    return cast(
        RunResult,
        SimpleNamespace(
            prepared=prepared,
            versions=prepared.versions,
            scenario=scenario,
            requests=frame,
            stream=stream,
        ),
    )


def test_quality_wiring_of_a_replayed_log() -> None:
    quality = quality_blocks(fabricated_run(synthetic=False))
    base, cand = quality["base"], quality["cand"]
    # hit column by assigned version: base [1, 0, -1] → 1 of 2 judged; cand [1].
    assert base["engagement"]["hit_at_k"]["method"] == "observed"
    assert base["engagement"]["hit_at_k"]["requests"] == 2
    assert base["engagement"]["hit_at_k"]["rate"] == 0.5
    assert cand["engagement"]["hit_at_k"]["rate"] == 1.0
    # Stability over both traffic users: cand Jaccard [1/3, 1]; the floor's [1, 1], with
    # user 0's list reordered (RBO below 1, half the lists identical).
    stab = cand["stability"]
    assert stab["jaccard_at_k"] == pytest.approx(2 / 3, abs=1e-6)
    assert stab["noise_floor"]["jaccard_at_k"] == 1.0
    assert stab["noise_floor"]["identical_lists"] == 0.5 and stab["noise_floor"]["rbo"] < 1
    assert stab["relative_to_noise_floor"]["change_ratio"] is None  # the floor never changes
    assert base["stability"] is None
    genre = cand["genre_calibration"]
    assert genre["lists"] == 1 and genre["impressions"] == 1 and genre["kl"] >= 0
    assert "baseline model's item factors" in genre["genres"]


def test_quality_wiring_of_a_synthetic_world() -> None:
    run_ = fabricated_run(synthetic=True, noise_floor=False)
    quality = quality_blocks(run_)
    # Expected hits: Σ softmax over each shown list; base showed [0, 1] and [1, 2] (users
    # 0 and 1), cand [0, 2] to user 0; the popular list [1, 0] to user 1 counts for base.
    p0 = np.exp([1.0, 0.5, -1.0]) / np.exp([1.0, 0.5, -1.0]).sum()
    p1 = np.exp([0.0, 1.5, 0.0]) / np.exp([0.0, 1.5, 0.0]).sum()
    base_hits = [p0[0] + p0[1], p1[1] + p1[2], p1[1] + p1[0]]
    hit = quality["base"]["engagement"]["hit_at_k"]
    assert hit["method"] == "expected" and hit["requests"] == 3
    assert hit["rate"] == pytest.approx(np.mean(base_hits), abs=1e-6)
    assert quality["cand"]["engagement"]["hit_at_k"]["rate"] == pytest.approx(
        p0[0] + p0[2], abs=1e-6
    )
    assert quality["cand"]["stability"]["noise_floor"] is None
    assert "true world's item factors" in quality["cand"]["genre_calibration"]["genres"]


# --- one small quick-start run --------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart() -> tuple[RunResult, dict[str, Any]]:
    result = run(load_scenario(QUICKSTART, SMALL))
    return result, build_summary(result, reproducible=True)


def in_unit(value: Any) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_quickstart_has_every_new_key_in_range(
    quickstart: tuple[RunResult, dict[str, Any]],
) -> None:
    result, summary = quickstart
    k = summary["scenario"]["settings"]["users"]["list_size"]
    for name, block in summary["versions"].items():
        q = block["quality"]
        hit = q["engagement"]["hit_at_k"]
        assert hit["method"] == "expected" and hit["k"] == k
        assert hit["requests"] == block["requests"] and in_unit(hit["rate"])
        assert hit["ci95"][0] <= hit["rate"] <= hit["ci95"][1]
        genre = q["genre_calibration"]
        assert genre["n_genres"] == 16 and 0 <= genre["kl"] <= math.log(1 / 0.01)
        assert in_unit(q["diversity"]["genre_intra_list_diversity"])
        series = summary["windows"]["versions"][name]
        assert len(series["ece"]) == len(summary["windows"]["t_end_s"])
        assert all(e is None or in_unit(e) for e in series["ece"])
    stab = summary["versions"]["candidate"]["quality"]["stability"]
    floor, rel = stab["noise_floor"], stab["relative_to_noise_floor"]
    assert floor["against"] == NOISE_FLOOR
    assert in_unit(floor["jaccard_at_k"]) and in_unit(floor["rbo"])
    low, high = rel["jaccard_difference_ci95"]
    assert low <= rel["jaccard_difference"] <= high and rel["change_ratio"] >= 0
    assert rel["jaccard_difference"] == pytest.approx(
        stab["jaccard_at_k"] - floor["jaccard_at_k"], abs=2e-6
    )
    built = result.prepared.noise_floor
    assert built is not None and built.model.training_seconds > 0
    # Built in the background, timed there: its work is reported, never part of prepare_s.
    assert result.timing["noise_floor_s"] >= built.model.training_seconds
    assert summary["timing"]["noise_floor_training_s"] == 0.0  # reproducible
    assert summary["timing"]["noise_floor_s"] == 0.0
    churn = summary["churn"]
    assert churn["users"] > 0 and in_unit(churn["share_changed"])
    assert summary["off_policy"] is None
    delta = summary["windows"]["candidate_vs_baseline"]
    assert len(delta["difference"]) == len(summary["windows"]["t_end_s"])


def test_quickstart_popularity_buckets_add_up(
    quickstart: tuple[RunResult, dict[str, Any]],
) -> None:
    _, summary = quickstart
    buckets = summary["segments"]["item_popularity"]
    assert list(buckets["by_bucket"]) == ["head", "torso", "tail"]
    assert sum(b["items"] for b in buckets["by_bucket"].values()) == 600
    for name, block in summary["versions"].items():
        cells = [b["versions"].get(name) for b in buckets["by_bucket"].values()]
        shown = [c for c in cells if c is not None]
        for c in shown:
            assert in_unit(c["ctr"]) and in_unit(c["abandon_rate"]) and in_unit(c["hit_at_k"])
        # Expected hits add up over buckets to the list's hit@K (up to rounding).
        total = sum(c["hit_at_k"] for c in shown)
        assert total == pytest.approx(block["quality"]["engagement"]["hit_at_k"]["rate"], abs=1e-5)
        # Every click lands on an item of some bucket.
        assert sum(c["clicks"] for c in shown) == block["clicks"]
    worst = summary["segments"]["worst_overall"]
    assert worst is not None and worst["kind"] in ("user_segment", "item_popularity", "tenure")
    for cell in summary["segments"]["by_segment"].values():
        for v in cell["versions"].values():
            assert in_unit(v["abandon_rate"]) and in_unit(v["hit_at_k"])


def test_quickstart_report_shows_the_new_sections(
    quickstart: tuple[RunResult, dict[str, Any]],
) -> None:
    result, summary = quickstart
    page = render_report(summary, result.requests)
    for text in (
        "Against the noise floor",
        "Churn when a user",
        "Genre calibration (Steck)",
        "By item popularity",
        "hit@10",
        "Per analysis window",
    ):
        assert text in page, text
    assert "<script" not in page.lower()
    # A summary without the new keys still renders.
    old = copy.deepcopy(summary)
    for key in ("churn", "off_policy"):
        del old[key]
    del old["segments"]["item_popularity"], old["segments"]["worst_overall"]
    for block in old["versions"].values():
        del block["quality"]["genre_calibration"], block["quality"]["engagement"]["hit_at_k"]
    assert "Against the noise floor" in render_report(old, result.requests)


def test_noise_floor_off_changes_nothing_else(
    quickstart: tuple[RunResult, dict[str, Any]],
) -> None:
    _, summary = quickstart
    off = build_summary(
        run(load_scenario(QUICKSTART, [*SMALL, "metrics.noise_floor=false"])), reproducible=True
    )
    stab = off["versions"]["candidate"]["quality"]["stability"]
    assert stab["noise_floor"] is None and stab["relative_to_noise_floor"] is None
    assert off["timing"]["noise_floor_training_s"] == 0.0
    on = copy.deepcopy(summary)
    for s in (on, off):
        s["scenario"]["settings"].pop("metrics")
        for key in ("noise_floor", "relative_to_noise_floor"):
            s["versions"]["candidate"]["quality"]["stability"].pop(key)
    assert dumps(on) == dumps(off)


def test_worst_group_also_looks_at_new_and_returning_users() -> None:
    cell = {
        "candidate_vs_baseline": {
            "relative_lift": -0.2,
            "difference": -0.01,
            "difference_ci95": [-0.02, 0.0],
        }
    }
    better = {
        "candidate_vs_baseline": {
            "relative_lift": 0.1,
            "difference": 0.01,
            "difference_ci95": [0.0, 0.02],
        }
    }
    from reports.buckets import worst_group

    worst = worst_group({"light": better}, {"head": better}, {"new": cell, "returning": better})
    assert worst is not None and (worst["kind"], worst["group"]) == ("tenure", "new")


def test_segments_carry_calibration_diversity_and_stability(
    quickstart: tuple[RunResult, dict[str, Any]],
) -> None:
    _, summary = quickstart
    for block in (summary["segments"], summary["segments"]["tenure"]):
        for cell in block["by_segment"].values():
            for name, version in cell["versions"].items():
                assert version["ece"] is None or 0 <= version["ece"] <= 1
                ild = version["intra_list_diversity"]
                assert ild is None or 0 <= ild <= 2
                if name == "baseline" and version["stability"] is not None:
                    assert version["stability"] == 1.0  # the baseline against itself
