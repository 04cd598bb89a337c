"""The five marginals a fitted world must reproduce, measured the same way on a log and on
generated traffic, and their two-sample Kolmogorov-Smirnov distances.

From requests ``(user, t_s, item)`` (any order):

* **item popularity** — for every request, the popularity rank of its item among the
  catalogue's ``n_items`` items (by that traffic's own request counts, most requested first,
  ties by item id), divided by ``n_items``.  Its CDF at ``x`` is the share of requests that
  go to the top ``x`` of the catalogue (the concentration curve), so the KS statistic is the
  largest gap between the two concentration curves; it does not change with the number of
  users (``--scale``);
* **user activity** — requests per user, over users with at least one request;
* **session length** — requests per session, sessions cut by the same inactivity gap
  (``replay.sessions.gap_sessions``) on both sides;
* **inter-arrival time** — seconds between consecutive requests of the same user (think
  times inside sessions and return gaps between them), a per-user law that does not change
  with the number of users either;
* **hour of day** — for every request, its time of day in hours (UTC), ``(t_s mod 86,400) /
  3,600``: the daily profile of all requests (a log's ``t_s`` are epoch seconds, a fitted
  world's start at midnight UTC, so both read the same clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.sessions import gap_sessions

__all__ = ["MARGINALS", "Marginals", "ks_distances", "marginals_of"]

SECONDS_PER_DAY = 86_400.0

MARGINALS = (
    "item_popularity",
    "user_activity",
    "session_length",
    "inter_arrival_s",
    "hour_of_day",
)


@dataclass(frozen=True, slots=True)
class Marginals:
    item_popularity: npt.NDArray[np.float64]  # per request: item rank / n_items, in [0, 1)
    user_activity: npt.NDArray[np.float64]  # per user with requests
    session_length: npt.NDArray[np.float64]  # per session
    inter_arrival_s: npt.NDArray[np.float64]  # per consecutive pair of one user's requests
    hour_of_day: npt.NDArray[np.float64]  # per request: hours after midnight UTC, [0, 24)


def marginals_of(
    user: npt.ArrayLike,
    t_s: npt.ArrayLike,
    item: npt.ArrayLike,
    *,
    n_items: int,
    gap_s: float,
) -> Marginals:
    users = np.asarray(user, dtype=np.int64)
    times = np.asarray(t_s, dtype=np.float64)
    items = np.asarray(item, dtype=np.int64)
    by_time = np.argsort(times, kind="stable")
    users, times, items = users[by_time], times[by_time], items[by_time]
    counts = np.bincount(items, minlength=n_items)
    rank = np.empty(n_items, np.float64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(n_items) / n_items
    activity = np.bincount(users)
    # Microseconds relative to the first request: gap_sessions' resolution.
    ts_us = np.rint((times - (times[0] if times.size else 0.0)) * 1e6).astype(np.int64)
    session = gap_sessions(users.astype(np.uint32), ts_us, gap_s)
    by_user = np.lexsort((times, users))
    same_user = users[by_user][1:] == users[by_user][:-1]
    return Marginals(
        item_popularity=rank[items],
        user_activity=activity[activity > 0].astype(np.float64),
        session_length=np.bincount(session).astype(np.float64),
        inter_arrival_s=np.diff(times[by_user])[same_user],
        hour_of_day=np.mod(times, SECONDS_PER_DAY) / 3600.0,
    )


def ks_distances(a: Marginals, b: Marginals) -> dict[str, float]:
    """Two-sample KS statistic ``sup_x |F_a(x) - F_b(x)|`` of each marginal."""
    from scipy.stats import ks_2samp  # slow to import: only when marginals are compared

    return {
        name: float(ks_2samp(getattr(a, name), getattr(b, name), method="asymp").statistic)
        for name in MARGINALS
    }
