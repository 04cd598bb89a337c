"""Click calibration: turn a model's lists into click probabilities.

Two models live here.

**List features** (what versions use, :class:`ClickCalibrator`).  ALS scores are not
comparable across users: a heavy user's factors are longer, so all their scores are larger,
while their lists hold less popular items (they consumed the head already) that they click
less.  A single score-to-probability curve (Platt) fitted across users is then
anti-calibrated: in the quick start the highest predictions got the fewest clicks
(calibration slope −0.26).  Instead P(click | examined) is a logistic model of six
features of a listed item that mean the same for every user and version
(:func:`list_features`):

    within_user_score  z = (s_ui − μ_u) / σ_u, the item's score against the user's score
                       distribution over the whole catalogue (μ_u = x_u·ȳ, σ_u² = x_uᵀ Σ_y x_u,
                       ȳ and Σ_y the mean and covariance of the item factors): how far the
                       model thinks the item stands out for this user; 0 without factors;
    log_rank           log(1 + k), k = 0 for the top of the list;
    log_popularity_rank  log(1 + the item's rank by popularity in the version's data), 0 for
                       the most popular: a rank, not a count, so it keeps its scale when a
                       version is updated on more data;
    no_history         1 for users the version knows nothing about (popularity list);
    log_history        log(1 + n_u), n_u the user's interactions the version learnt from
                       (0 with no history);
    within_user_score_x_log_history  z · log(1 + n_u): how much z means depends on how much
                       the version knows of the user.

Why the history terms: with the first four alone the item model was calibrated over all
users but not within activity levels.  A light user's factors rest on a few interactions,
so their z-scores spread as widely as a heavy user's while saying less; one coefficient of
z for everyone over-spread the light users' predictions (quick start, noise-free slope of
the list prediction on the true list probability: 0.63 for light users, 1.3 for heavy
ones, 0.89 overall).  A canary serving a random tenth of the users then measured anything
from 0.75 to 1.1 depending on its mix.  The interaction lets the slope of z grow with the
history (light 0.8, heavy 1.1, overall 1.0; see README, "Click predictions").

It is fitted (:func:`fit_logistic`) on validation feedback: impressions of the version's
lists with clicks simulated from the synthetic world's truth, or, for replayed logs, what
users consumed next in the window before the replay.  A calibration is judged by the
slope of logit P(click) on logit p̂ on the run's own clicks (``sim.metrics.calibration``).

**Platt scaling** (Platt 1999), one curve of the raw score, kept for registered versions:

    p(click | score s) = 1 / (1 + exp(-(a * s + b)))

``a`` and ``b`` minimise the penalised negative log-likelihood on a validation window

    L(a, b) = -sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)] + (l2 / 2) (a^2 + b^2)

by Newton's method with step halving.  The small L2 prior keeps ``a`` and ``b`` finite when
the data are separable (every click scored above every non-click) or one-class, where the
plain maximum-likelihood fit runs off to infinity.  Note the sign: Platt's paper writes
``1 / (1 + exp(A s + B))``, i.e. ``A = -a``, ``B = -b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from replay.distributions import rankdata
from replay.errors import InternalError, must_be
from replay.training import TrainedModel

__all__ = [
    "FEATURES",
    "ClickCalibrator",
    "Platt",
    "fit_logistic",
    "fit_platt",
    "item_scores",
    "list_features",
    "popularity_rank",
]


@dataclass(frozen=True, slots=True)
class Platt:
    """Fitted calibration ``p = sigmoid(a * score + b)``."""

    a: float
    b: float

    def predict(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Click probabilities in [0, 1], same shape as ``scores``."""
        values = np.asarray(scores, dtype=np.float64)
        result: npt.NDArray[np.float64] = expit(self.a * values + self.b)
        return result


def item_scores(model: TrainedModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The model's score of ``items [n, K]`` for ``users [n]`` (0 for users or items it lacks)."""
    known_user = users < model.n_users
    safe_items = np.where((items >= 0) & (items < model.n_items), items, 0)
    user_factors = np.zeros((users.size, model.user_factors.shape[1]), np.float32)
    user_factors[known_user] = model.user_factors[users[known_user]]
    scores = np.einsum("nf,nkf->nk", user_factors, model.item_factors[safe_items])
    return np.asarray(np.where(items >= 0, scores, 0.0), dtype=np.float32)


def fit_platt(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    l2: float = 1e-3,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
) -> Platt:
    """Fit ``Platt(a, b)`` to 1-D ``scores`` and 0/1 ``labels`` (one per impression).

    Stops when a Newton step changes neither parameter by more than ``tolerance`` (relative
    to 1 + |parameter|).  ``l2 = 0`` gives the plain maximum-likelihood fit, which exists only
    when the data are not separable.
    """
    source = "fit_platt"
    s = np.asarray(scores, dtype=np.float64)
    y_raw = np.asarray(labels)
    if s.ndim != 1 or s.size == 0:
        raise must_be(source, "scores", "a non-empty 1-D array", f"shape {s.shape}")
    if y_raw.shape != s.shape:
        raise must_be(source, "labels", f"shape {s.shape} like scores", y_raw.shape)
    if not np.all(np.isfinite(s)):
        raise must_be(source, "scores", "finite", "non-finite values")
    y = y_raw.astype(np.float64)
    if not np.all((y == 0) | (y == 1)):
        raise must_be(source, "labels", "0 or 1", sorted(set(np.unique(y).tolist()) - {0.0, 1.0}))
    if not (math.isfinite(l2) and l2 >= 0):
        raise must_be(source, "l2", "a finite number >= 0", l2)

    # Newton on the centred score: same optimum for (a, b) after shifting back, but the
    # Hessian is better conditioned when scores sit far from zero.
    shift = float(s.mean())
    x = s - shift
    a, c = 0.0, 0.0  # c is the intercept at the centred score: b = c - a * shift

    def objective(a_: float, c_: float) -> float:
        z = a_ * x + c_
        # log(1 + e^z) - y z, computed without overflow
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        b_ = c_ - a_ * shift
        return nll + 0.5 * l2 * (a_ * a_ + b_ * b_)

    current = objective(a, c)
    for _ in range(max_iterations):
        p = expit(a * x + c)
        w = p * (1.0 - p)
        b = c - a * shift
        # Gradient and Hessian of the penalty in (a, c): b = c - a * shift.
        grad_a = float(np.dot(p - y, x)) + l2 * (a - shift * b)
        grad_c = float(np.sum(p - y)) + l2 * b
        h_aa = float(np.dot(w, x * x)) + l2 * (1.0 + shift * shift)
        h_ac = float(np.dot(w, x)) - l2 * shift
        h_cc = float(np.sum(w)) + l2
        det = h_aa * h_cc - h_ac * h_ac
        if not det > 0:
            # Flat likelihood (all weights vanished) with no prior: nothing left to learn.
            break
        step_a = (h_cc * grad_a - h_ac * grad_c) / det
        step_c = (h_aa * grad_c - h_ac * grad_a) / det
        t = 1.0
        while True:
            trial = objective(a - t * step_a, c - t * step_c)
            if trial <= current or t < 1e-12:
                break
            t *= 0.5
        a, c = a - t * step_a, c - t * step_c
        current = trial
        if abs(t * step_a) <= tolerance * (1 + abs(a)) and abs(t * step_c) <= tolerance * (
            1 + abs(c)
        ):
            break
    b = c - a * shift
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InternalError(f"Platt fit diverged to a={a}, b={b}")
    return Platt(a=float(a), b=float(b))


# --- click calibration from list features --------------------------------------------------

#: The features of :func:`list_features`, in column order.
FEATURES = (
    "within_user_score",
    "log_rank",
    "log_popularity_rank",
    "no_history",
    "log_history",
    "within_user_score_x_log_history",
    "log_score_spread",
    "within_user_score_x_log_score_spread",
)


@dataclass(frozen=True, slots=True)
class ClickCalibrator:
    """P(click | examined) = sigmoid(intercept + Σ_f weight_f · feature_f) for listed items.

    ``features`` names the columns of :func:`list_features`; ``fitted_on`` says which
    feedback the coefficients come from (e.g. ``"simulated validation feedback"``, or the
    parent's when inherited).
    """

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    fitted_on: str

    def predict(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Click probabilities for ``features [..., F]`` -> ``[...]``."""
        x = np.asarray(features, dtype=np.float64)
        z = x @ np.asarray(self.weights, dtype=np.float64) + self.intercept
        result: npt.NDArray[np.float64] = expit(z)
        return result

    def inherited(self, by: str) -> ClickCalibrator:
        """The same coefficients, noted as taken over by version ``by``."""
        note = f"{self.fitted_on}; inherited by {by}"
        return ClickCalibrator(self.features, self.weights, self.intercept, note)

    def as_dict(self) -> dict[str, object]:
        return {
            "model": "logistic",
            "intercept": self.intercept,
            "weights": dict(zip(self.features, self.weights, strict=True)),
            "fitted_on": self.fitted_on,
        }


#: Relative Newton step below which :func:`fit_logistic`'s objective (a sum over ~10⁵
#: labels) no longer ranks trial points reliably.
_ROUNDING_STEP = 1e-8


def fit_logistic(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    l2: float = 1e-3,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.float64], float]:
    """Logistic regression by Newton's method: ``(weights [F], intercept)``.

    Minimises −Σ_i [y_i log p_i + (1 − y_i) log(1 − p_i)] + (l2 / 2) · n · Σ_f β_f²  with
    p_i = sigmoid(β₀ + Σ_f β_f x̃_if), on features standardised to mean 0 and variance 1
    (x̃; constant columns get weight 0), then mapped back to the raw features.  The prior,
    scaled by the sample size n, keeps the weights finite for separable or one-class data
    and does not penalise the intercept.  Shapes: ``features`` [n, F], ``labels`` [n] 0/1.

    ``sample_weight`` [n] > 0: row i stands for w_i rows (a subsample drawn with probability
    1 / w_i): every sum above is weighted, n = Σ_i w_i, and the standardisation uses the
    weighted mean and variance, so the fit estimates the one on the whole sample.
    """
    source = "fit_logistic"
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise must_be(source, "features", "a non-empty 2-D array", f"shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise must_be(source, "labels", f"shape ({x.shape[0]},)", y.shape)
    if not np.all(np.isfinite(x)):
        raise must_be(source, "features", "finite", "non-finite values")
    if not np.all((y == 0) | (y == 1)):
        raise must_be(source, "labels", "0 or 1", sorted(set(np.unique(y).tolist()) - {0.0, 1.0}))
    n, f = x.shape
    if sample_weight is None:
        w = None
        total = float(n)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        rate = float(y.mean())
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w) & (w > 0)):
            raise must_be(source, "sample_weight", f"shape ({n},) of finite numbers > 0", w.shape)
        total = float(w.sum())
        mean = np.average(x, axis=0, weights=w)
        scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
        rate = float(np.dot(w, y)) / total
    varies = scale > 0
    design = np.hstack([np.ones((n, 1)), (x - mean)[:, varies] / scale[varies]])
    penalty = np.full(design.shape[1], l2 * total)
    penalty[0] = 0.0  # the intercept is not shrunk

    def objective(beta: npt.NDArray[np.float64]) -> float:
        z = design @ beta
        loss = np.logaddexp(0.0, z) - y * z
        total_loss = np.sum(loss) if w is None else np.dot(w, loss)
        return float(total_loss + 0.5 * np.dot(penalty * beta, beta))

    rate = min(max(rate, 1e-6), 1.0 - 1e-6)
    beta = np.zeros(design.shape[1])
    beta[0] = math.log(rate / (1.0 - rate))
    current = objective(beta)
    for _ in range(max_iterations):
        p = expit(design @ beta)
        residual, curvature = p - y, p * (1.0 - p)
        if w is not None:
            residual, curvature = w * residual, w * curvature
        gradient = design.T @ residual + penalty * beta
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        if np.all(np.abs(step) <= tolerance * (1.0 + np.abs(beta))):
            beta = beta - step
            break
        t = 1.0
        while True:
            trial_beta = beta - t * step
            trial = objective(trial_beta)
            if trial <= current or t < 1e-12:
                break
            if np.all(np.abs(t * step) <= _ROUNDING_STEP * (1.0 + np.abs(beta))):
                # Steps this small change the objective by less than its rounding: halving
                # further would only spend evaluations (about 40) moving nowhere.
                trial_beta, trial, t = beta, current, 0.0
                break
            t *= 0.5
        beta, current = trial_beta, trial
        if np.all(np.abs(t * step) <= tolerance * (1.0 + np.abs(beta))):
            break
    if not np.all(np.isfinite(beta)):
        raise InternalError(f"logistic fit diverged to {beta}")
    weights = np.zeros(f)
    weights[varies] = beta[1:] / scale[varies]
    intercept = float(beta[0] - np.dot(weights, mean))
    return weights, intercept


#: Smallest score spread σ_u whose log is taken (a user whose factors are all zero).
_SPREAD_FLOOR = 1e-6


def list_features(
    model: TrainedModel,
    users: np.ndarray,
    items: np.ndarray,
    no_history: np.ndarray,
    history: np.ndarray,
    scores: np.ndarray | None = None,
) -> npt.NDArray[np.float64]:
    """The :data:`FEATURES` of every listed item: ``[n, K, 8]`` float64.

    ``users [n]``, ``items [n, K]`` (-1: empty slot, features 0), ``no_history [n]`` bool
    (the user gets the popularity list: within-user score 0 and no history features),
    ``history [n]`` how many interactions of the user the version learnt from; ``scores``
    ``[n, K]`` float32: :func:`item_scores` of these lists when the caller has them already.
    See the module docstring.
    """
    n, k = items.shape
    out = np.zeros((n, k, len(FEATURES)))
    factors = np.asarray(model.item_factors, dtype=np.float64)
    if scores is None:
        scores = item_scores(model, users, items)
    scores = np.asarray(scores, dtype=np.float64)
    known = (users < model.n_users) & ~np.asarray(no_history, dtype=bool)
    if known.any():
        x = np.asarray(model.user_factors[users[known]], dtype=np.float64)
        mean = x @ factors.mean(axis=0)
        covariance = np.atleast_2d(np.cov(factors, rowvar=False, bias=True))
        # x_u' Σ x_u as one product and a row-wise dot: 4x faster than a three-way einsum
        # (which loops over f x g per user), equal to 3e-15 relative.
        spread = np.sqrt(np.maximum(np.einsum("ng,ng->n", x @ covariance, x), 0.0))
        z = np.zeros((int(known.sum()), k))
        ok = spread > 0
        z[ok] = (scores[known][ok] - mean[ok, None]) / spread[ok, None]
        out[known, :, 0] = z
        log_history = np.log1p(np.asarray(history, dtype=np.float64)[known])[:, None]
        out[known, :, 4] = log_history
        out[known, :, 5] = z * log_history
        log_spread = np.log(np.maximum(spread, _SPREAD_FLOOR))[:, None]
        out[known, :, 6] = log_spread
        out[known, :, 7] = z * log_spread
    out[:, :, 1] = np.log1p(np.arange(k, dtype=np.float64))[None, :]
    out[:, :, 2] = np.log1p(popularity_rank(model)[np.where(items >= 0, items, 0)])
    out[:, :, 3] = np.asarray(no_history, dtype=np.float64)[:, None]
    out[items < 0] = 0.0
    return out


def popularity_rank(model: TrainedModel) -> npt.NDArray[np.float64]:
    """Each item's rank by popularity in the model's data [n_items]: 0 the most popular, ties
    sharing their mean rank, so equal counts give equal features."""
    counts = np.asarray(model.item_popularity, dtype=np.float64)
    return np.asarray(rankdata(-counts) - 1.0, dtype=np.float64)
