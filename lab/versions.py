"""What each model version shows each user, decided once before the simulation.

For every version and user the lab needs the top-K list (scored in batches with
``replay.topk.top_k``), the *true* probability that the user clicks each listed item when
examining it (from the synthetic world's latent truth, times the version's ``click_lift``),
and the version's own *prediction* of that probability (Platt-calibrated model scores), so
that the event loop only looks rows up.

Rows are materialised lazily for the users that actually appear in traffic
(``VersionTables.ensure``): a million-user world with a short run never scores everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from replay.calibration import Platt, fit_platt
from replay.synthetic import SyntheticWorld
from replay.topk import top_k
from replay.training import TrainedModel
from sim.users import list_click_probability

__all__ = ["ClickTruth", "PopularTables", "Truth", "VersionTables", "model_scores"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0))), dtype=np.float32)


def model_scores(model: TrainedModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The model's score of ``items [n, K]`` for ``users [n]`` (0 for users or items it lacks)."""
    known_user = users < model.n_users
    safe_items = np.where((items >= 0) & (items < model.n_items), items, 0)
    user_factors = np.zeros((users.size, model.user_factors.shape[1]), np.float32)
    user_factors[known_user] = model.user_factors[users[known_user]]
    scores = np.einsum("nf,nkf->nk", user_factors, model.item_factors[safe_items])
    return np.asarray(np.where(items >= 0, scores, 0.0), dtype=np.float32)


class Truth(Protocol):
    """How likely a user is to click an item once examined (synthetic truth or a log)."""

    @property
    def position_decay(self) -> float: ...

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class ClickTruth:
    """The user-response side of the world: true affinities and how they become clicks."""

    world: SyntheticWorld
    click_offset: float
    position_decay: float

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray:
        """True P(click | examined) for ``items [n, K]``; 0 on empty slots."""
        p = sigmoid(self.world.affinity(users, items) + self.click_offset)
        if lift:
            p = np.minimum(p * (1.0 + lift), 1.0)
        return np.where(items >= 0, p, 0.0).astype(np.float32)


class VersionTables:
    """Top-K items, true relevance, model scores and predictions of one version, per user.

    items      int32   [n_users, K]  -1 = empty slot
    relevance  float32 [n_users, K]  true P(click | examined)
    scores     float32 [n_users, K]  the model's scores of its own list
    predicted  float32 [n_users]     predicted P(click on the list) (cascade over Platt probs)
    """

    def __init__(
        self,
        name: str,
        model: TrainedModel,
        *,
        seen: sp.csr_matrix,
        consumed: sp.csr_matrix,
        truth: Truth,
        n_users: int,
        popular_items: np.ndarray,
        k: int,
        click_lift: float,
        parent: str | None,
        update: str | None,
    ) -> None:
        self.name = name
        self.model = model
        self.parent = parent
        self.update = update
        self.click_lift = click_lift
        self.items = np.full((n_users, k), -1, np.int32)
        self.relevance = np.zeros((n_users, k), np.float32)
        self.scores = np.zeros((n_users, k), np.float32)
        self.predicted = np.zeros(n_users, np.float32)
        self.ready = np.zeros(n_users, bool)
        self.platt: Platt | None = None
        self.popularity_fallback_users = 0
        self._seen_rows = np.asarray(seen.getnnz(axis=1))
        self._consumed = consumed
        self._truth = truth
        self.popular_items = popular_items
        self._k = k

    def ensure(
        self,
        users: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        platt: Platt | None = None,
    ) -> None:
        """Materialise rows for ``users`` not yet scored.

        The first call calibrates: it adopts ``platt`` (inherited from the parent) or fits one
        on these users with ``rng``.
        """
        todo = np.unique(users[~self.ready[users]])
        if todo.size == 0:
            return
        result = top_k(self.model, todo, self._consumed, self._k)
        chosen = result.items.copy()
        # Users the version never saw interact get the popularity list (what a service does).
        rows = np.minimum(todo, self._seen_rows.shape[0] - 1)
        no_history = (
            (self._seen_rows[rows] == 0) | result.unknown | (todo >= self._seen_rows.shape[0])
        )
        chosen[no_history] = self.popular_items
        relevance = self._truth.relevance(todo, chosen, self.click_lift)
        scores = model_scores(self.model, todo, chosen)
        if self.platt is None:
            if platt is not None:
                self.platt = platt
            elif rng is not None:
                self.platt = _fit_platt(scores, relevance, chosen, rng=rng)
            else:
                raise ValueError(
                    "the first ensure() of a version must calibrate: pass rng or platt"
                )
        predicted = list_click_probability(self.platt.predict(scores), self._truth.position_decay)
        self.items[todo] = chosen
        self.relevance[todo] = relevance
        self.scores[todo] = scores
        self.predicted[todo] = predicted
        self.ready[todo] = True
        self.popularity_fallback_users += int(no_history.sum())


class PopularTables:
    """The popularity list every fallback serves, with its truth and the baseline's prediction."""

    def __init__(self, items: np.ndarray, truth: Truth, n_users: int) -> None:
        k = items.shape[0]
        self.items = items
        self.relevance = np.zeros((n_users, k), np.float32)
        self.predicted = np.zeros(n_users, np.float32)
        self.ready = np.zeros(n_users, bool)
        self._truth = truth

    def ensure(self, users: np.ndarray, baseline: VersionTables) -> None:
        todo = np.unique(users[~self.ready[users]])
        if todo.size == 0:
            return
        lists = np.broadcast_to(self.items, (todo.size, self.items.shape[0]))
        self.relevance[todo] = self._truth.relevance(todo, lists, 0.0)
        assert baseline.platt is not None
        scores = model_scores(baseline.model, todo, np.ascontiguousarray(lists))
        self.predicted[todo] = list_click_probability(
            baseline.platt.predict(scores), self._truth.position_decay
        )
        self.ready[todo] = True


def _fit_platt(
    scores: np.ndarray, truth: np.ndarray, items: np.ndarray, *, rng: np.random.Generator
) -> Platt:
    """Platt scaling fitted on a validation sample of impressions with simulated feedback.

    Up to 3,000 users' lists are shown once and each item clicked with its true probability;
    the fit maps the model's score to P(click | examined) — how a team would calibrate on
    logged feedback before a release.
    """
    sample = rng.choice(scores.shape[0], size=min(3_000, scores.shape[0]), replace=False)
    mask = items[sample] >= 0
    labels = (rng.random(mask.shape) < truth[sample]) & mask
    return fit_platt(scores[sample][mask], labels[mask].astype(np.int8))
