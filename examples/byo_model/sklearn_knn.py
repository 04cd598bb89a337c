"""An item-based nearest-neighbour recommender built with scikit-learn, as a lab plugin.

    [models.candidate]
    plugin = "examples.byo_model.sklearn_knn:ItemKNN"
    options = { neighbours = 50 }

Each item's neighbours are the items most similar to it by cosine similarity of their
columns in the interaction matrix (``sklearn.neighbors.NearestNeighbors``, brute force); a
user's score for an item is the sum of its similarities to the items the user consumed.
``update`` adds the new interactions and finds the neighbours again (a neighbourhood model
has nothing to warm-start).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize


class ItemKNN:
    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours
        self.seen: sp.csr_matrix | None = None
        self.similarity: sp.csr_matrix | None = None

    def fit(self, interactions: sp.csr_matrix) -> None:
        self.seen = sp.csr_matrix(interactions > 0, dtype=np.float32)
        items = normalize(self.seen.T.tocsr().astype(np.float64))
        k = min(self.neighbours + 1, items.shape[0])
        index = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(items)
        distance, neighbour = index.kneighbors(items)
        rows = np.repeat(np.arange(items.shape[0]), k)
        similarity = sp.csr_matrix(
            (1.0 - distance.ravel(), (rows, neighbour.ravel())), shape=(items.shape[0],) * 2
        )
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        self.similarity = similarity.astype(np.float32)

    def update(self, new_interactions: sp.csr_matrix) -> None:
        assert self.seen is not None
        self.fit(self.seen + new_interactions)

    def recommend(
        self, user_ids: npt.NDArray[np.int64], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        assert self.seen is not None and self.similarity is not None
        history = self.seen[user_ids]
        scores = np.asarray((history @ self.similarity).todense(), dtype=np.float32)
        scores[history.nonzero()] = -np.inf  # never what the user already consumed
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(scores, top, axis=1)
        return np.where(np.isfinite(best), top, -1), np.where(np.isfinite(best), best, 0.0)
