"""What each model version shows each user, decided once before the simulation.

For every version and user the lab needs the top-K list (scored in batches with
``replay.topk.top_k``), the *true* probability that the user clicks each listed item when
examining it (from the synthetic world's latent truth, times the version's ``click_lift``),
and the version's own *prediction* of that probability (its click calibrator applied to
features of the list, :mod:`replay.calibration`, fitted by :mod:`lab.calibration`), so that
the event loop only looks rows up.

Rows are materialised lazily for the users that actually appear in traffic
(``VersionTables.ensure``): a million-user world with a short run never scores everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from lab.exploration import Exploration
from lab.list_store import ListStore
from replay.calibration import ClickCalibrator, item_scores, list_features
from replay.synthetic import SyntheticWorld, engagement_logits
from replay.topk import top_k
from replay.training import TrainedModel
from sim.users import list_click_probability

__all__ = ["ClickTruth", "PopularTables", "Truth", "VersionTables", "predicted_list_click"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0))), dtype=np.float32)


def predicted_list_click(
    calibrator: ClickCalibrator,
    model: TrainedModel,
    users: np.ndarray,
    items: np.ndarray,
    no_history: np.ndarray,
    history: np.ndarray,
    position_decay: float,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """Predicted P(click on the list) [n]: the cascade over calibrated item probabilities.

    P = Σ_k decay^k · Π_{j<k} (1 − p̂_j) · p̂_k with p̂ from ``calibrator`` on
    :func:`replay.calibration.list_features` (``history [n]``: the users' interactions the
    version learnt from; ``scores``: the model's scores of ``items`` when known); empty slots
    (-1) count 0.
    """
    p = calibrator.predict(list_features(model, users, items, no_history, history, scores))
    return list_click_probability(np.where(items >= 0, p, 0.0), position_decay)


class ListRows(Protocol):
    """Where a version's lists come from: ``lab.list_store.ListStore`` (scored by the lab)
    or ``lab.external.FixedLists`` (decided by another system)."""

    scoring_s: float

    def rows(self, users: np.ndarray) -> np.ndarray: ...

    def save(self) -> None: ...


class Truth(Protocol):
    """How likely a user is to click an item once examined (synthetic truth or a log)."""

    @property
    def position_decay(self) -> float: ...

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class ClickTruth:
    """The user-response side of the world: true affinities and how they become clicks.

    ``P(click | examined) = sigmoid(a(u, i) + click_offset + engagement_u)`` with
    ``engagement_u = activity_engagement * (ln activity_u - Σ_v w_v ln activity_v)`` with
    ``w_v = activity_v / Σ activity``: users who come more often also click more of what
    they examine.  The centring is weighted as traffic is (sessions are drawn in proportion
    to activity), so the average request's logit is unchanged and ``click_offset`` keeps
    setting the overall click level.  Without it, new users served the popularity list
    out-click returning users by 1.6-1.9x (the popular items have the largest affinity and
    returning users have already consumed many of them), the reverse of what services see.
    """

    world: SyntheticWorld
    click_offset: float
    position_decay: float
    activity_engagement: float = 0.0
    engagement: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        engagement = engagement_logits(self.world.activity, self.activity_engagement)
        object.__setattr__(self, "engagement", engagement)

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray:
        """True P(click | examined) for ``items [n, K]``; 0 on empty slots."""
        logit = self.world.affinity(users, items) + self.click_offset
        if self.activity_engagement:
            logit += self.engagement[np.minimum(users, self.engagement.size - 1)][:, None]
        p = sigmoid(logit)
        if lift:
            p = np.minimum(p * (1.0 + lift), 1.0)
        return np.where(items >= 0, p, 0.0).astype(np.float32)


class VersionTables:
    """Top-K items, true relevance, model scores and predictions of one version, per user.

    items      int32   [n_users, K]  -1 = empty slot
    relevance  float32 [n_users, K]  true P(click | examined)
    scores     float32 [n_users, K]  the model's scores of its own list
    predicted  float32 [n_users]     predicted P(click on the list) (cascade over the
                                     calibrator's item probabilities)

    ``covered`` bool [n_users]: the users a version from outside the run has a list for
    (None: every user it saw interact); the others get ``fallback``'s list (another
    version's tables) or, without one, the popularity list, and count as
    ``popularity_fallback_users``.  ``origin``: where the version came from (summary.json).
    ``lists_only``: rows get their items alone (relevance, scores and predictions stay 0),
    for tables whose lists are all that is read (the noise floor's).
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
        list_store: ListRows | None = None,
        covered: np.ndarray | None = None,
        fallback: VersionTables | None = None,
        origin: dict[str, Any] | None = None,
        trained_model: TrainedModel | None = None,
        exploration: Exploration | None = None,
        lists_only: bool = False,
    ) -> None:
        self.name = name
        self.lists_only = lists_only
        # What the version learnt, before any replayed user was folded in (lab.fold_in):
        # what the registry keeps.  ``model`` is what it serves with.
        self.trained_model = trained_model or model
        self.exploration = exploration
        self.covered = covered
        self.fallback = fallback
        self.origin: dict[str, Any] = origin or {
            "source": "lab",
            "registry_id": None,
            "provenance": None,
        }
        self.model = model
        self.parent = parent
        self.update = update
        self.click_lift = click_lift
        self.items = np.full((n_users, k), -1, np.int32)
        self.relevance = np.zeros((n_users, k), np.float32)
        self.scores = np.zeros((n_users, k), np.float32)
        self.predicted = np.zeros(n_users, np.float32)
        self.ready = np.zeros(n_users, bool)
        self.calibrator: ClickCalibrator | None = None
        self.popularity_fallback_users = 0
        self._seen_rows = np.asarray(seen.getnnz(axis=1))
        self.truth = truth
        self.popular_items = popular_items
        self._k = k
        # The run's lists (filtering ``consumed``), scored once per user and shareable.
        self.list_store: ListRows = list_store or ListStore(model, consumed, k, n_users)

    def lists(
        self,
        users: np.ndarray,
        consumed: sp.csr_matrix | None = None,
        popular: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(items [n, K], no_history [n])`` for ``users`` (not stored).

        The top-K of the model without what ``consumed`` (default: everything before the
        run) holds; users the version never saw interact get the popularity list
        (``popular``, default: the run's), as a service would serve them.
        """
        no_history = self.no_history(users) | (users >= self.model.n_users)
        chosen = np.empty((users.size, self._k), np.int32)
        if self.fallback is not None and no_history.any():
            chosen[no_history] = self.fallback.lists(users[no_history], consumed, popular)[0]
        else:
            chosen[no_history] = self.popular_items if popular is None else popular
        known = users[~no_history]
        if consumed is None or not isinstance(self.list_store, ListStore):
            # Lists decided outside the lab are what they are, whatever was consumed.
            chosen[~no_history] = self.list_store.rows(known)
        else:
            chosen[~no_history] = top_k(self.model, known, consumed, self._k).items
        return chosen, no_history

    def no_history(self, users: np.ndarray) -> np.ndarray:
        """bool [n]: users this version never saw interact (it serves them the popular list)."""
        if self.covered is not None:
            return np.asarray(~self.covered[np.minimum(users, self.covered.size - 1)])
        rows = np.minimum(users, self._seen_rows.shape[0] - 1)
        return np.asarray((self._seen_rows[rows] == 0) | (users >= self._seen_rows.shape[0]))

    def history_length(self, users: np.ndarray) -> np.ndarray:
        """int [n]: the users' interactions this version learnt from (0 beyond its users)."""
        rows = np.minimum(users, self._seen_rows.shape[0] - 1)
        return np.where(users < self._seen_rows.shape[0], self._seen_rows[rows], 0)

    def predict(
        self,
        users: np.ndarray,
        items: np.ndarray,
        no_history: np.ndarray,
        scores: np.ndarray | None = None,
    ) -> np.ndarray:
        """Predicted P(click on the list) [n] for these lists (needs a calibrator;
        ``scores``: the model's scores of ``items``, computed here when not given)."""
        if self.calibrator is None:
            raise ValueError(f"version {self.name!r} must be calibrated before it predicts")
        return predicted_list_click(
            self.calibrator,
            self.model,
            users,
            items,
            no_history,
            self.history_length(users),
            self.truth.position_decay,
            scores,
        )

    def predict_shown(self, users: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Predicted P(click on the list) [n] of this version's lists for ``users`` shown in
        the column ``order [n, K]`` (a degraded answer's retrieval order): the calibrator on
        the re-ordered list's features (its ranks change) and the cascade over its positions;
        a table with its system's own click probabilities re-orders those.  The identity
        order gives :attr:`predicted`."""
        items = np.take_along_axis(self.items[users], order, axis=1)
        no_history = self.no_history(users) | (users >= self.model.n_users)
        out = np.asarray(self.predict(users, items, no_history), dtype=np.float32)
        p_click = getattr(self.list_store, "p_click", None)
        if p_click is not None:
            own = ~no_history
            shown = np.take_along_axis(p_click[users[own]], order[own], axis=1)
            out[own] = list_click_probability(shown, self.truth.position_decay)
        return out

    def ensure(self, users: np.ndarray) -> None:
        """Materialise rows for ``users`` not yet scored (the version must be calibrated)."""
        todo = np.unique(users[~self.ready[users]])
        if todo.size == 0:
            return
        chosen, no_history = self.lists(todo)
        if self.exploration is not None and isinstance(self.list_store, ListStore):
            # Lab-scored lists only: a list decided outside the lab is what it is.
            chosen = self.exploration.apply(
                todo, chosen, self.list_store.consumed, self.model.n_items
            )
        self.items[todo] = chosen
        if self.lists_only:
            self.ready[todo] = True
            return
        self.relevance[todo] = self.truth.relevance(todo, chosen, self.click_lift)
        scores = item_scores(self.model, todo, chosen)
        self.scores[todo] = scores
        self.predicted[todo] = self.predict(todo, chosen, no_history, scores)
        # A table with its system's own click probabilities: that system's prediction of its
        # lists is what its calibration is judged on.
        p_click = getattr(self.list_store, "p_click", None)
        if p_click is not None:
            own = todo[~no_history]
            self.predicted[own] = list_click_probability(p_click[own], self.truth.position_decay)
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
        lists = np.ascontiguousarray(np.broadcast_to(self.items, (todo.size, self.items.shape[0])))
        self.relevance[todo] = self._truth.relevance(todo, lists, 0.0)
        self.predicted[todo] = baseline.predict(todo, lists, baseline.no_history(todo))
        self.ready[todo] = True
