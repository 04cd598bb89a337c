"""Click calibration on held-out feedback: clicks the calibrators never saw.

The quick start reported an ECE of 0.003 while its predictions were anti-calibrated
(calibration slope −0.26 for the candidate: the highest predictions got the fewest clicks)
because every prediction fell in one equal-width bin.  Versions now predict from list
features (replay.calibration) fitted before any traffic; here the slope of logit P(click) on
logit(predicted) must lie in [0.8, 1.2].

Held-out feedback: every request of the run's traffic (users drawn by activity, as the
simulation draws them), each judged with the version's own list and clicked through the
cascade from the truth, as the simulation would if the version served it.  The run's own
summary judges a version only on the requests routed to it; for a 10 % canary that is a
tenth of the users, whose mix alone moves the slope by ±0.15 (seed 4 of the quick start:
1.21 [1.06, 1.37] on the canary's users, 0.99 on all), so both are checked: the held-out
slope in the band for several seeds, and the summary's slope reported with its interval.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import lab.calibration as lab_calibration
from lab.calibration_shrinkage import Shrinkage, grouped_shrinkage
from lab.pipeline import Prepared, prepare, run, seeded_streams
from lab.scenario import load_scenario
from reports.quality import SLOPE_MAX_CI_WIDTH, SLOPE_MIN_EFFECTIVE_USERS
from reports.summary import build_summary
from sim.metrics import CalibrationSlope, calibration_slope
from sim.users import list_click_probability

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
MOVIELENS_REPLAY = ROOT / "scenarios" / "movielens_replay.toml"
REDUCED = ["traffic.users=6000", "traffic.items=1500", "traffic.duration=40m"]
#: The quick start's own world (20,000 users, 3,000 items) with a third of its traffic.  On a
#: world of 6,000 users and 1,500 items the held-out slopes sit higher (seeds 1-7: mean
#: 1.05 with clicks independent of activity, 1.09 with ``users.activity_engagement = 0.5``,
#: the candidate's up to 1.32 [1.14, 1.49] at seed 4): the quick start's world is the one
#: the band is promised for, so the default run judges that world.
SHORTER = ["traffic.duration=40m"]
SEEDS = [1, 2, 3, 4, 5]
MOVIELENS = Path(
    os.environ.get(
        "ROLLOUT_LAB_MOVIELENS", ROOT.parent / "shared/data/movielens-latest-small/ratings.csv"
    )
)
needs_movielens = pytest.mark.skipif(
    not MOVIELENS.exists(), reason="MovieLens latest-small not available"
)


def _prepared(path: Path, overrides: list[str]) -> Prepared:
    scenario = load_scenario(path, [*overrides, "metrics.noise_floor=false"])
    return prepare(scenario, base_dir=path.parent)


def _held_out_slopes(prepared: Prepared, *, draws: int = 1) -> dict[str, CalibrationSlope]:
    """Baseline's and candidate's slope on every request of replication 0's traffic, each
    judged with the version's list, ``draws`` click draws of the cascade from the truth."""
    stream = prepared.source.requests(0, seeded_streams(prepared.scenario.seed, 0)["traffic"])
    users = np.asarray(stream.user, dtype=np.int64)
    rng = np.random.default_rng(prepared.scenario.seed)
    slopes = {}
    for table in prepared.versions[:2]:
        table.ensure(users)
        truth = list_click_probability(
            table.relevance[users].astype(np.float64), table.truth.position_decay
        )
        clicks = np.concatenate([rng.random(users.size) < truth for _ in range(draws)])
        predicted = np.tile(table.predicted[users].astype(np.float64), draws)
        slopes[table.name] = calibration_slope(
            predicted, clicks.astype(np.int8), groups=np.tile(users, draws)
        )
    return slopes


def _assert_in_band(slopes: dict[str, CalibrationSlope], label: str) -> None:
    for name, fit in slopes.items():
        interval = (round(fit.slope_ci_low, 3), round(fit.slope_ci_high, 3))
        assert 0.8 <= fit.slope <= 1.2, (label, name, round(fit.slope, 3), interval)
        assert fit.slope_ci_low < fit.slope < fit.slope_ci_high, (label, name, interval)


@pytest.mark.parametrize("seed", SEEDS)
def test_quickstart_held_out_slope_in_band_with_shorter_traffic(seed: int) -> None:
    """Five seeds (world, training, calibration feedback and traffic all change with the
    seed), each version's slope on held-out feedback inside [0.8, 1.2]."""
    prepared = _prepared(QUICKSTART, [*SHORTER, f"seed={seed}"])
    _assert_in_band(_held_out_slopes(prepared), f"seed {seed}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_quickstart_held_out_slope_in_band_at_full_scale(seed: int) -> None:
    prepared = _prepared(QUICKSTART, [f"seed={seed}"])
    slopes = _held_out_slopes(prepared)
    _assert_in_band(slopes, f"seed {seed}")
    for fit in slopes.values():  # full scale measures the slope to within about ±0.1
        assert fit.slope_ci_high - fit.slope_ci_low < 0.25, fit


def _summary_calibration(overrides: list[str]) -> dict[str, dict[str, Any]]:
    scenario = load_scenario(QUICKSTART, [*overrides, "metrics.noise_floor=false"])
    summary = build_summary(run(scenario), reproducible=True)
    return {name: v["quality"]["calibration"] for name, v in summary["versions"].items()}


def _assert_reported(cal: dict[str, Any], name: str) -> None:
    """A summary's slope: measured (interval at most SLOPE_MAX_CI_WIDTH wide, resting on at
    least SLOPE_MIN_EFFECTIVE_USERS users, reaching the band) or left out with a warning that
    says why; its interval reported either way."""
    low, high = cal["slope_ci95"]
    assert low is not None and high is not None, name
    measured = (
        high - low <= SLOPE_MAX_CI_WIDTH
        and cal["slope_effective_users"] >= SLOPE_MIN_EFFECTIVE_USERS
    )
    if measured:
        assert cal["slope"] is not None and low < cal["slope"] < high, name
        assert low <= 1.2 and high >= 0.8, (name, cal["slope"], low, high)
        assert cal["warnings"] == [], name
    else:
        assert cal["slope"] is None and cal["intercept"] is None, name
        assert len(cal["warnings"]) == 1 and "not measured" in cal["warnings"][0], name


@pytest.mark.parametrize("seed", [7, 8])
def test_quickstart_summary_reports_the_slope_with_its_interval(seed: int) -> None:
    calibration = _summary_calibration([*REDUCED, f"seed={seed}"])
    for name, cal in calibration.items():
        _assert_reported(cal, name)
        # Calibration in the large: predicted and observed click rates within 15 %.
        assert 0.85 < cal["mean_predicted"] / cal["observed_rate"] < 1.15, name
    # The baseline serves ~90 % of the traffic: its slope is measured, inside the band.
    base = calibration["baseline"]
    assert base["slope"] is not None and 0.8 <= base["slope"] <= 1.2, base


@pytest.mark.slow
def test_quickstart_summary_slope_in_band_at_full_scale() -> None:
    """The baseline (about 90 % of the traffic) is measured and in the band.  The candidate's
    10 % canary is measured or left out with its warning: with clicks that rise with
    activity, users differ more, and at the quick start's seed its interval is [0.84, 1.55],
    wider than SLOPE_MAX_CI_WIDTH (its held-out slope, on every request, is in the band:
    ``test_quickstart_held_out_slope_in_band_at_full_scale``)."""
    calibration = _summary_calibration([])
    for name, cal in calibration.items():
        _assert_reported(cal, name)
    base = calibration["baseline"]
    assert base["slope"] is not None and 0.8 <= base["slope"] <= 1.2, base


def _movielens_held_out(prepared: Prepared, *, draws: int) -> dict[str, CalibrationSlope]:
    """Every replay request judged with each version's list (not only the ones routed to
    it): ``draws`` draws of the cascade from the logged truth (what the user rated next)."""
    scenario = prepared.scenario
    stream = prepared.source.requests(0, np.random.default_rng(0))
    n = len(stream)
    truth = sp.csr_matrix(
        (np.ones(stream.truth_items.size), stream.truth_items, stream.truth_ptr),
        shape=(n, prepared.world.n_items),
    )
    log = scenario.traffic.log
    assert log is not None
    rng = np.random.default_rng(1)
    slopes = {}
    for table in prepared.versions[:2]:
        table.ensure(stream.user)
        items = table.items[stream.user]
        consumed = np.asarray(truth[np.arange(n)[:, None], np.maximum(items, 0)].todense()) > 0
        p_item = np.where(consumed, log.click_if_consumed, log.click_otherwise) * (items >= 0)
        p_list = list_click_probability(p_item, scenario.users.position_decay)
        predicted = np.tile(table.predicted[stream.user].astype(np.float64), draws)
        clicks = np.concatenate([rng.random(n) < p_list for _ in range(draws)])
        slopes[table.name] = calibration_slope(
            predicted, clicks.astype(np.int8), groups=np.tile(stream.user, draws)
        )
    return slopes


def test_movielens_sample_replay_counts_every_warm_up_event() -> None:
    """The bundled sample with ``fold_in``: every replay-window event is a request or a
    warm-up event (taken as its user's history, counted), and exactly the replayed users
    without any earlier interaction (one event, in the window) get the popularity list."""
    prepared = _prepared(MOVIELENS_REPLAY, [])
    data = prepared.source.data
    fold = data["fold_in"]
    assert fold["warm_up_events"]["replay"] > 0, fold
    assert (
        data["replayed_requests"] + fold["warm_up_events"]["replay"]
        == (data["windows"]["replay.events"])
    )
    stream = prepared.source.requests(0, np.random.default_rng(0))
    replayed = np.unique(stream.user)
    assert prepared.source.fold_in is not None
    has_history = prepared.source.fold_in.getnnz(axis=1)[replayed] > 0
    assert fold["replayed_users"] == replayed.size
    assert fold["replayed_users_with_history"] == int(has_history.sum()) > 0.99 * replayed.size
    for tables in prepared.versions[:2]:
        assert np.array_equal(tables.no_history(replayed), ~has_history), tables.name


_WIDE = (
    "shrunk by its cross-validation (c = 0.68), the baseline's predictions spread less and "
    "its held-out slope, 0.87 [0.56, 1.18] on 64 effective users, is 0.62 wide: more than "
    "SLOPE_MAX_CI_WIDTH (the candidate's 0.93 [0.63, 1.24], 0.61)"
)


@needs_movielens
@pytest.mark.slow
@pytest.mark.parametrize(
    "seed", [23, 1, pytest.param(2, marks=pytest.mark.xfail(strict=True, reason=_WIDE))]
)
def test_movielens_replay_slope_is_measured_once_users_are_folded_in(seed: int) -> None:
    """MovieLens latest-small split by time leaves 18 of the replay's 165 users with a
    history: without fold-in the other 147 all got the popularity list and one prediction,
    and the slope's information rested on 4.7 (baseline) and 6.6 (candidate) users, its
    interval ~0.95 wide.  Folded in (each user's first ratings, 10 in all and at least a
    fifth of theirs, taken as history: README, "How replayed users are scored"), every
    replayed user has a list of their own and the held-out slope is measured for every
    seed: at least SLOPE_MIN_EFFECTIVE_USERS effective users, interval at most
    SLOPE_MAX_CI_WIDTH wide.  Twenty click draws: the noise is in which users there are,
    not in the clicks.  The run's summary judges each version on its own share of the users
    only: there the slope is measured or left out with a warning."""
    prepared = _prepared(MOVIELENS_REPLAY, [f"traffic.log.path={MOVIELENS}", f"seed={seed}"])
    assert prepared.source.data["fold_in"]["replayed_users_with_history"] == 165
    for name, fit in _movielens_held_out(prepared, draws=20).items():
        assert fit.effective_clusters is not None, name
        assert fit.measured(SLOPE_MAX_CI_WIDTH, SLOPE_MIN_EFFECTIVE_USERS), (name, fit)
        assert fit.slope > 0, (name, fit)
    if seed != 23:
        return
    scenario = load_scenario(
        MOVIELENS_REPLAY, [f"traffic.log.path={MOVIELENS}", "metrics.noise_floor=false"]
    )
    summary = build_summary(run(scenario, base_dir=MOVIELENS_REPLAY.parent), reproducible=True)
    for name in ("baseline", "candidate"):
        _assert_reported(summary["versions"][name]["quality"]["calibration"], name)


def test_logged_feedback_calibrator_is_shrunk_by_user_grouped_cross_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bundled sample: the calibrator fitted on the update window's logged feedback is
    the plain fit with its linear predictor mapped by the shrinkage its user-grouped
    cross-validation finds (lab.calibration_shrinkage): weights c·β, intercept δ + c·β₀,
    0 <= c <= 1, named in ``fitted_on``; the candidate inherits it as it is."""
    found: list[Shrinkage | None] = []

    def spy(*args: Any, **kwargs: Any) -> Shrinkage | None:
        found.append(grouped_shrinkage(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(lab_calibration, "grouped_shrinkage", spy)
    shrunk = _prepared(MOVIELENS_REPLAY, []).versions
    monkeypatch.setattr(lab_calibration, "grouped_shrinkage", lambda *a, **k: None)
    plain = _prepared(MOVIELENS_REPLAY, []).versions
    assert len(found) == 1 and found[0] is not None, found
    shrinkage = found[0]
    assert 0.0 <= shrinkage.factor <= 1.0 and shrinkage.users > 100, shrinkage
    base, raw = shrunk[0].calibrator, plain[0].calibrator
    assert base is not None and raw is not None
    weights, intercept = shrinkage.apply(np.asarray(raw.weights), raw.intercept)
    np.testing.assert_allclose(base.weights, weights, rtol=1e-12, atol=1e-15)
    assert base.intercept == pytest.approx(intercept, rel=1e-12)
    assert shrinkage.describe() in base.fitted_on and "shrunk" not in raw.fitted_on
    candidate = shrunk[1].calibrator
    assert candidate is not None and candidate.weights == base.weights


_DRIFT = (
    "the calibrator, fitted on the update window (2011-2014, 63 users) and shrunk by its "
    "user-grouped cross-validation there (c = 0.92 at seed 1), still spreads its predictions "
    "for the replay (2014-2018) too widely: held-out slope 0.70 [0.46, 0.93] (baseline), "
    "0.69 [0.46, 0.92] (candidate); cross-validation within a window cannot see the drift "
    "between windows (README, Click predictions)"
)


@needs_movielens
@pytest.mark.slow
@pytest.mark.parametrize(
    "seed", [23, pytest.param(1, marks=pytest.mark.xfail(strict=True, reason=_DRIFT)), 2]
)
def test_movielens_replay_held_out_slope_in_band(seed: int) -> None:
    prepared = _prepared(MOVIELENS_REPLAY, [f"traffic.log.path={MOVIELENS}", f"seed={seed}"])
    _assert_in_band(_movielens_held_out(prepared, draws=20), f"movielens latest-small seed {seed}")
