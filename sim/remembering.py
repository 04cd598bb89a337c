"""Users who remember (``[users] model = "remembering"``): drifting taste, satisfaction, leaving.

Beside the memoryless cascade of ``sim.users`` (which still decides clicks, position by
position), a remembering user carries three things from one request to the next.

**Taste drift** (logits).  Each user has a taste vector ``d_u`` in the world's item-factor
space, zero at the start.  A shown item's click probability ``r`` (the cascade's, from the
ground truth) is moved on the logit scale::

    r' = σ(logit(r) + d_u · v̂_i),     v̂_i = v_i / ‖v_i‖  (the item's unit factor vector)

and after each click on item ``i`` the taste moves toward it::

    d_u ← (1 − η) d_u + η κ v̂_i        η = drift_rate (per click), κ = drift_strength (logits)

so ‖d_u‖ ≤ κ: what a user consumed becomes more attractive, the rest less (RecSim's interest
evolution).  A session sees the taste its user had when it started; the clicks of a session
move the taste of the next one.

**Satisfaction** ``s_u`` ∈ [0, 1] (unitless), ``satisfaction_start`` at first.  Each request
gives a quality::

    q = clip(min(1, g / g_ref) − w_lat · min(1, max(0, L − L0) / L_scale) − w_chg · (1 − o), 0, 1)

``g`` the list's click probability under the cascade (:func:`sim.users.list_click_probability`
of ``r'``; 0 for a list not looked at: dropped or abandoned), ``g_ref`` =
``relevant_click_probability``, ``L`` the request's latency (ms), ``L0`` =
``latency_threshold_ms``, ``L_scale`` = ``latency_scale_ms``, ``w_lat`` = ``latency_weight``,
and ``o`` the overlap ``|A ∩ B| / K`` of the list shown with the list shown just before in the
same session (``o = 1`` for a session's first list or when nothing was shown before), weighted
by ``w_chg`` = ``change_weight``: an abrupt list change inside a session costs satisfaction.
A version's list for a user is one set of items for the whole run (a degraded answer only
reorders it), so only a list from another source (another version after a switch or a
fallback, the popularity list) can change it; a release installed mid-session keeps its
version's slot and counts as the same list.
Then ``s_u ← (1 − λ) s_u + λ q`` (λ = ``satisfaction_rate``): an exponentially weighted mean of
the qualities, so ``s_u`` stays in [0, 1].

**Return.**  At the first request of each of a user's later sessions the user comes back with
probability ``p = p0 + (p1 − p0) s_u`` (``return_at_zero``, ``return_at_one``); a user who
does not has left for good, and none of their later requests is sent (each is counted as not
sent).  ``s_u`` is the satisfaction *as known then*: the lab brings the users' responses up to
date every ``update_every_s`` simulated seconds (at ``t = k · update_every_s``, the requests
that arrived at least the engine's settle time before, so all have ended), in one vectorized
batch; a session that starts less than that after the previous one (or overlaps it:
synthetic users may start one before the last ends) sees the previous one only in part.

**Engagement per click.**  Dwell time ``D ~ LogNormal(ln(dwell_median_s) + γ (r' − ½), σ_d)``
seconds (γ = ``dwell_relevance_gain`` log-seconds per unit of click probability, σ_d =
``dwell_sigma``), ``r'`` the clicked item's click probability: relevant items hold the user
longer.  A click converts with probability ``min(1, c · r')``, c = ``conversion_per_relevance``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.records import ABSENT, DROPPED, NOTHING
from sim.users import CascadeUsers, list_click_probability

__all__ = [
    "ItemsOf",
    "MemoryParams",
    "RememberingUsers",
    "list_overlap",
    "quality",
    "return_probability",
    "smooth_in_order",
    "tilt_relevance",
]

FloatArray = npt.NDArray[np.float64]
#: ``(served_by codes [m], users [m]) -> [m, K]``: the items of the lists those versions show
#: those users (any order: overlaps are of sets).
ItemsOf = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class MemoryParams:
    """The remembering users' settings (see the module docstring for each symbol)."""

    satisfaction_start: float = 0.5
    satisfaction_rate: float = 0.2
    relevant_click_probability: float = 0.3
    latency_threshold_ms: float = 200.0
    latency_scale_ms: float = 500.0
    latency_weight: float = 0.5
    change_weight: float = 0.5
    return_at_zero: float = 0.6
    return_at_one: float = 1.0
    drift_rate: float = 0.05
    drift_strength: float = 1.0
    dwell_median_s: float = 30.0
    dwell_relevance_gain: float = 1.0
    dwell_sigma: float = 0.8
    conversion_per_relevance: float = 0.1
    update_every_s: float = 60.0


def return_probability(satisfaction: np.ndarray, params: MemoryParams) -> FloatArray:
    """``p = p0 + (p1 − p0) s``: the chance a user with satisfaction ``s`` comes back."""
    s = np.asarray(satisfaction, np.float64)
    p0, p1 = params.return_at_zero, params.return_at_one
    return np.asarray(p0 + (p1 - p0) * s, np.float64)


def list_overlap(a: np.ndarray, b: np.ndarray) -> FloatArray:
    """``[n]`` share ``|A ∩ B| / K`` of list ``a``'s items also in list ``b`` (``[n, K]`` ids,
    negative ids are empty slots and never match)."""
    if a.shape[0] == 0:
        return np.zeros(0)
    same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    return np.asarray(same.any(axis=2).sum(axis=1) / a.shape[1], np.float64)


def quality(
    list_click: np.ndarray,
    latency_ms: np.ndarray,
    overlap: np.ndarray,
    params: MemoryParams,
) -> FloatArray:
    """``[n]`` per-request quality ``q`` in [0, 1] (module docstring)."""
    relevant = np.minimum(
        1.0, np.asarray(list_click, np.float64) / params.relevant_click_probability
    )
    late = np.maximum(0.0, np.asarray(latency_ms, np.float64) - params.latency_threshold_ms)
    slow = np.minimum(1.0, late / params.latency_scale_ms)
    change = 1.0 - np.asarray(overlap, np.float64)
    q = relevant - params.latency_weight * slow - params.change_weight * change
    return np.asarray(np.clip(q, 0.0, 1.0), np.float64)


def tilt_relevance(
    relevance: np.ndarray, taste: np.ndarray, unit_factors: np.ndarray
) -> FloatArray:
    """``r' = σ(logit(r) + d · v̂)`` for ``relevance [n, K]``, ``taste [n, f]`` and the shown
    items' ``unit_factors [n, K, f]``; 0 stays 0 and 1 stays 1."""
    r = np.clip(np.asarray(relevance, np.float64), 0.0, 1.0)
    shift = np.einsum("nkf,nf->nk", unit_factors, taste).astype(np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(r) - np.log1p(-r)
    return np.asarray(1.0 / (1.0 + np.exp(-(logit + shift))), np.float64)


def smooth_in_order(state: np.ndarray, who: np.ndarray, x: np.ndarray, rate: float) -> FloatArray:
    """Apply ``state[who_j] ← (1 − rate) state[who_j] + rate x_j`` for each event ``j`` in order.

    ``state`` is ``[m]`` or ``[m, f]`` (updated in place), ``who`` int ``[n]`` and ``x`` ``[n]``
    or ``[n, f]``.  Returns the state of ``who_j`` just after event ``j``.  Vectorized over
    users: one numpy step per event *position* (a user's first event, second, ...), so the
    cost grows with the most events one user has, not with ``n``.
    """
    out = np.empty(x.shape, np.float64)
    n = who.shape[0]
    if n == 0:
        return out
    order = np.argsort(who, kind="stable")
    sorted_who = who[order]
    starts = np.flatnonzero(np.r_[True, sorted_who[1:] != sorted_who[:-1]])
    position = np.empty(n, np.int64)
    position[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    by_position = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[by_position], np.arange(int(position.max()) + 2))
    for p in range(bounds.size - 1):
        rows = by_position[bounds[p] : bounds[p + 1]]
        users = who[rows]
        state[users] = (1.0 - rate) * state[users] + rate * x[rows]
        out[rows] = state[users]
    return out


class RememberingUsers:
    """The remembering users' state over one run, and their response to settled requests.

    ``session_first`` [n] marks the first request of each of a user's sessions after their
    first; ``previous_last`` [n] is, at every session's first request, the last request of
    the same user's previous session (-1: none, the user's first session).
    ``item_unit_factors`` [n_items, f]: the world's item factors scaled to unit length (taste
    drift needs them; None turns drift off).
    """

    def __init__(
        self,
        params: MemoryParams,
        cascade: CascadeUsers,
        *,
        user: np.ndarray,
        session: np.ndarray,
        n_users: int,
        item_unit_factors: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        self.params = params
        self.cascade = cascade
        self.user = user
        self.session = session
        n = user.shape[0]
        self.satisfaction = np.full(n_users, params.satisfaction_start, np.float64)
        self.gone = np.zeros(n_users, np.bool_)
        self.left: set[int] = set()  # the same users, for the event loop's membership test
        factors = item_unit_factors if params.drift_rate > 0 else None
        self.item_unit_factors = None if factors is None else factors.astype(np.float32)
        f = 0 if factors is None else factors.shape[1]
        self.taste = np.zeros((n_users, f), np.float64)
        self.session_taste = np.zeros((n_users, f), np.float64)
        self.taste_session = np.full(n_users, -1, np.int64)
        first, self.previous_in_session, self.previous_last = _session_links(user, session)
        #: The requests where a user decides whether to return: the first of each of their
        #: sessions after the first (the engine asks only there).
        self.session_first = first & (self.previous_last >= 0)
        n_sessions = int(session.max(initial=-1)) + 1
        # One uniform per session, drawn up front: whether a user returns does not depend
        # on when the lab learnt their satisfaction, only on its value.
        self.return_draw = rng.random(n_sessions)
        # Per request: what the user did and felt.
        self.dwell_s = np.zeros(n, np.float32)
        self.converted = np.zeros(n, np.bool_)
        self.satisfaction_after = np.full(n, np.nan, np.float32)
        self.list_change = np.full(n, np.nan, np.float32)  # 1 − overlap, NaN: nothing before
        self.decision = np.full(n, -1, np.int8)  # at session starts: 1 returned, 0 left
        self.satisfaction_at_decision = np.full(n, np.nan, np.float32)

    # --- the engine's question at a session's first request ------------------------------------

    def comes_back(self, i: int, user: int) -> bool:
        """Whether ``user``, starting the session of request ``i``, returns (the caller has
        brought the satisfaction up to date); a user who does not is gone for good."""
        # Called once per session start in the event loop: scalar reads, no array temporaries.
        if self.previous_last.item(i) < 0:
            return True
        s = self.satisfaction.item(user)
        p0 = self.params.return_at_zero
        p = p0 + (self.params.return_at_one - p0) * s
        back: bool = self.return_draw.item(self.session.item(i)) < p
        self.decision[i] = 1 if back else 0
        self.satisfaction_at_decision[i] = s
        if not back:
            self.gone[user] = True
            self.left.add(user)
        return back

    # --- responses to settled requests ----------------------------------------------------------

    def respond(
        self,
        lo: int,
        hi: int,
        relevance: np.ndarray,
        items: np.ndarray,
        served_by: np.ndarray,
        latency_ms: np.ndarray,
        result: np.ndarray,
        items_of: ItemsOf,
        *,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clicks, click positions and abandonment for requests ``[lo, hi)``; updates the state.

        ``relevance`` and ``items`` are ``[n, K]`` in the order shown; ``served_by``,
        ``latency_ms`` and ``result`` are the whole run's record columns; ``items_of`` gives
        the lists of earlier requests (a session's previous list, for the overlap).
        """
        n, k = relevance.shape
        clicks = np.zeros(n, np.uint8)
        pos = np.full(n, -1, np.int8)
        abandoned = np.zeros(n, np.bool_)
        tilted = np.zeros((n, k), np.float64)
        rows = np.arange(lo, hi)
        sent = result[lo:hi] != ABSENT
        # Rounds: a user's first session in this slice, the second, ...: each sees the taste
        # its session started with, after the clicks of the sessions before it.
        for members in _rounds(self.user[lo:hi], self.session[lo:hi], sent):
            users = self.user[lo + members]
            tilted[members] = self._tilted(relevance[members], items[members], users, lo + members)
            shown = result[lo + members] != DROPPED
            answer = self.cascade.respond(
                tilted[members].astype(np.float32), latency_ms[lo + members], shown, rng=rng
            )
            clicks[members] = answer.clicks
            pos[members] = answer.click_pos
            abandoned[members] = answer.abandoned
            self._drift(members, items, answer.click_pos, users)
        clicked = np.flatnonzero(pos >= 0)
        r_click = tilted[clicked, pos[clicked]]
        p = self.params
        self.dwell_s[lo + clicked] = np.exp(
            np.log(p.dwell_median_s)
            + p.dwell_relevance_gain * (r_click - 0.5)
            + p.dwell_sigma * rng.standard_normal(clicked.size)
        )
        self.converted[lo + clicked] = rng.random(clicked.size) < np.minimum(
            1.0, p.conversion_per_relevance * r_click
        )
        looked = sent & (result[lo:hi] != DROPPED) & ~abandoned
        g = np.where(looked, list_click_probability(tilted, self.cascade.position_decay), 0.0)
        overlap, changed = self._overlap(rows, items, served_by, items_of)
        self.list_change[lo:hi] = np.where(changed, 1.0 - overlap, np.nan)
        q = quality(g, latency_ms[lo:hi], overlap, p)
        members = np.flatnonzero(sent)
        after = smooth_in_order(
            self.satisfaction, self.user[lo + members], q[members], p.satisfaction_rate
        )
        self.satisfaction_after[lo + members] = after
        return clicks, pos, abandoned

    def _tilted(
        self, relevance: np.ndarray, items: np.ndarray, users: np.ndarray, rows: np.ndarray
    ) -> FloatArray:
        if self.item_unit_factors is None:
            return np.asarray(relevance, np.float64)
        sessions = self.session[rows]
        new = self.taste_session[users] != sessions
        self.session_taste[users[new]] = self.taste[users[new]]
        self.taste_session[users[new]] = sessions[new]
        out = np.asarray(relevance, np.float64).copy()
        taste = self.session_taste[users]
        # Users who never clicked have no taste yet: their lists are not tilted (most rows
        # early in a run), so only the others pay for the [n, K, f] gather.
        tilted = np.flatnonzero(taste.any(axis=1))
        if tilted.size:
            shown = items[tilted]
            factors = self.item_unit_factors[np.maximum(shown, 0)]
            factors[shown < 0] = 0.0
            # float32 factors (see ``__init__``): the shift needs no more than 7 digits.
            out[tilted] = tilt_relevance(out[tilted], taste[tilted].astype(np.float32), factors)
        return out

    def _drift(
        self, members: np.ndarray, items: np.ndarray, click_pos: np.ndarray, users: np.ndarray
    ) -> None:
        if self.item_unit_factors is None:
            return
        clicked = np.flatnonzero(click_pos >= 0)
        item = items[members[clicked], click_pos[clicked]]
        target = self.params.drift_strength * self.item_unit_factors[item]
        smooth_in_order(self.taste, users[clicked], target, self.params.drift_rate)

    def _overlap(
        self, rows: np.ndarray, items: np.ndarray, served_by: np.ndarray, items_of: ItemsOf
    ) -> tuple[FloatArray, np.ndarray]:
        """Per row the overlap with the session's previous list, and whether there was one."""
        before = self.previous_in_session[rows]
        has = (before >= 0) & (served_by[rows] != NOTHING)
        has[has] = served_by[before[has]] != NOTHING
        overlap = np.ones(rows.size)
        # One version's list for one user is one set of items (a degraded answer reorders
        # it): only a list from another source than the previous one can differ from it.
        differs = has.copy()
        differs[has] = served_by[before[has]] != served_by[rows[has]]
        if differs.any():
            lo = int(rows[0])
            here = np.flatnonzero(differs)
            prev_rows = before[here]
            inside = prev_rows >= lo
            prev_items = np.empty((here.size, items.shape[1]), items.dtype)
            prev_items[inside] = items[prev_rows[inside] - lo]
            outside = ~inside
            if outside.any():
                earlier = prev_rows[outside]
                prev_items[outside] = items_of(served_by[earlier], self.user[earlier])
            overlap[here] = list_overlap(items[here], prev_items)
        return overlap, has


def _rounds(user: np.ndarray, session: np.ndarray, sent: np.ndarray) -> list[np.ndarray]:
    """Rows (indices into the slice) grouped by the rank of their session among the user's
    sessions in the slice (by first appearance), sent rows only."""
    rows = np.flatnonzero(sent)
    if rows.size == 0:
        return []
    sessions, first, inverse = np.unique(session[rows], return_index=True, return_inverse=True)
    owner = user[rows][first]
    order = np.lexsort((first, owner))
    rank = np.empty(sessions.size, np.int64)
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    rank[order] = np.arange(sessions.size) - np.repeat(
        starts, np.diff(np.r_[starts, sessions.size])
    )
    row_rank = rank[inverse]
    return [rows[row_rank == r] for r in range(int(row_rank.max()) + 1)]


def _session_links(user: np.ndarray, session: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(session_first [n] bool, previous_in_session [n], previous_last [n])``.

    ``previous_in_session``: the same session's request just before (-1 at its first);
    ``previous_last``: at a session's first request, the last request of the same user's
    session that started before it (-1 otherwise).
    """
    n = user.shape[0]
    by_session = np.argsort(session, kind="stable")
    s_sorted = session[by_session]
    first_sorted = np.r_[True, s_sorted[1:] != s_sorted[:-1]] if n else np.zeros(0, bool)
    previous_in_session = np.full(n, -1, np.int64)
    previous_in_session[by_session[1:][~first_sorted[1:]]] = by_session[:-1][~first_sorted[1:]]
    session_first = np.zeros(n, np.bool_)
    session_first[by_session[first_sorted]] = True
    last_sorted = np.r_[s_sorted[1:] != s_sorted[:-1], True] if n else np.zeros(0, bool)
    first_rows = by_session[first_sorted]  # per session (in session order), its first row
    last_rows = by_session[last_sorted]
    owner = user[first_rows]
    order = np.lexsort((first_rows, owner))
    same = np.r_[False, owner[order][1:] == owner[order][:-1]] if order.size else order.astype(bool)
    previous_last = np.full(n, -1, np.int64)
    previous_last[first_rows[order][same]] = last_rows[order][np.flatnonzero(same) - 1]
    return session_first, previous_in_session, previous_last
