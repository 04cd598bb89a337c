"""Small synthetic interaction matrices whose right answer is known.

``clustered``: users fall into groups, each group consumes items from its own block of the
catalogue (plus a little noise), so a working recommender must rank a user's own block
first.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp

N_USERS, N_ITEMS, N_GROUPS = 200, 300, 5

MOVIELENS = Path(
    os.environ.get(
        "ROLLOUT_LAB_MOVIELENS",
        Path(__file__).resolve().parents[5] / "shared/data/movielens-latest-small/ratings.csv",
    )
)


def clustered(
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    *,
    groups: int = N_GROUPS,
    per_user: int = 12,
    noise: float = 0.1,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """Users x items 0/1 matrix: user u likes items of block ``u % groups`` (block of
    ``n_items // groups`` items), with a ``noise`` share of random items."""
    block = n_items // groups
    rows, cols = [], []
    for user in range(n_users):
        group = user % groups
        own = rng.choice(block, size=per_user, replace=False) + group * block
        stray = rng.choice(n_items, size=max(1, int(per_user * noise)), replace=False)
        items = np.unique(np.concatenate([own, stray]))
        rows.append(np.full(items.size, user))
        cols.append(items)
    data = np.ones(sum(c.size for c in cols), dtype=np.float32)
    matrix = sp.csr_matrix(
        (data, (np.concatenate(rows), np.concatenate(cols))), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
