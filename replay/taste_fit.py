"""The latent dimension and taste signal of a log, by matching its spectrum with a fitted
world's (``rollout-lab fit-world``).

Popularity and activity alone make a users x items matrix whose departures from
independence are noise; personal taste adds a few strong directions.  On the 0/1 matrix
``X`` (at most ``MAX_USERS`` users drawn at random, the ``MAX_ITEMS`` most requested items),
with ``E = r c' / n`` the independence expectation from row sums ``r``, column sums ``c``
and total ``n``, the standardised residual ``Z = (X - E) / sqrt(E)`` has singular values
``s_1 >= s_2 >= ...``.

* A **null** world — the fitted world with ``taste_signal = 0`` (same activities, same
  popularity, history drawn by the lab's own sampler) — gives the noise spectrum ``s0``.
* The log's **excess energy** per direction ``e_j = max(s_j^2 - s0_j^2, 0)`` over the top
  ``SPECTRUM`` values is what taste adds.
* ``latent_factors`` = its participation ratio ``(sum e_j)^2 / sum e_j^2``, rounded, within
  ``[MIN_FACTORS, MAX_FACTORS]``: the number of equally strong directions with the same
  total and spread (a world of ``d`` isotropic factors gives about ``d``: 4.2-7.8 for 4,
  8-10 for 8, 15-16 for 16 on MovieLens-100k's users and items, more with a stronger
  signal; an approximation, as real taste is not isotropic).
* ``taste_signal`` = the signal whose world, with that many factors, has the log's excess
  energy ``sum_j e_j``, at most ``sqrt(MAX_TASTE_VARIANCE * latent_factors)``: the signals
  of ``SIGNAL_GRID`` below that cap, then the cap, are tried in increasing order until the
  excess reaches the log's, and the
  signal is interpolated in ``ln`` between the two that bracket it (linearly from 0 below
  the grid's first, the grid's last above it).

The cap keeps the world's popularity the log's.  Users consume the best match for their
taste among 64 draws of the popularity (``replay.sampling.sample_one``); when the taste term
``signal * <x_u, y_i>`` (variance ``signal^2 / latent_factors``) swamps the Gumbel noise, an
item drawn many times into a pool counts once, so the head loses its share: on MovieLens
latest-small the KS of item popularity is 0.015 at variance 0.4-1, 0.025 at 1.8, 0.057 at 4,
0.088 at 7 (nine factors; sixteen alike at equal variance).  Logs whose structure needs more
(both MovieLens logs do: taste, and users of different years rating different films) get
the cap, and the block says so.

Every draw is seeded from ``SEED``: the estimate is a function of the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.fitted_traffic import FittedTraffic, make_fitted_world
from replay.synthetic import generate_history

__all__ = ["MAX_TASTE_VARIANCE", "TasteFit", "fit_taste"]

MAX_USERS = 1000
MAX_ITEMS = 1500
SPECTRUM = 64
MIN_FACTORS = 2
MAX_FACTORS = 64
SIGNAL_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: The largest taste variance signal^2 / latent_factors a fitted world is given.
MAX_TASTE_VARIANCE = 2.0
SEED = 20_261_129


@dataclass(frozen=True, slots=True)
class TasteFit:
    latent_factors: int
    taste_signal: float
    log_excess: float  # the log's excess energy over the null spectrum
    participation: float  # the excess energy's participation ratio (before rounding)
    capped: bool  # the log's excess needs more than the cap


def _spectrum(
    users: npt.NDArray[np.integer],
    items: npt.NDArray[np.integer],
    n_users: int,
    n_items: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Singular values of the standardised residual of the 0/1 users x items matrix, on at
    most ``MAX_USERS`` users drawn at random and their ``MAX_ITEMS`` most requested items."""
    active = np.flatnonzero(np.bincount(users, minlength=n_users))
    chosen = np.sort(rng.choice(active, min(MAX_USERS, active.size), replace=False))
    row = np.full(n_users, -1)
    row[chosen] = np.arange(chosen.size)
    keep = row[users] >= 0
    counts = np.bincount(items[keep], minlength=n_items)
    top = np.argsort(-counts, kind="stable")[: min(MAX_ITEMS, n_items)]
    column = np.full(n_items, -1)
    column[top] = np.arange(top.size)
    keep &= column[items] >= 0
    seen = np.zeros((chosen.size, top.size), dtype=bool)
    seen[row[users[keep]], column[items[keep]]] = True
    return _values(seen)


def _values(seen: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    x = seen.astype(np.float64)
    x = x[:, x.sum(axis=0) > 0]
    r = x.sum(axis=1, keepdims=True)
    c = x.sum(axis=0, keepdims=True)
    expected = r @ c / x.sum()
    residual = (x - expected) / np.sqrt(expected)
    values = np.linalg.svd(residual, compute_uv=False)
    out = np.zeros(SPECTRUM)
    out[: min(SPECTRUM, values.size)] = values[:SPECTRUM]
    return out


def _world_spectrum(
    traffic: FittedTraffic, users: int, items: int, factors: int, signal: float, events: float
) -> npt.NDArray[np.float64]:
    world = make_fitted_world(
        traffic,
        users=users,
        items=items,
        latent_factors=factors,
        signal=signal,
        rng=np.random.default_rng(SEED),
    )
    history = generate_history(
        world, history_s=1.0, events_per_user=events, rng=np.random.default_rng(SEED + 1)
    )
    return _spectrum(history.users, history.items, users, items, np.random.default_rng(SEED + 2))


def _excess(values: npt.NDArray[np.float64], null: npt.NDArray[np.float64]) -> float:
    return float(np.maximum(values**2 - null**2, 0.0).sum())


def fit_taste(
    user: npt.NDArray[np.integer],
    item: npt.NDArray[np.integer],
    *,
    n_users: int,
    n_items: int,
    traffic: FittedTraffic,
) -> TasteFit:
    """``latent_factors`` and ``taste_signal`` of the log ``(user, item)`` (see the module)."""
    events = user.size / max(1, np.unique(user).size)
    logged = _spectrum(user, item, n_users, n_items, np.random.default_rng(SEED + 2))
    null = _world_spectrum(traffic, n_users, n_items, 16, 0.0, events)
    gain = np.maximum(logged**2 - null**2, 0.0)
    spread = float((gain**2).sum())
    ratio = float(gain.sum() ** 2 / spread) if spread > 0 else 0.0
    factors = int(np.clip(round(ratio), MIN_FACTORS, MAX_FACTORS))
    target = _excess(logged, null)
    cap = float(np.sqrt(MAX_TASTE_VARIANCE * factors))
    previous = (0.0, 0.0)  # (signal, excess): no taste, no excess
    for candidate in (*(g for g in SIGNAL_GRID if g < cap), cap):
        excess = _excess(
            _world_spectrum(traffic, n_users, n_items, factors, candidate, events), null
        )
        if excess >= target:
            low, low_excess = previous
            if low <= 0.0:  # below the grid: linear from no taste, no excess
                signal = candidate * target / excess if excess > 0 else 0.0
            elif excess <= low_excess:
                signal = low
            else:
                share = (target - low_excess) / (excess - low_excess)
                signal = float(np.exp(np.log(low) + share * (np.log(candidate) - np.log(low))))
            return TasteFit(factors, signal, target, ratio, capped=False)
        previous = (candidate, excess)
    return TasteFit(factors, cap, target, ratio, capped=True)
