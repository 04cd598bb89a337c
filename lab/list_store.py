"""One version's top-K list per user, scored when first needed and kept in the artifact store.

A million-user world with a short run never scores everyone: rows are computed in batches
for the users that appear (``rows``), and ``save`` adds them to the store's ``lists`` entry
so that reruns, ``check`` and other sweep workers find them.  A row does not depend on the
users it was scored with (``replay.topk``), so it does not matter who computed it.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from replay.artifact_store import Artifact, ArtifactStore
from replay.topk import top_k
from replay.training import TrainedModel

__all__ = ["ListStore"]

KIND = "lists"


class ListStore:
    """Top-K item ids (int32 [n_users, K], -1 pads) of ``model``, filtering ``consumed``.

    ``store`` and ``key`` (``lab.artifacts.lists_key``): where rows are loaded from and saved
    to; without them rows live in memory only.  ``threads``: how many shares of a batch are
    scored at once (``replay.topk.top_k``; the same rows whatever the number).
    """

    def __init__(
        self,
        model: TrainedModel,
        consumed: sp.csr_matrix,
        k: int,
        n_users: int,
        *,
        store: ArtifactStore | None = None,
        key: str | None = None,
        threads: int = 1,
    ) -> None:
        self.model = model
        self.k = k
        self._consumed = consumed
        self._store = store if key is not None else None
        self._key = key
        self.threads = threads
        self.items = np.full((n_users, k), -1, np.int32)
        self.ready = np.zeros(n_users, bool)
        self.scored = 0  # rows computed here since loading
        self.scoring_s = 0.0  # wall seconds spent scoring them
        self._merge(self._load())

    @property
    def consumed(self) -> sp.csr_matrix:
        """What each user's list may not hold (rows by user id)."""
        return self._consumed

    def rows(self, users: np.ndarray) -> np.ndarray:
        """The lists of ``users`` (int32 [n, K]), scoring the users not seen yet."""
        todo = np.unique(users[~self.ready[users]])
        if todo.size:
            started = time.perf_counter()
            found = top_k(self.model, todo, self._consumed, self.k, threads=self.threads)
            self.items[todo] = found.items
            self.scoring_s += time.perf_counter() - started
            self.ready[todo] = True
            self.scored += int(todo.size)
        return np.asarray(self.items[users], dtype=np.int32)

    def save(self) -> None:
        """Add the rows scored here to the store's entry (merged with what others added)."""
        if self._store is None or self._key is None or self.scored == 0:
            return
        with self._store.building(KIND, self._key):
            self._merge(self._load())
            users = np.flatnonzero(self.ready).astype(np.int32)
            self._store.save(
                KIND, self._key, Artifact({"users": users, "items": self.items[users]})
            )
        self.scored = 0

    def _load(self) -> Artifact | None:
        if self._store is None or self._key is None:
            return None
        return self._store.load(KIND, self._key)

    def _merge(self, artifact: Artifact | None) -> None:
        if artifact is None:
            return
        users, items = artifact.arrays.get("users"), artifact.arrays.get("items")
        if (
            users is None
            or items is None
            or items.shape != (users.size, self.k)
            or (users.size and (users.min() < 0 or users.max() >= self.ready.size))
        ):
            return  # not what this key should hold: ignore it, it is rewritten on save
        fresh = users[~self.ready[users]]
        self.items[fresh] = items[~self.ready[users]]
        self.ready[fresh] = True
