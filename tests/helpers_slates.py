"""Slate logs drawn from a known position-based click model, for the click-model tests."""

from __future__ import annotations

import numpy as np


def slate_log(
    rng: np.random.Generator, slates: int, items: int, theta: np.ndarray, alpha: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(position, item, click, slate)`` [slates x K]: a uniformly random logging policy,
    each position showing an item drawn uniformly (a row's logging propensity is 1 / items),
    clicked with probability θ_k α_i."""
    k = theta.size
    position = np.tile(np.arange(k), slates)
    item = rng.integers(0, items, slates * k)
    click = (rng.random(position.size) < theta[position] * alpha[item]).astype(np.int64)
    return position, item, click, np.repeat(np.arange(slates), k)
