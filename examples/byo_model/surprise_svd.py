"""A matrix-factorisation recommender built with scikit-surprise (``surprise.SVD``).

Surprise learns from ratings, so the implicit interactions become ratings the way
one-class collaborative filtering usually does it: every interaction is a 1 and, per user,
as many sampled items they did not interact with are 0s.  The fitted user and item factors
(with biases) are what a team would export as embeddings; ``embeddings()`` returns them in
the layout ``rollout-lab`` reads (see README, 'Bring your own model').
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from surprise import SVD, Trainset


def _trainset(
    users: npt.NDArray[np.int64], items: npt.NDArray[np.int64], ratings: npt.NDArray[np.float64]
) -> Trainset:
    """Surprise's training set built directly (its loaders want pandas or files)."""
    user_inner = {int(u): i for i, u in enumerate(np.unique(users))}
    item_inner = {int(j): i for i, j in enumerate(np.unique(items))}
    by_user: defaultdict[int, list[tuple[int, float]]] = defaultdict(list)
    by_item: defaultdict[int, list[tuple[int, float]]] = defaultdict(list)
    for u, j, r in zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True):
        by_user[user_inner[u]].append((item_inner[j], r))
        by_item[item_inner[j]].append((user_inner[u], r))
    return Trainset(
        by_user,
        by_item,
        len(user_inner),
        len(item_inner),
        len(users),
        (0, 1),
        user_inner,
        item_inner,
    )


class SurpriseSVD:
    def __init__(self, factors: int = 16, epochs: int = 20, seed: int = 0) -> None:
        self.factors, self.epochs, self.seed = factors, epochs, seed
        self.seen: sp.csr_matrix | None = None
        self.user_factors: npt.NDArray[np.float32] | None = None
        self.item_factors: npt.NDArray[np.float32] | None = None
        self.user_bias: npt.NDArray[np.float32] | None = None
        self.item_bias: npt.NDArray[np.float32] | None = None

    def fit(self, interactions: sp.csr_matrix) -> None:
        rng = np.random.default_rng(self.seed)
        self.seen = sp.csr_matrix(interactions > 0, dtype=np.float32)
        n_users, n_items = self.seen.shape
        users, items = self.seen.nonzero()
        negatives = rng.integers(0, n_items, users.size)
        trainset = _trainset(
            np.concatenate([users, users]),
            np.concatenate([items, negatives]),
            np.concatenate([np.ones(users.size), np.zeros(users.size)]),
        )
        model = SVD(n_factors=self.factors, n_epochs=self.epochs, random_state=self.seed)
        model.fit(trainset)
        self.user_factors = np.zeros((n_users, self.factors), np.float32)
        self.item_factors = np.zeros((n_items, self.factors), np.float32)
        self.user_bias = np.zeros(n_users, np.float32)
        self.item_bias = np.full(n_items, -1.0, np.float32)  # never seen: ranked last
        for raw, inner in trainset._raw2inner_id_users.items():
            self.user_factors[raw] = model.pu[inner]
            self.user_bias[raw] = model.bu[inner]
        for raw, inner in trainset._raw2inner_id_items.items():
            self.item_factors[raw] = model.qi[inner]
            self.item_bias[raw] = model.bi[inner]
        self.global_mean = float(trainset.global_mean)

    def embeddings(self) -> dict[str, npt.NDArray[np.float32]]:
        assert self.user_factors is not None and self.item_factors is not None
        assert self.user_bias is not None and self.item_bias is not None
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "user_bias": self.user_bias,
            "item_bias": self.item_bias,
        }

    def recommend(
        self, user_ids: npt.NDArray[np.int64], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        assert self.seen is not None and self.user_factors is not None
        assert self.item_factors is not None and self.item_bias is not None
        scores = self.user_factors[user_ids] @ self.item_factors.T + self.item_bias
        scores[self.seen[user_ids].nonzero()] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(scores, top, axis=1)
