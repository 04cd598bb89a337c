"""Each version's click calibration, fitted on validation feedback before any traffic.

A version predicts P(click | examined) for every item it lists with a logistic model of list
features (:class:`replay.calibration.ClickCalibrator`; why features and not the raw score:
see that module).  The model is fitted on feedback a team would have before the release:

* **synthetic worlds** — validation impressions (users drawn with replacement by activity,
  as requests arrive) show the version's lists, and every listed item is clicked with its true
  probability P(click | examined) (the world's truth, times the version's ``click_lift``);
  labels are per item, features per item, so the fit needs no cascade;
* **replayed logs** — the requests of the window before the replay (the update window),
  each with what its user consumed next (the same horizon as the replay's truth), shown the
  lists the version would have served *then* (its top-K without what the user had consumed
  before that window, and the popularity list of that time).  An item consumed next is
  clicked with ``click_if_consumed``, any other with ``click_otherwise``, as during the
  replay.  A version that trained on that
  window (a warm-started or retrained candidate) would be judged on its own training data,
  so it takes its parent's calibrator instead (noted in ``fitted_on``): the features are
  on the same scale for every version, so the coefficients transfer.  A log's window holds
  a fixed, often small set of users (MovieLens latest-small's update window: 63), whose
  peculiarities the fit learns too; its linear predictor is shrunk by the factor a
  user-grouped cross-validation on the same feedback finds (``lab.calibration_shrinkage``,
  named in ``fitted_on``).

``calibration = "inherit"`` in a scenario takes the parent's calibrator in every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lab.calibration_shrinkage import grouped_shrinkage
from lab.versions import VersionTables
from replay.artifact_store import Artifact, ArtifactStore
from replay.calibration import FEATURES, ClickCalibrator, fit_logistic, list_features
from replay.errors import UserInputError

__all__ = [
    "NEGATIVES_EVERY",
    "LoggedFeedback",
    "fit_on_logged_feedback",
    "fit_on_simulated_feedback",
    "stored_calibration",
    "subsample_negatives",
]

#: Impressions (lists) a calibration is fitted on, at most.
MAX_LISTS = 20_000
#: The fit keeps every click but the unclicked items of one impression in this many,
#: weighted by it (``fit_logistic``'s ``sample_weight``): clicks are rare (about 1 % of
#: listed items), so nearly all the information is in them, and a quarter of the 200,000
#: labels cost a quarter of the features and of the Newton steps.  Effect on the fit, same
#: labels both ways (``tests/unit/lab/test_calibration_subsample.py``, ten seeds): the
#: coefficients move by at most 0.8 of their standard error, the noise-free calibration
#: slope by at most 0.011; the held-out slope stays in [0.8, 1.2]
#: (``tests/validation/test_calibration.py``).
NEGATIVES_EVERY = 4


@dataclass(frozen=True, slots=True)
class LoggedFeedback:
    """Held-out logged feedback: the validation window's requests and what came next.

    users          int64 [m]        the user of each validation request
    consumed_next  csr [m, n_items] 1 where the request's user consumed the item next
    known_before   csr [n_users, n_items] what users had consumed before the window (the
                   lists of that time leave it out)
    popular_before int32 [K] the popularity list of that time (by ``known_before``)
    fold_in        users are folded in from ``known_before`` (``replay.fold_in``), which then
                   also holds the window's warm-up events
    """

    users: np.ndarray
    consumed_next: sp.csr_matrix
    known_before: sp.csr_matrix
    popular_before: np.ndarray
    click_if_consumed: float
    click_otherwise: float
    window: str
    fold_in: bool = False


def _fit(
    table: VersionTables,
    users: np.ndarray,
    items: np.ndarray,
    no_history: np.ndarray,
    p_click: np.ndarray,
    *,
    rng: np.random.Generator,
    fitted_on: str,
    shrink: bool = False,
) -> ClickCalibrator:
    """Draw a click per listed item with probability ``p_click [n, K]`` and fit the features
    of every click and of the unclicked items of every :data:`NEGATIVES_EVERY`-th impression
    (weighted by it).  Impressions are independent draws, so taking them by position is a
    random subsample; the generator draws exactly as for the whole sample.

    ``shrink``: scale the fit by its out-of-fold shrinkage over ``users``
    (:mod:`lab.calibration_shrinkage`), drawing the folds from ``rng`` after the clicks."""
    listed = items >= 0
    if not listed.any():
        # Every user sampled had already consumed every item (a tiny log): no list, nothing
        # to fit a click probability on.
        raise UserInputError(
            f"calibration: every list of the {fitted_on} is empty, because those users have"
            " already consumed every item; replay a log with more items than any user has"
            " consumed, or a longer window"
        )
    labels = (rng.random(items.shape) < p_click) & listed
    kept, sample_weight = subsample_negatives(labels, listed)
    # Shrinking needs every request's features (the held-out lists whole); a plain fit only
    # those of requests with a kept label.
    rows = np.arange(users.size) if shrink else np.flatnonzero(kept.any(axis=1))
    features = list_features(
        table.model, users[rows], items[rows], no_history[rows], table.history_length(users[rows])
    )
    keep = kept[rows]
    weights, intercept = fit_logistic(
        features[keep], labels[rows][keep].astype(np.int8), sample_weight=sample_weight
    )
    note = f"{fitted_on}; unclicked items of 1 impression in {NEGATIVES_EVERY}, weighted"
    if shrink:
        shrinkage = grouped_shrinkage(
            features,
            listed,
            labels,
            kept,
            sample_weight,
            users,
            position_decay=table.truth.position_decay,
            rng=rng,
        )
        if shrinkage is not None:
            weights, intercept = shrinkage.apply(weights, intercept)
            note = f"{note}; {shrinkage.describe()}"
    return ClickCalibrator(FEATURES, tuple(float(w) for w in weights), intercept, note)


def subsample_negatives(
    labels: np.ndarray, listed: np.ndarray, every: int = NEGATIVES_EVERY
) -> tuple[np.ndarray, np.ndarray]:
    """Which labels of ``[n, K]`` impressions a fit keeps, and their weights.

    Every listed click (weight 1) and every listed non-click of impressions ``0, every,
    2 every, ...`` (weight ``every``): ``(kept [n, K] bool, weights [kept.sum()] float64``
    in row-major order of ``kept``).
    """
    sampled = (np.arange(labels.shape[0]) % every == 0)[:, None]
    kept = listed & (labels | sampled)
    weights = np.where(labels[kept], 1.0, float(every))
    return kept, weights


def fit_on_simulated_feedback(
    table: VersionTables, activity: np.ndarray, *, rng: np.random.Generator, lists: int = MAX_LISTS
) -> ClickCalibrator:
    """Fit on ``lists`` impressions of users drawn with replacement ∝ ``activity [n_users]``
    (as requests arrive), clicks drawn from the truth."""
    sample = rng.choice(activity.size, size=lists, replace=True, p=activity / activity.sum())
    distinct, inverse = np.unique(sample, return_inverse=True)
    shown, unknown = table.lists(distinct)
    items, no_history = shown[inverse], unknown[inverse]
    truth = table.truth.relevance(sample, items, table.click_lift)
    return _fit(
        table,
        sample,
        items,
        no_history,
        truth,
        rng=rng,
        fitted_on=f"simulated feedback on {lists:,} validation impressions",
    )


def fit_on_logged_feedback(
    table: VersionTables, feedback: LoggedFeedback, *, rng: np.random.Generator
) -> ClickCalibrator:
    """Fit on up to :data:`MAX_LISTS` logged validation requests, shrunk by user-grouped
    cross-validation (see the module docstring)."""
    m = feedback.users.size
    rows = np.sort(rng.choice(m, size=min(MAX_LISTS, m), replace=False))
    users = feedback.users[rows]
    distinct, inverse = np.unique(users, return_inverse=True)
    lists, no_history = table.lists(
        distinct, consumed=feedback.known_before, popular=feedback.popular_before
    )
    items, unknown = lists[inverse], no_history[inverse]
    nxt = feedback.consumed_next[rows]
    consumed = np.asarray(nxt[np.arange(rows.size)[:, None], np.maximum(items, 0)].todense()) > 0
    p_click = np.where(consumed, feedback.click_if_consumed, feedback.click_otherwise)
    p_click = np.minimum(p_click * (1.0 + table.click_lift), 1.0)
    return _fit(
        table,
        users,
        items,
        unknown,
        p_click,
        rng=rng,
        fitted_on=f"logged feedback of {rows.size:,} requests in the {feedback.window}",
        shrink=True,
    )


def stored_calibration(
    store: ArtifactStore,
    key: str,
    rng: np.random.Generator,
    fit: Callable[[], ClickCalibrator],
) -> ClickCalibrator:
    """The calibration stored under ``key`` (``lab.artifacts.calibration_key``), or ``fit()``
    (then stored); either way ``rng`` is left as ``fit`` leaves it.

    The coefficients travel as JSON numbers (``repr`` round-trips every float exactly) and
    the generator's state after the fit with them, so a run that reads the entry predicts
    and draws on exactly as the run that fitted it.
    """

    def build() -> Artifact:
        calibrator = fit()
        return Artifact(
            {},
            {
                "features": list(calibrator.features),
                "weights": list(calibrator.weights),
                "intercept": calibrator.intercept,
                "fitted_on": calibrator.fitted_on,
                "rng_state": rng.bit_generator.state,
            },
        )

    meta = store.fetch("calibration", key, build).meta
    rng.bit_generator.state = meta["rng_state"]
    return ClickCalibrator(
        tuple(str(f) for f in meta["features"]),
        tuple(float(w) for w in meta["weights"]),
        float(meta["intercept"]),
        str(meta["fitted_on"]),
    )
