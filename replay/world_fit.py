"""A synthetic world's settings estimated from a log (``rollout-lab fit-world``).

Sessions are cut by an inactivity gap (``DEFAULT_GAP_S``, 30 minutes, the usual web-analytics
convention and the lab's ``traffic.log.session_gap``).  From the log's events the fit
measures:

* the empirical laws of ``replay.fitted_traffic`` (activity, per-band sessions, session
  lengths, think times and return gaps, the hourly profile of users' first sessions, item
  shares by popularity rank), each at most ``MAX_LAW_VALUES`` values;
* ``popularity_skew`` — the least-squares slope ``s`` of ``ln count = c - s ln rank`` over
  items with requests (the Zipf exponent the default world would use);
* ``popularity_drift`` — ``1 - rho``, ``rho`` the Spearman correlation between the request
  counts of the log's first ``1 - DRIFT_SHARE`` and last ``DRIFT_SHARE`` of its time span
  (the lab's default train / replay split of a log) over items with at least
  ``DRIFT_MIN_COUNT`` requests; the lab's drift swaps the popularity of that share of items;
* ``new_items`` — the share of items first seen in the last ``NEW_WINDOW_SHARE`` of the span;
  ``new_users_per_day`` — users first seen per day (users / span in days);
* ``latent_factors`` and ``taste_signal`` — by matching the log's spectrum with a fitted
  world's (``replay.taste_fit``);
* ``click_level`` and ``click_offset`` — how often a shown item is clicked (clicks per
  impression, or per logged event) and the ``users.click_offset`` that gives the fitted
  world that level (``replay.click_level``), for users whose clicks rise with activity by
  ``activity_engagement`` (written beside the offset, since the offset depends on it);
  ``None`` for a log of consumptions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.click_level import ClickLevel, click_offset, event_click_level
from replay.errors import UserInputError
from replay.events import EventTable
from replay.fitted_traffic import (
    EmpiricalLaw,
    FittedTraffic,
    SessionHours,
    UserBand,
    long_return_s,
    make_fitted_world,
)
from replay.sessions import gap_sessions
from replay.taste_fit import TasteFit, fit_taste

__all__ = [
    "DEFAULT_GAP_S",
    "DRIFT_SHARE",
    "NEW_WINDOW_SHARE",
    "LogShape",
    "WorldFit",
    "fit_world",
    "log_shape",
]

DEFAULT_GAP_S = 1800.0
MAX_LAW_VALUES = 1000
BAND_LAW_VALUES = 200
USER_BANDS = 20
DRIFT_MIN_COUNT = 10
DRIFT_SHARE = 0.2
NEW_WINDOW_SHARE = 0.1
MIN_USERS = 10
MIN_ITEMS = 2
#: Classes of session length the hour-of-day profiles of anchored sessions are kept in.
LENGTH_CLASSES = 8


@dataclass(frozen=True, slots=True)
class LogShape:
    """A log as plain arrays, sorted by time: dense user and item ids, seconds since the
    Unix epoch (UTC)."""

    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    t_s: npt.NDArray[np.float64]
    event: npt.NDArray[np.str_] | None
    n_users: int
    n_items: int


@dataclass(frozen=True, slots=True)
class WorldFit:
    traffic: FittedTraffic
    gap_s: float
    users: int
    items: int
    events: int
    sessions: int
    popularity_skew: float
    popularity_drift: float
    new_items: float
    new_users_per_day: float
    mean_session_length: float
    mean_think_time_s: float
    click_level: ClickLevel | None
    click_offset: float | None
    activity_engagement: float
    taste: TasteFit


def log_shape(table: EventTable) -> LogShape:
    events = table.events
    ts_us = events["ts"].dt.epoch("us").to_numpy()
    event = events["event"].to_numpy() if "event" in events.columns else None
    return LogShape(
        user=events["user"].to_numpy().astype(np.int64),
        item=events["item"].to_numpy().astype(np.int64),
        t_s=ts_us.astype(np.float64) / 1e6,
        event=event,
        n_users=table.n_users,
        n_items=table.n_items,
    )


def _too_short(source: str, log: LogShape, gap_s: float) -> None:
    """One line naming everything the log lacks to fit a world, or nothing."""
    missing: list[str] = []
    active_users = int(np.unique(log.user).size)
    if active_users < MIN_USERS:
        missing.append(f"{active_users} users (need at least {MIN_USERS})")
    active_items = int(np.unique(log.item).size)
    if active_items < MIN_ITEMS:
        missing.append(f"{active_items} items (need at least {MIN_ITEMS})")
    span = float(log.t_s[-1] - log.t_s[0]) if log.t_s.size else 0.0
    if span < SECONDS_PER_DAY:
        missing.append(f"a time span of {span:g} s (need at least a day for the daily profile)")
    if log.t_s.size >= 2:
        session = _sessions(log, gap_s)
        lengths = np.bincount(session)
        if lengths.max() < 2:
            missing.append(
                f"no session with two requests within {gap_s:g} s (think time cannot be estimated)"
            )
        per_user = np.bincount(log.user[np.unique(session, return_index=True)[1]])
        if per_user.max(initial=0) < 2:
            missing.append(
                f"no user with two sessions more than {gap_s:g} s apart (the return gap cannot "
                "be estimated)"
            )
    if missing:
        raise UserInputError(
            f"{source}: log too short to fit a world: {'; '.join(missing)} (use a longer log)"
        )


SECONDS_PER_DAY = 86_400.0


def _sessions(log: LogShape, gap_s: float) -> npt.NDArray[np.int64]:
    ts_us = np.rint(log.t_s * 1e6).astype(np.int64)
    return gap_sessions(log.user.astype(np.uint32), ts_us, gap_s).astype(np.int64)


def _session_hours(
    length: npt.NDArray[np.int64], start_s: npt.NDArray[np.float64]
) -> tuple[SessionHours, ...]:
    """Hour-of-day profiles of anchored sessions (``length`` requests starting at epoch
    ``start_s``) in up to ``LENGTH_CLASSES`` classes of session length, cut at the quantiles
    of the length weighted by itself (each class holds about 1 / LENGTH_CLASSES of those
    sessions' requests: the long sessions that carry most requests get classes of their
    own, so the daily profile of all requests, not only of session starts, is the log's)."""
    ordered = np.sort(length)
    share = np.cumsum(ordered) / ordered.sum()
    levels = np.arange(1, LENGTH_CLASSES) / LENGTH_CLASSES
    cuts = [int(ordered[np.searchsorted(share, q)]) for q in levels]
    uppers = np.unique([*cuts, int(ordered[-1])])
    of = np.searchsorted(uppers, length, side="left")
    hour = ((start_s % SECONDS_PER_DAY) // 3600).astype(np.int64)
    out = []
    for k, upper in enumerate(uppers):
        counts = np.bincount(hour[of == k], minlength=24).astype(np.float64)
        out.append(SessionHours(float(upper), tuple(float(c) for c in counts / counts.sum())))
    return tuple(out)


def _popularity_skew(counts: npt.NDArray[np.int64]) -> float:
    seen = np.sort(counts[counts > 0])[::-1].astype(np.float64)
    if seen.size < 2:
        return 0.0
    x = np.log(np.arange(1, seen.size + 1))
    slope = np.polyfit(x, np.log(seen), 1)[0]
    return float(np.clip(-slope, 0.0, 3.0))


def _popularity_drift(log: LogShape) -> float:
    half = log.t_s[-1] - DRIFT_SHARE * (log.t_s[-1] - log.t_s[0])
    early = np.bincount(log.item[log.t_s < half], minlength=log.n_items)
    late = np.bincount(log.item[log.t_s >= half], minlength=log.n_items)
    kept = (early + late) >= DRIFT_MIN_COUNT
    if kept.sum() < 3 or early[kept].std() == 0 or late[kept].std() == 0:
        return 0.0
    from scipy.stats import spearmanr  # slow to import: only when a world is fitted

    rho = float(spearmanr(early[kept], late[kept]).statistic)
    return float(np.clip(1.0 - rho, 0.0, 1.0))


def _bands(
    activity: npt.NDArray[np.int64],
    sessions_of_user: npt.NDArray[np.int64],
    session_user: npt.NDArray[np.int64],
    session_length: npt.NDArray[np.int64],
    think_user: npt.NDArray[np.int64],
    think_s: npt.NDArray[np.float64],
    return_user: npt.NDArray[np.int64],
    return_s: npt.NDArray[np.float64],
) -> tuple[UserBand, ...]:
    """Users cut into ``USER_BANDS`` bands by mean session length (requests / sessions), each
    band holding about as many sessions: a user's sessions are drawn from the lengths of
    users like it, finest where most sessions are."""
    active = np.flatnonzero(activity > 0)
    mean_length = activity / np.maximum(sessions_of_user, 1)
    levels = np.linspace(0, 1, USER_BANDS + 1)[1:]
    per_session = np.repeat(mean_length[active], sessions_of_user[active])
    edges = np.unique(np.quantile(per_session, levels, method="inverted_cdf"))
    band = np.searchsorted(edges, mean_length, side="left")
    bands: list[UserBand] = []
    lower_think = EmpiricalLaw(np.zeros(1))
    for b, upper in enumerate(edges):
        users = active[band[active] == b]
        if users.size == 0:
            continue
        # Lengths only of users with several sessions: a one-session user's length is its
        # activity, so its session would dilute the short sessions the law is drawn for.
        several = users[sessions_of_user[users] > 1]
        mine = np.isin(session_user, several if several.size else users)
        thinks = think_s[np.isin(think_user, users)]
        returns = return_s[np.isin(return_user, users)]
        think = EmpiricalLaw.of(thinks, BAND_LAW_VALUES) if thinks.size else lower_think
        lower_think = think
        bands.append(
            UserBand(
                max_mean_length=float(upper),
                session_length=EmpiricalLaw.of(session_length[mine], BAND_LAW_VALUES),
                think_time_s=think,
                return_gap_s=EmpiricalLaw.of(returns, BAND_LAW_VALUES) if returns.size else None,
            )
        )
    return tuple(bands)


def fit_world(
    log: LogShape,
    *,
    source: str,
    gap_s: float = DEFAULT_GAP_S,
    clicks: ClickLevel | None = None,
    activity_engagement: float,
) -> WorldFit:
    """Every estimate of the module docstring from one log (sorted by time); ``clicks``: the
    click level when the caller measured it (a click column), else from the event types;
    ``activity_engagement``: the scenario's ``users.activity_engagement`` the click offset
    is solved for."""
    if not (math.isfinite(gap_s) and gap_s > 0):
        raise UserInputError(f"{source}: session gap must be a positive duration, got {gap_s!r}")
    if clicks is None:
        clicks = event_click_level(log.event, rows_are_impressions=False, source=source)
    _too_short(source, log, gap_s)
    session = _sessions(log, gap_s)
    n_sessions = int(session.max()) + 1
    session_length = np.bincount(session, minlength=n_sessions)
    first_row = np.unique(session, return_index=True)[1]
    session_user = log.user[first_row]
    activity = np.bincount(log.user, minlength=log.n_users)
    sessions_of_user = np.bincount(session_user, minlength=log.n_users)
    # Gaps between consecutive requests of one user: inside a session (think times) or
    # across two (return gaps: from the end of one session to the start of the next).
    order = np.lexsort((log.t_s, log.user))
    same_user = log.user[order][1:] == log.user[order][:-1]
    gap = np.diff(log.t_s[order])[same_user]
    pair_user = log.user[order][1:][same_user]
    new_session = (session[order][1:] != session[order][:-1])[same_user]
    span_s = float(log.t_s[-1] - log.t_s[0])
    # Users as (activity, sessions) pairs: a stratified subsample sorted by both.
    active = np.flatnonzero(activity > 0)
    by_pair = active[np.lexsort((sessions_of_user[active], activity[active]))]
    m = min(MAX_LAW_VALUES, by_pair.size)
    template = by_pair[((np.arange(m) + 0.5) * by_pair.size / m).astype(np.int64)]
    # Hour of day (UTC) of each user's first request.
    epoch_s = log.t_s[np.unique(log.user, return_index=True)[1]]
    hours = np.bincount(((epoch_s % SECONDS_PER_DAY) // 3600).astype(np.int64), minlength=24)
    # Rows (in user, time order) that start an anchored session: a user's first, or a long
    # return (half a day or more after the user's previous request, ``long_return_s``).
    anchored = np.ones(order.size, dtype=bool)
    anchored[1:] = ~same_user
    pair_row = np.flatnonzero(same_user) + 1
    anchored[pair_row[new_session & (gap >= long_return_s(gap_s))]] = True
    anchor_rows = order[anchored]
    item_counts = np.bincount(log.item, minlength=log.n_items)
    shares = item_counts / item_counts.sum()
    # Items never requested have no share: they take the smallest share seen, halved.
    floor = shares[shares > 0].min() / 2.0
    popularity = EmpiricalLaw.of(np.log(np.maximum(shares, floor)), MAX_LAW_VALUES)
    traffic = FittedTraffic(
        span_s=span_s,
        gap_s=gap_s,
        activity=EmpiricalLaw(activity[template].astype(np.float64)),
        sessions=sessions_of_user[template].astype(np.float64),
        bands=_bands(
            activity,
            sessions_of_user,
            session_user,
            session_length,
            pair_user[~new_session],
            gap[~new_session],
            pair_user[new_session],
            gap[new_session],
        ),
        hourly_profile=tuple(float(h) for h in hours / hours.sum()),
        session_hours=_session_hours(session_length[session[anchor_rows]], log.t_s[anchor_rows]),
        popularity=popularity,
    )
    first_item_t = np.full(log.n_items, np.inf)
    np.minimum.at(first_item_t, log.item, log.t_s)
    new_since = log.t_s[-1] - NEW_WINDOW_SHARE * span_s
    seen = np.isfinite(first_item_t)
    taste = fit_taste(log.user, log.item, n_users=log.n_users, n_items=log.n_items, traffic=traffic)
    offset = None
    if clicks is not None and clicks.shown > 0:
        # The world the block describes (its laws, factors and signal), drawn once with a
        # fixed seed, on which the offset is solved.
        world = make_fitted_world(
            traffic,
            users=int((activity > 0).sum()),
            items=log.n_items,
            latent_factors=taste.latent_factors,
            signal=taste.taste_signal,
            rng=np.random.default_rng(0),
        )
        offset = click_offset(
            world,
            clicks.rate,
            rng=np.random.default_rng(1),
            activity_engagement=activity_engagement,
        )
    return WorldFit(
        traffic=traffic,
        gap_s=gap_s,
        users=int((activity > 0).sum()),
        items=log.n_items,
        events=int(log.t_s.size),
        sessions=n_sessions,
        popularity_skew=_popularity_skew(item_counts),
        popularity_drift=_popularity_drift(log),
        new_items=float((first_item_t[seen] >= new_since).mean()),
        new_users_per_day=float((activity > 0).sum() / max(span_s / SECONDS_PER_DAY, 1e-9)),
        mean_session_length=float(session_length.mean()),
        mean_think_time_s=float(gap[~new_session].mean()) if (~new_session).any() else 0.0,
        click_level=clicks,
        click_offset=offset,
        activity_engagement=activity_engagement,
        taste=taste,
    )
