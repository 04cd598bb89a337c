"""A seeded synthetic world whose right answers are known.

Users and items carry latent factors that *are* the ground truth: a user's affinity for an
item is

    a(u, i) = signal * <x_u, y_i> + b_i

with ``x_u, y_i ~ N(0, I / latent_factors)`` and a popularity bias ``b_i = -skew * ln(rank_i)``
(a Zipf-like head; the most popular item has ``b = 0``).  The interaction history before the
run is sampled from these affinities (``replay.sampling``: popularity-proposal pools, so the
cost grows with the interactions drawn, not with users x items), so a model trained on it
can be judged against the truth, and simulated users click with a probability that depends
on the same affinity (see ``sim.users``).

Traffic is a non-homogeneous Poisson process of sessions (diurnal shape, flash crowds),
each with ``1 + Geometric`` requests separated by exponential think times.  Everything is
vectorized numpy: no Python object per event or per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from replay.requests import RequestStream
from replay.sampling import AliasTable, sample_distinct, sample_one

__all__ = [
    "ArrivalShape",
    "History",
    "SyntheticWorld",
    "WorldSpec",
    "drift_popularity",
    "engagement_logits",
    "generate_history",
    "generate_requests",
    "make_world",
    "sample_consumption",
]

#: Simulated time zero of synthetic runs (a Monday, UTC): history lies before it.
SYNTHETIC_EPOCH = datetime(2026, 1, 5, tzinfo=UTC)

FloatArray = npt.NDArray[np.float32]


def engagement_logits(activity: npt.ArrayLike, strength: float) -> FloatArray:
    """Each user's click-logit shift ``[n_users]`` float32: users who come more often click
    more of what they examine,

        engagement_u = strength * (ln activity_u - Σ_v w_v ln activity_v)
        w_v = activity_v / Σ_v' activity_v',

    centred as traffic weighs users (sessions are drawn in proportion to activity), so the
    average request's logit is unchanged and ``users.click_offset`` keeps setting the level.
    """
    weights = np.maximum(np.asarray(activity, np.float64), 1e-300)
    log_activity = np.log(weights)
    centred = log_activity - (weights @ log_activity) / weights.sum()
    return np.asarray(strength * centred, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class WorldSpec:
    users: int
    items: int
    latent_factors: int = 16
    popularity_skew: float = 0.8
    signal: float = 2.0
    activity_sigma: float = 1.0


@dataclass(frozen=True, slots=True)
class SyntheticWorld:
    """Ground truth: latent factors, popularity bias and per-user activity weights.

    ``popularity`` (derived) draws items with probability ``∝ exp(item_bias)``: the
    proposal every sampler of the world's consumption starts from.
    """

    user_factors: FloatArray  # [users, latent_factors]
    item_factors: FloatArray  # [items, latent_factors]
    item_bias: FloatArray  # [items]
    activity: npt.NDArray[np.float64]  # [users], mean 1
    signal: float
    popularity: AliasTable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bias = np.asarray(self.item_bias, dtype=np.float64)
        weights = np.exp(bias - bias.max()) if bias.size else np.ones(1)
        object.__setattr__(self, "popularity", AliasTable.from_weights(weights))

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    def affinity(
        self, users: npt.NDArray[np.integer], items: npt.NDArray[np.integer]
    ) -> FloatArray:
        """True affinity a(u, i) for ``users [n]`` and ``items [n, k]`` -> ``[n, k]``.

        Slots with item ``-1`` (an empty list position) get ``-inf``.
        """
        safe = np.where(items >= 0, items, 0)
        x = self.user_factors[users][:, None, :]
        y = self.item_factors[safe]
        out = (self.signal * np.einsum("nkf,nkf->nk", np.broadcast_to(x, y.shape), y)).astype(
            np.float32
        )
        out += self.item_bias[safe]
        out[items < 0] = -np.inf
        return np.asarray(out, dtype=np.float32)


def drift_popularity(
    world: SyntheticWorld, fraction: float, *, rng: np.random.Generator
) -> SyntheticWorld:
    """The world after popularity drift: ``fraction`` of the items swap their popularity bias
    among themselves (yesterday's hits fade, long-tail items rise)."""
    if fraction <= 0.0:
        return world
    chosen = rng.choice(world.n_items, size=max(2, round(fraction * world.n_items)), replace=False)
    bias = world.item_bias.copy()
    bias[chosen] = bias[rng.permutation(chosen)]
    return SyntheticWorld(
        world.user_factors, world.item_factors, bias, world.activity, world.signal
    )


def make_world(spec: WorldSpec, *, rng: np.random.Generator) -> SyntheticWorld:
    """Draw the latent truth of a synthetic world."""
    scale = 1.0 / np.sqrt(spec.latent_factors)
    user_factors = rng.normal(0.0, scale, (spec.users, spec.latent_factors)).astype(np.float32)
    item_factors = rng.normal(0.0, scale, (spec.items, spec.latent_factors)).astype(np.float32)
    ranks = rng.permutation(spec.items) + 1
    item_bias = (-spec.popularity_skew * np.log(ranks)).astype(np.float32)
    activity = rng.lognormal(0.0, spec.activity_sigma, spec.users)
    activity /= activity.mean()
    return SyntheticWorld(user_factors, item_factors, item_bias, activity, spec.signal)


@dataclass(frozen=True, slots=True)
class History:
    """Interactions before time zero, one entry each, grouped by user in sampling order.

    users      int32   [n]
    items      int32   [n]  distinct within a user
    offsets_s  float64 [n]  when, in seconds relative to time zero (negative)
    """

    users: npt.NDArray[np.int32]
    items: npt.NDArray[np.int32]
    offsets_s: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.users.shape[0])


def generate_history(
    world: SyntheticWorld,
    *,
    history_s: float,
    events_per_user: float,
    rng: np.random.Generator,
    new_items: npt.NDArray[np.bool_] | None = None,
    new_items_since_s: float = 0.0,
) -> History:
    """Interactions before time zero, sampled from the true affinities.

    Each user has ``Poisson(events_per_user * activity_u)`` distinct items (at most the
    catalogue), drawn without replacement with probability proportional to ``exp(a(u, i))``
    (``replay.sampling.sample_distinct``), at uniform times in ``[-history_s, 0)``.  Items
    flagged in ``new_items`` arrived recently: their interactions all fall in
    ``[-new_items_since_s, 0)``, so a model trained before that has never seen them
    (cold-start items).
    """
    counts = np.minimum(rng.poisson(events_per_user * world.activity), world.n_items)
    users, items = sample_distinct(world, counts, rng=rng)
    offsets_s = np.asarray(rng.uniform(-history_s, 0.0, users.shape[0]), dtype=np.float64)
    if new_items is not None and new_items.any():
        fresh = new_items[items]
        offsets_s[fresh] = rng.uniform(-new_items_since_s, 0.0, int(fresh.sum()))
    return History(users, items, offsets_s)


def sample_consumption(
    world: SyntheticWorld,
    users: npt.NDArray[np.integer],
    *,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """One item each of ``users`` would consume on their own, ``P(i) ∝ exp(a(u, i))``.

    Importance resampling from the world's popularity (``replay.sampling.sample_one``), so
    the cost does not grow with the catalogue; this is the organic behaviour drift is
    measured on (what users want now, not what a model chose to show them).
    """
    return sample_one(world, users, rng=rng)


@dataclass(frozen=True, slots=True)
class ArrivalShape:
    """Request rate over simulated time (per second).

    ``rate(t) = mean_rate_per_s * (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s))``
    times every active flash crowd's factor and every ramp's current factor.  Poisson traffic
    is ``amplitude = 0``.  A ramp ``(at_s, factor, length_s)`` grows linearly from 1 to
    ``factor`` over ``[at_s, at_s + length_s)`` and stays at ``factor`` afterwards.
    """

    mean_rate_per_s: float
    amplitude: float = 0.0
    period_s: float = 86400.0
    peak_at_s: float = 0.0
    flash_crowds: Sequence[tuple[float, float, float]] = ()  # (at_s, factor, length_s)
    ramps: Sequence[tuple[float, float, float]] = ()  # (at_s, factor, length_s)

    def rate(self, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        phase = 2.0 * np.pi * (t_s - self.peak_at_s) / self.period_s
        out = self.mean_rate_per_s * (1.0 + self.amplitude * np.cos(phase))
        for at_s, factor, length_s in self.flash_crowds:
            out = np.where((t_s >= at_s) & (t_s < at_s + length_s), out * factor, out)
        for at_s, factor, length_s in self.ramps:
            progress = np.clip((t_s - at_s) / length_s, 0.0, 1.0)
            out = out * (1.0 + (factor - 1.0) * progress)
        return np.asarray(out, dtype=np.float64)

    def peak_rate(self) -> float:
        """An upper bound of ``rate`` (every boost at once), for thinning."""
        boost = 1.0
        for _, factor, _ in (*self.flash_crowds, *self.ramps):
            boost *= max(factor, 1.0)
        return self.mean_rate_per_s * (1.0 + self.amplitude) * boost


def generate_requests(
    world: SyntheticWorld,
    shape: ArrivalShape,
    *,
    duration_s: float,
    mean_requests_per_session: float,
    mean_think_time_s: float,
    rng: np.random.Generator,
) -> RequestStream:
    """Requests in ``[0, duration_s)``: Poisson sessions (by thinning) of several requests.

    The session rate is the request rate divided by the mean requests per session, so the
    request rate follows ``shape`` (less the sessions cut off at the end of the run).
    """
    peak = shape.peak_rate() / mean_requests_per_session
    n_candidates = int(rng.poisson(peak * duration_s))
    starts = np.sort(rng.uniform(0.0, duration_s, n_candidates))
    accept = rng.uniform(0.0, 1.0, n_candidates) * peak < (
        shape.rate(starts) / mean_requests_per_session
    )
    starts = starts[accept]
    n_sessions = starts.shape[0]
    weights = world.activity / world.activity.sum()
    session_user = np.asarray(rng.choice(world.n_users, size=n_sessions, p=weights), np.int32)
    per_session = np.asarray(rng.geometric(1.0 / mean_requests_per_session, n_sessions), np.int64)
    total = int(per_session.sum())
    session_of = np.repeat(np.arange(n_sessions, dtype=np.int64), per_session)
    first = np.zeros(total, dtype=bool)
    first[np.cumsum(per_session) - per_session] = True
    gaps = np.where(first, 0.0, rng.exponential(mean_think_time_s, total))
    # Cumulative think time within each session: global cumsum minus the session's offset.
    cum = np.cumsum(gaps)
    cum -= np.repeat(cum[first], per_session)
    t_s = starts[session_of] + cum
    keep = t_s < duration_s
    t_s, session_of = t_s[keep], session_of[keep]
    order = np.argsort(t_s, kind="stable")
    return RequestStream(
        t_s=t_s[order].astype(np.float64),
        user=session_user[session_of[order]],
        session=session_of[order].astype(np.int32),
    )


def window_edges(history_s: float, update_window_s: float) -> tuple[datetime, datetime, datetime]:
    """(history start, update window start, time zero) as UTC datetimes."""
    return (
        SYNTHETIC_EPOCH - timedelta(seconds=history_s),
        SYNTHETIC_EPOCH - timedelta(seconds=update_window_s),
        SYNTHETIC_EPOCH,
    )
