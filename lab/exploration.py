"""Exploration slots: the last positions of a lab-scored list hold items no model chose.

Collaborative-filtering lists hold only the head of the catalogue: ALS's top-10 for every
user of MovieLens latest-small falls entirely in its most popular third, and on the
default synthetic world 99.3 % of it does (0.7 % torso and tail), although a perfect
recommender of that world would give torso and tail 5.3 % of its slots.  Services show the
rest of the catalogue through exploration, slots filled from outside the model's choice (a
uniformly random bucket of traffic: Li et al. 2010 on Yahoo!'s front page, the Open Bandit
Dataset's uniform-random policy, Saito et al. 2021).

With ``serving.explore_slots = s`` positions ``K − s .. K − 1`` of every list the lab
scores hold items drawn uniformly from the catalogue, never one already in the list or
consumed by the user.  The draw depends only on the run's seed, the user and the draw's
index (a counter-based hash, SplitMix64), so whatever version serves a user shows the same
exploration items, and comparing two versions' lists compares their models.  Lists
decided outside the lab (top-K tables, plug-ins) are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Exploration", "exploration_of", "explore"]

#: Candidate draws per exploration slot (plus a margin): rejections are rare unless the
#: catalogue is barely larger than a list.
_DRAWS_PER_SLOT = 4
_DRAW_MARGIN = 8

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014) on uint64 counters."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def explore(
    users: np.ndarray,
    lists: np.ndarray,
    consumed: sp.csr_matrix | None,
    *,
    n_items: int,
    slots: int,
    seed: int,
) -> np.ndarray:
    """``lists [n, K]`` with their last ``slots`` positions replaced by exploration items.

    When fewer than ``slots`` admissible draws are left (a catalogue barely larger than the
    list), the remaining positions take the model's displaced items.  ``consumed``: the
    items each user may not be shown (rows by user id; None: no such filter).
    """
    out = np.array(lists, dtype=np.int32, copy=True)
    n, k = out.shape
    if slots <= 0 or n == 0 or n_items <= 0:
        return out
    keep = k - slots
    draws = _DRAWS_PER_SLOT * slots + _DRAW_MARGIN
    with np.errstate(over="ignore"):
        counter = (
            (np.full(1, seed, np.uint64) * _MIX_2)
            ^ (np.asarray(users, np.uint64)[:, None] * _MIX_1)
            ^ np.arange(draws, dtype=np.uint64)[None, :]
        )
    candidates = (_splitmix64(counter) % np.uint64(n_items)).astype(np.int64)
    # Column by column: a handful of [n, draws] comparisons, where broadcasting to
    # [n, draws, K] and reducing the short last axis cost several times more.
    admissible = np.ones((n, draws), bool)
    for column in range(keep):
        admissible &= candidates != out[:, column : column + 1]
    for draw in range(draws - 1):  # a repeat of an earlier draw is not admissible
        admissible[:, draw + 1 :] &= candidates[:, draw + 1 :] != candidates[:, draw : draw + 1]
    if consumed is not None:
        rows = np.repeat(np.asarray(users, np.int64), draws)
        inside = rows < consumed.shape[0]
        seen = np.zeros(rows.size, bool)
        seen[inside] = np.asarray(consumed[rows[inside], candidates.ravel()[inside]]).ravel() > 0
        admissible &= ~seen.reshape(n, draws)
    # The first ``slots`` admissible draws of each row, in draw order.
    order = np.argsort(~admissible, axis=1, kind="stable")[:, :slots]
    chosen = np.take_along_axis(candidates, order, axis=1)
    usable = np.take_along_axis(admissible, order, axis=1)
    out[:, keep:] = np.where(usable, chosen, out[:, keep:])
    for row in np.flatnonzero(~usable.all(axis=1)):
        # Too few admissible draws: the free positions take the model's own displaced items.
        taken = set(chosen[row][usable[row]].tolist())
        spare = iter(item for item in lists[row, keep:].tolist() if item not in taken)
        for j in np.flatnonzero(~usable[row]):
            out[row, keep + j] = next(spare)
    return out


@dataclass(frozen=True, slots=True)
class Exploration:
    """A run's exploration: ``slots`` last positions of every lab-scored list, ``seed``."""

    slots: int
    seed: int

    def apply(
        self, users: np.ndarray, lists: np.ndarray, consumed: sp.csr_matrix | None, n_items: int
    ) -> np.ndarray:
        return explore(users, lists, consumed, n_items=n_items, slots=self.slots, seed=self.seed)


def exploration_of(slots: int, seed: int) -> Exploration | None:
    """The run's exploration, None without exploration slots."""
    return Exploration(slots, seed) if slots > 0 else None
