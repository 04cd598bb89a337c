"""How simulated users respond to a shown list: a position-biased cascade with abandonment.

Cascade (Craswell et al. 2008, with attention decay): the user examines position 0, clicks it
with probability ``r_0``; without a click they move on to the next position with probability
``position_decay``, and so on.  At most one click per list, so

    P(click at k) = decay^k * prod_{j<k} (1 - r_j) * r_k.

``r_k`` comes from the ground truth: ``sigmoid(a(u, i_k) + click_offset)`` with the synthetic
world's affinity, or 1 for an item the user really consumed next in a replayed log.

Abandonment: a list that arrives later than ``abandon_after_ms`` is abandoned (no click) with
probability ``min(1, abandon_per_100ms * (latency - abandon_after_ms) / 100)``, so
infrastructure regressions show up in engagement too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CascadeUsers", "UserResponse", "list_click_probability"]


@dataclass(frozen=True, slots=True)
class UserResponse:
    clicks: npt.NDArray[np.uint8]
    click_pos: npt.NDArray[np.int8]
    abandoned: npt.NDArray[np.bool_]


def list_click_probability(item_probability: np.ndarray, position_decay: float) -> np.ndarray:
    """``[n, K]`` per-position click probabilities -> ``[n]`` probability of a click on the list."""
    k = item_probability.shape[1]
    attention = position_decay ** np.arange(k, dtype=np.float64)
    p = np.nan_to_num(item_probability.astype(np.float64), nan=0.0)
    survive = np.cumprod(np.hstack([np.ones((p.shape[0], 1)), 1.0 - p[:, :-1]]), axis=1)
    return np.asarray((attention * survive * p).sum(axis=1), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CascadeUsers:
    position_decay: float
    abandon_after_ms: float
    abandon_per_100ms: float

    def respond(
        self,
        relevance: np.ndarray,
        latency_ms: np.ndarray,
        shown: np.ndarray,
        *,
        rng: np.random.Generator,
    ) -> UserResponse:
        """Sample clicks for ``n`` lists; ``relevance`` is ``[n, K]`` in [0, 1] (NaN: empty)."""
        n, k = relevance.shape
        rel = np.nan_to_num(relevance, nan=0.0)
        u_click = rng.random((n, k))
        u_move = rng.random((n, max(k - 1, 0)))
        u_abandon = rng.random(n)
        would_click = u_click < rel
        moved_on = np.hstack([np.ones((n, 1), dtype=bool), u_move < self.position_decay])
        reached = np.cumprod(moved_on, axis=1, dtype=np.int8).astype(bool)
        no_click_yet = np.hstack(
            [np.ones((n, 1), dtype=bool), np.cumsum(would_click, axis=1)[:, :-1] == 0]
        )
        clicked = would_click & reached & no_click_yet
        over = np.maximum(latency_ms.astype(np.float64) - self.abandon_after_ms, 0.0)
        abandoned = shown & (u_abandon < np.minimum(1.0, self.abandon_per_100ms * over / 100.0))
        any_click = clicked.any(axis=1) & shown & ~abandoned
        pos = np.where(any_click, clicked.argmax(axis=1), -1).astype(np.int8)
        return UserResponse(any_click.astype(np.uint8), pos, abandoned)
