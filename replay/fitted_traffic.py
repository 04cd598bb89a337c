"""Traffic that follows laws measured on a log: users, sessions and think times as logged.

The default synthetic traffic (``replay.synthetic.generate_requests``) is parametric: Poisson
sessions, ``1 + Geometric`` requests, exponential think times, lognormal activity.  A fitted
world (``rollout-lab fit-world``) replaces each of these with the log's own empirical law,
so generated traffic has the log's marginals:

* **users** — a user's requests over the fitted span ``span_s`` (the log's time span) paired
  with its number of sessions; the world's users get the logged pairs in equal shares
  (stratified, in the order of the world's activity weights), so at 1x the users carry
  exactly the log's activities and session counts;
* **bands** — users are split into bands of mean session length (requests / sessions);
  within a band, the requests per session, the think time between requests inside a
  session and the return gap between sessions are empirical laws of the log's users of
  that band (heavy users of a log may have many short sessions, light users one long one:
  one law for all would lose that);
* **hourly profile** — the hour of day (UTC) at which users make their first request; and,
  by session length, the hour at which users' first sessions and long returns (sessions
  half a day or more after the user's previous request, ``long_return_s``) start
  (``session_hours``: in a log, a long session and a short one do not start at the same
  hours).

A user's life: it has its pair's ``A`` requests in ``S`` sessions, whose lengths are drawn
from its band's law and rescaled to add up to ``A`` (``_session_lengths``); requests inside
a session are think times apart, sessions are return gaps apart (shrunk if the life would
not fit in the span); the life starts on a uniform day that leaves room for it, at an hour
drawn from the hourly profile (of its first session's length class).  A session half a
day or more after the user's previous request then moves by less than half a day, to a
time of day drawn from its length class's profile (with the rest of the life after it):
independent gaps of many hours add up to a uniform time of day, while a log's users come
back at the hours they use the service.  Requests after the run's
duration are cut, as a log is.

An ``EmpiricalLaw`` is a sorted list of equally likely values (a stratified subsample of the
observations), so drawing from it is resampling the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.requests import RequestStream
from replay.synthetic import SyntheticWorld

__all__ = [
    "EmpiricalLaw",
    "FittedTraffic",
    "SessionHours",
    "UserBand",
    "fitted_activity",
    "fitted_item_bias",
    "fitted_requests",
    "long_return_s",
    "make_fitted_world",
]

SECONDS_PER_DAY = 86_400.0


def long_return_s(gap_s: float) -> float:
    """A session at least this long after the user's previous request (seconds) is a long
    return: it starts at an hour of its length class's profile.  Half a day plus twice the
    session gap, so that a move of less than half a day leaves it more than a session gap
    after that request."""
    return SECONDS_PER_DAY / 2.0 + 2.0 * gap_s


#: Draws of a user's session lengths, the one adding up closest to its activity kept.
LENGTH_TRIES = 16


@dataclass(frozen=True, slots=True)
class EmpiricalLaw:
    """A distribution given by equally likely values (sorted ascending, float64)."""

    values: npt.NDArray[np.float64]

    @classmethod
    def of(cls, sample: npt.ArrayLike, max_values: int) -> EmpiricalLaw:
        """At most ``max_values`` values, each the observation at the middle of its equal
        share of the sorted ``sample`` (inverse CDF at ``(k + 1/2) / m``): the law's CDF is
        within ``1 / m`` of the sample's everywhere."""
        data = np.sort(np.asarray(sample, dtype=np.float64))
        if data.size == 0:
            raise ValueError("an empirical law needs at least one observation")
        m = min(max_values, data.size)
        picks = ((np.arange(m) + 0.5) * data.size / m).astype(np.int64)
        return cls(data[picks])

    def draw(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return self.values[rng.integers(0, self.values.size, n)]

    def shares(self, n: int) -> npt.NDArray[np.float64]:
        """``n`` values in the law's proportions (the ``k``-th at quantile ``(k + 1/2) / n``),
        in ascending order: a stratified draw, exact when ``n`` is a multiple of the size."""
        picks = ((np.arange(n) + 0.5) * self.values.size / n).astype(np.int64)
        return self.values[picks]

    def mean(self) -> float:
        return float(self.values.mean())


@dataclass(frozen=True, slots=True)
class UserBand:
    """Users whose mean session length (requests / sessions) is at most ``max_mean_length``
    and above the previous band's."""

    max_mean_length: float
    session_length: EmpiricalLaw  # requests per session
    think_time_s: EmpiricalLaw  # gaps between requests inside a session
    return_gap_s: EmpiricalLaw | None  # gaps between a session's end and the next's start


@dataclass(frozen=True, slots=True)
class SessionHours:
    """Hour-of-day weights (24, hour 0 = midnight UTC) of anchored sessions (a user's first,
    and long returns) of at most ``max_length`` requests and above the previous class's."""

    max_length: float
    profile: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FittedTraffic:
    span_s: float
    gap_s: float  # the inactivity gap sessions were cut with
    activity: EmpiricalLaw  # requests per user over span_s
    #: Sessions of the user behind each value of ``activity`` (same length and order).
    sessions: npt.NDArray[np.float64]
    bands: tuple[UserBand, ...]  # ascending max_mean_length
    hourly_profile: tuple[float, ...]  # 24 non-negative weights, hour 0 = midnight UTC
    popularity: EmpiricalLaw  # ln(share of requests) of items, ascending
    #: Hour of day of users' first sessions and of long returns (sessions starting
    #: ``long_return_s(gap_s)`` or more after the user's previous request), by session length,
    #: ascending ``max_length`` (None: first requests by ``hourly_profile``, long returns
    #: keep the hour their gap gives them).
    session_hours: tuple[SessionHours, ...] | None = None


def fitted_item_bias(popularity: EmpiricalLaw, n_items: int) -> npt.NDArray[np.float32]:
    """Item biases ``b_i = ln share`` in the law's proportions, most popular item first.

    The proposal ``q(i) ∝ exp(b_i)`` then gives each item the share the log gave the item of
    the same popularity rank.
    """
    return popularity.shares(n_items)[::-1].astype(np.float32)


def fitted_activity(
    activity: EmpiricalLaw, n_users: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Requests over the span of each of ``n_users`` users: the law's shares, shuffled."""
    return rng.permutation(activity.shares(n_users))


def _templates(
    fitted: FittedTraffic, activity: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(requests, sessions) of each user: the law's value pairs in the order of ``activity``
    (ties by user), so a world's users keep their activity ranks and get the log's pairs."""
    n = activity.size
    rank = np.empty(n, np.int64)
    rank[np.lexsort((np.arange(n), activity))] = np.arange(n)
    picks = ((rank + 0.5) * fitted.activity.values.size / n).astype(np.int64)
    requests = np.rint(fitted.activity.values[picks]).astype(np.int64)
    sessions = np.rint(fitted.sessions[picks]).astype(np.int64)
    return np.maximum(requests, 1), np.clip(sessions, 1, np.maximum(requests, 1))


def _band_of(
    bands: Sequence[UserBand], mean_length: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    upper = np.array([band.max_mean_length for band in bands])
    return np.minimum(np.searchsorted(upper, mean_length, side="left"), len(bands) - 1)


def _session_lengths(
    fitted: FittedTraffic,
    activity: npt.NDArray[np.int64],
    sessions: npt.NDArray[np.int64],
    band: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Requests per session, in user order, adding up to each user's activity exactly.

    Of ``LENGTH_TRIES`` systematic draws of the user's ``S`` lengths from its band's law, the
    one whose total is closest to the activity ``A`` is kept (an approximate draw of the
    lengths given their sum, as the log's users have them), then rescaled to ``A``: each
    session keeps 1
    and the ``A - S`` others go in proportion to the drawn lengths minus 1, largest
    remainders rounded up.
    """
    owner = np.repeat(np.arange(activity.size), sessions)
    first = np.cumsum(sessions) - sessions
    session_band = band[owner]
    best = np.ones(owner.size)
    best_miss = np.full(activity.size, np.inf)
    position = np.arange(owner.size) - first[owner]
    for _ in range(LENGTH_TRIES):
        # Systematic sampling: a user's k-th length is the band law's quantile at
        # (k + U) / S, one uniform U per user, so a heavy user's lengths are in the law's
        # proportions and a light user's are still random.
        level = (position + rng.uniform(0.0, 1.0, activity.size)[owner]) / sessions[owner]
        drawn = np.empty(owner.size)
        for b, spec in enumerate(fitted.bands):
            mine = np.flatnonzero(session_band == b)
            law = spec.session_length.values
            drawn[mine] = law[np.minimum((level[mine] * law.size).astype(np.int64), law.size - 1)]
        miss = np.abs(np.add.reduceat(drawn, first) - activity) if owner.size else best_miss
        better = miss < best_miss
        best_miss = np.where(better, miss, best_miss)
        take = better[owner]
        best[take] = drawn[take]
    weight = np.maximum(best - 1.0, 0.0) + 1e-9
    spare = (activity - sessions).astype(np.float64)
    exact = spare[owner] * weight / np.add.reduceat(weight, first)[owner]
    whole = np.floor(exact).astype(np.int64)
    missing = (activity - sessions) - np.add.reduceat(whole, first)
    order = np.lexsort((-(exact - whole), owner))  # by user, largest remainder first
    rank = np.arange(owner.size) - first[owner]
    bump = np.zeros(owner.size, np.int64)
    bump[order[rank < missing[owner]]] = 1
    lengths = 1 + whole + bump
    # In a random order within each user (the draws above run from short to long).
    return lengths[np.lexsort((rng.uniform(0.0, 1.0, owner.size), owner))]


def _fit_lives(
    fitted: FittedTraffic,
    gaps: npt.NDArray[np.float64],
    returning: npt.NDArray[np.bool_],
    session_first: npt.NDArray[np.int64],
    user_first_request: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Each user's life (first to last request, seconds), after shrinking the return gaps of
    lives that would not fit in the span less a day (iid gaps can add up to more than any
    logged user had; the log's lives all fit).  Shrunk gaps stay above the session gap, so
    sessions stay apart.  Changes ``gaps`` in place."""
    if gaps.size == 0:
        return np.zeros(user_first_request.size)
    life = np.add.reduceat(gaps, user_first_request)
    returns_at = session_first[returning]
    is_return = np.zeros(gaps.size, dtype=bool)
    is_return[returns_at] = True
    # Each return gap keeps a floor just above the session gap and shrinks what is above it
    # by one factor per user, so the life comes to the limit (when the floors allow).
    floor = fitted.gap_s + 1.0
    above = np.where(is_return, gaps - floor, 0.0)
    spare = np.add.reduceat(above, user_first_request)
    # A minute to spare: shrunk lives add up to the limit only up to rounding.
    limit = max(fitted.span_s - SECONDS_PER_DAY - 60.0, 0.0)
    factor = np.ones(life.size)
    too_long = (life > limit) & (spare > 0)
    fixed = (life - spare)[too_long]
    factor[too_long] = np.clip((limit - fixed) / spare[too_long], 0.0, 1.0)
    owner = np.searchsorted(user_first_request, returns_at, side="right") - 1
    gaps[returns_at] = floor + above[returns_at] * factor[owner]
    return np.add.reduceat(gaps, user_first_request)


def _hours(
    fitted: FittedTraffic, length: npt.NDArray[np.int64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """A time of day (seconds) for sessions of ``length`` requests that start a life or come
    back after a long gap: an hour from their length class's profile (systematic sampling within
    the class), a uniform second of it."""
    classes = fitted.session_hours
    hour = np.zeros(length.size, np.int64)
    if classes is None:
        profile = np.asarray(fitted.hourly_profile, dtype=np.float64)
        hour = rng.choice(24, size=length.size, p=profile / profile.sum())
    else:
        upper = np.array([c.max_length for c in classes])
        of = np.minimum(np.searchsorted(upper, length, side="left"), len(classes) - 1)
        for k, hours in enumerate(classes):
            mine = np.flatnonzero(of == k)
            # Systematic sampling, shuffled: the class's sessions take the profile's hours in
            # its proportions (a few long sessions carry many requests, and independent
            # draws would put them at hours the log's did not, differently each time).
            cdf = np.cumsum(hours.profile) / np.sum(hours.profile)
            level = (np.arange(mine.size) + rng.uniform(0.0, 1.0)) / max(mine.size, 1)
            drawn = np.minimum(np.searchsorted(cdf, level, side="right"), 23)
            hour[mine] = rng.permutation(drawn)
    return (hour + rng.uniform(0.0, 1.0, length.size)) * 3600.0


def _arrivals(
    fitted: FittedTraffic,
    life_s: npt.NDArray[np.float64],
    first_length: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Each user's first request: a uniform day among those that leave room for its whole
    life (first to last request) and a day inside the span, a time of day by the length of
    its first session (:func:`_hours`)."""
    n_users = life_s.size
    room = fitted.span_s - SECONDS_PER_DAY - life_s
    room_days = np.floor(np.maximum(room, 0.0) / SECONDS_PER_DAY)
    day = np.floor(rng.uniform(0.0, 1.0, n_users) * (room_days + 1.0))
    return day * SECONDS_PER_DAY + _hours(fitted, first_length, rng)


def _return_shifts(
    fitted: FittedTraffic,
    clock: npt.NDArray[np.float64],
    gaps: npt.NDArray[np.float64],
    returning: npt.NDArray[np.int64],
    user_first_request: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Per request, how far its time moves so that every long return (a session starting
    ``long_return_s`` or more after the user's previous request; ``returning``: the first
    requests and lengths of returning sessions, [2, n]) begins at a time of day drawn by its
    length (:func:`_hours`); later requests of the user move with it.

    A long return s moves by δ_s in [−12 h, 12 h): with p the user's previous long return
    (or its first request, which does not move) and its time of day τ_p (drawn, or the
    first request's), δ_s = wrap(τ_s − τ_p − (t_s − t_p)), wrap(x) = ((x + 12 h) mod 24 h)
    − 12 h, so that t_s plus the shifts up to s has time of day τ_s.  A gap of at least
    ``long_return_s`` moved by less than half a day stays above the session gap: sessions
    stay apart."""
    shift = np.zeros(clock.size)
    if fitted.session_hours is None:
        return shift
    long = gaps[returning[0]] >= long_return_s(fitted.gap_s)
    long_returns = returning[0][long]
    if long_returns.size == 0:
        return shift
    anchors = np.concatenate([user_first_request, long_returns])
    time_of_day = np.concatenate(
        [
            np.mod(clock[user_first_request], SECONDS_PER_DAY),
            _hours(fitted, returning[1][long], rng),
        ]
    )
    order = np.argsort(anchors, kind="stable")
    anchors, time_of_day = anchors[order], time_of_day[order]
    moved = np.isin(anchors, long_returns)
    at = np.flatnonzero(moved)  # never 0: a user's first request comes before its returns
    half = SECONDS_PER_DAY / 2.0
    raw = time_of_day[at] - time_of_day[at - 1] - (clock[anchors[at]] - clock[anchors[at - 1]])
    shift[anchors[at]] = np.mod(raw + half, SECONDS_PER_DAY) - half
    np.cumsum(shift, out=shift)
    # Users' requests are contiguous and a first request never moves: per-user sums.
    shift -= np.repeat(shift[user_first_request], counts)
    return shift


def fitted_requests(
    fitted: FittedTraffic,
    activity: npt.NDArray[np.float64],
    *,
    duration_s: float,
    rng: np.random.Generator,
) -> RequestStream:
    """Requests in ``[0, duration_s)`` of users with the given activities (one user a row).

    Every user's life is laid out over the fitted span (see the module docstring); the run
    sees the part of it before ``duration_s``.
    """
    counts, sessions = _templates(fitted, activity)
    band = _band_of(fitted.bands, counts / sessions)
    lengths = _session_lengths(fitted, counts, sessions, band, rng)
    n_users = counts.size
    session_owner = np.repeat(np.arange(n_users), sessions)
    total = int(lengths.sum())
    request_session = np.repeat(np.arange(session_owner.size), lengths)
    request_user = session_owner[request_session]
    user_band = band[request_user]
    gaps = np.zeros(total)
    session_first = np.cumsum(lengths) - lengths
    inside = np.ones(total, dtype=bool)
    inside[session_first] = False
    for b, spec in enumerate(fitted.bands):
        mine = np.flatnonzero(inside & (user_band == b))
        gaps[mine] = spec.think_time_s.draw(mine.size, rng)
    user_first_session = np.cumsum(sessions) - sessions
    returning = np.ones(session_owner.size, dtype=bool)
    returning[user_first_session] = False
    for b, spec in enumerate(fitted.bands):
        mine = np.flatnonzero(returning & (band[session_owner] == b))
        if mine.size and spec.return_gap_s is not None:
            gaps[session_first[mine]] = spec.return_gap_s.draw(mine.size, rng)
    user_first_request = session_first[user_first_session]
    life_s = _fit_lives(fitted, gaps, returning, session_first, user_first_request)
    arrival = _arrivals(fitted, life_s, lengths[user_first_session], rng)
    # Segmented cumulative sum of the gaps inside each life (small numbers: no precision is
    # lost to other users' arrivals), then each user's arrival.
    clock = np.cumsum(gaps)
    clock -= np.repeat(clock[user_first_request], counts)
    clock += np.repeat(arrival, counts)
    clock += _return_shifts(
        fitted,
        clock,
        gaps,
        np.stack([session_first[returning], lengths[returning]]),
        user_first_request,
        counts,
        rng,
    )
    keep = clock < duration_s
    t_s, user, session = clock[keep], request_user[keep], request_session[keep]
    order = np.argsort(t_s, kind="stable")
    t_s, user, session = t_s[order], user[order], session[order]
    # Dense session ids in order of each kept session's first request.
    _, first_seen, dense = np.unique(session, return_index=True, return_inverse=True)
    renumber = np.empty(first_seen.size, np.int64)
    renumber[np.argsort(first_seen, kind="stable")] = np.arange(first_seen.size)
    return RequestStream(
        t_s=t_s.astype(np.float64),
        user=user.astype(np.int32),
        session=renumber[dense].astype(np.int32),
    )


def make_fitted_world(
    fitted: FittedTraffic,
    *,
    users: int,
    items: int,
    latent_factors: int,
    signal: float,
    rng: np.random.Generator,
) -> SyntheticWorld:
    """``replay.synthetic.make_world`` with the fitted popularity and activity: item biases
    in the log's shares by rank (which item is popular: a random permutation), activities in
    the log's shares (mean 1, as the world keeps them; ``fitted_requests`` reads the ranks)."""
    scale = 1.0 / np.sqrt(latent_factors)
    user_factors = rng.normal(0.0, scale, (users, latent_factors)).astype(np.float32)
    item_factors = rng.normal(0.0, scale, (items, latent_factors)).astype(np.float32)
    item_bias = fitted_item_bias(fitted.popularity, items)[rng.permutation(items)]
    activity = fitted_activity(fitted.activity, users, rng)
    activity /= activity.mean()
    return SyntheticWorld(user_factors, item_factors, item_bias, activity, signal)
