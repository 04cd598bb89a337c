"""Fairness by attribute: exposure of item groups, and outcomes of user groups.

**Provider fairness** (item groups, e.g. the studio or seller of each item).  Every list
slot a version showed is exposure for its item's group; an item with several groups (a
co-production) shares its slot equally among them.  Per group g, with per-user sums so
that the interval respects that one user's lists are correlated:

    exposure_share_g   = Σ_u x_ug / Σ_u n_u       (n_u slots shown to u, x_ug those of g)
    catalogue_share_g  = Σ_i s_ig / n_items        (s_ig = item i's share of group g)
    popularity_share_g = Σ_i pop_i s_ig / Σ_i pop_i

An exposure share above the catalogue share means the group is shown more than its size;
against the popularity share, more than its past demand.  Summaries: the total variation
distance TV(p, q) = ½ Σ_g |p_g − q_g| of the exposure shares from either (0: the same
distribution, 1: disjoint).  Intervals: the delta method for a ratio of per-user sums
(:func:`sim.stats.clustered_ratio`).  The change between two versions is *paired*: both
versions' lists for the same users (those the candidate served, with their request counts),
so that a canary shown to one country is not compared with everyone's lists.  With
R_a = Σ_u x_a,u / Σ_u n_a,u and R_b likewise, d = R_b − R_a and

    Var(d) ≈ Var_u( (x_b,u − R_b n_b,u) / n̄_b − (x_a,u − R_a n_a,u) / n̄_a ) / N

(the delta method on the users' joint sums; :func:`paired_share_change`).  Singh & Joachims
2018 define exposure fairness; Abdollahpouri et al. 2019 compare exposure with popularity.

**User groups** (e.g. country): CTR per group and version, clustered by user, and the
candidate − baseline difference per group with two intervals: the plain 95 % one and a
simultaneous one, Bonferroni-corrected for the G groups compared (each at 1 − 0.05 / G), so
that "the worst of G groups is harmed" is not an artefact of looking at many groups.  The
worst group is the one with the lowest difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replay.errors import must_be
from sim.stats import (
    ArmStats,
    Interval,
    clustered_ratio,
    difference_interval,
    z_two_sided,
)

__all__ = [
    "GroupDelta",
    "GroupExposure",
    "group_ctr_deltas",
    "group_exposure",
    "level_shares",
    "paired_share_change",
    "total_variation",
]

FloatArray = npt.NDArray[np.float64]


def level_shares(membership: Any) -> FloatArray:
    """s_ig: item i's share of group g [n_items, n_groups]; rows sum to 1 (0 without a group).

    ``membership`` is 0/1 [n_items, n_groups] (dense or scipy sparse).
    """
    dense = membership.toarray() if sp.issparse(membership) else np.asarray(membership)
    m = np.asarray(dense, dtype=np.float64)
    if m.ndim != 2 or ((m != 0) & (m != 1)).any():
        raise must_be("level_shares", "membership", "a 0/1 matrix [n_items, n_groups]", m.shape)
    sizes = m.sum(axis=1, keepdims=True)
    return np.asarray(np.divide(m, sizes, out=np.zeros_like(m), where=sizes > 0))


def total_variation(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """TV(p, q) = ½ Σ_g |p_g − q_g| of two distributions over the same groups."""
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.shape != b.shape:
        raise must_be("total_variation", "q.shape", f"{a.shape} like p", b.shape)
    return float(0.5 * np.abs(a - b).sum())


@dataclass(frozen=True, slots=True)
class GroupExposure:
    """Exposure of item groups in the lists one version showed (see the module docstring).

    ``exposure[g]`` is an :class:`~sim.stats.ArmStats` over users (mean = exposure share);
    ``slots`` the request-weighted list slots shown; ``users`` the users they went to.
    """

    catalogue_share: FloatArray
    popularity_share: FloatArray
    exposure: tuple[ArmStats, ...]
    slots: float
    users: int

    @property
    def exposure_share(self) -> FloatArray:
        return np.array([a.mean for a in self.exposure], dtype=np.float64)


def _slots_by_group(
    lists: npt.ArrayLike, weights: npt.ArrayLike, shares: FloatArray, *, source: str
) -> tuple[FloatArray, FloatArray]:
    """Per row: slots shown ``n_u`` [n] and slots of each group ``x_ug`` [n, G]."""
    table = np.asarray(lists, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    n_items = shares.shape[0]
    if table.ndim != 2 or w.shape != (table.shape[0],):
        raise must_be(source, "weights.shape", f"({table.shape[0]},) like lists", w.shape)
    if table.size and table.max(initial=-1) >= n_items:
        raise must_be(source, "lists", f"item ids < {n_items}", int(table.max()))
    listed = table >= 0
    rows = np.repeat(np.arange(table.shape[0]), listed.sum(axis=1))
    counts = sp.csr_matrix(
        (np.repeat(w, listed.sum(axis=1)), (rows, table[listed])),
        shape=(table.shape[0], n_items),
    )
    per_user = np.asarray((counts @ sp.csr_matrix(shares)).toarray(), dtype=np.float64)
    return w * listed.sum(axis=1), per_user


def group_exposure(
    lists: npt.ArrayLike,
    weights: npt.ArrayLike,
    shares: npt.ArrayLike,
    popularity: npt.ArrayLike,
) -> GroupExposure:
    """Exposure share per item group of the lists a version showed.

    Shapes: ``lists`` int [n, K] (one row per user, -1 = empty slot), ``weights`` [n] (the
    user's requests that showed the row), ``shares`` [n_items, G] (:func:`level_shares`,
    with a column for items without a group if they should count), ``popularity``
    [n_items] (e.g. users per item before the run).
    """
    s = np.asarray(shares, dtype=np.float64)
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.shape != (s.shape[0],):
        raise must_be("group_exposure", "popularity.shape", f"({s.shape[0]},)", pop.shape)
    slots, per_user = _slots_by_group(lists, weights, s, source="group_exposure")
    exposure = tuple(clustered_ratio(slots, per_user[:, g]) for g in range(s.shape[1]))
    total_pop = pop.sum()
    return GroupExposure(
        catalogue_share=s.sum(axis=0) / max(s.shape[0], 1),
        popularity_share=(pop @ s) / total_pop if total_pop > 0 else np.full(s.shape[1], np.nan),
        exposure=exposure,
        slots=float(slots.sum()),
        users=int((slots > 0).sum()),
    )


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """One user group: CTR per version (clustered by user) and candidate − baseline.

    ``ctr`` maps a version code to its :class:`~sim.stats.ArmStats` (mean = CTR) over the
    group's users; ``difference`` has the plain 95 % interval and ``adjusted`` the
    Bonferroni one (``None`` when either version has no request in the group).
    """

    group: int
    users: int
    requests: int
    ctr: dict[int, ArmStats]
    difference: Interval | None
    adjusted: Interval | None


def group_ctr_deltas(
    user: npt.ArrayLike,
    version: npt.ArrayLike,
    clicks: npt.ArrayLike,
    membership: sp.spmatrix,
    *,
    versions: Sequence[int],
    baseline: int,
    candidate: int,
    level: float = 0.95,
) -> list[GroupDelta]:
    """CTR by user group and version, and candidate − baseline per group.

    Per request: ``user`` [n] (row of ``membership``), assigned ``version`` [n] (codes),
    ``clicks`` [n] 0/1.  ``membership`` 0/1 [n_users, G]: a user in several groups counts
    in each.  The simultaneous interval is at 1 − (1 − ``level``) / G', G' the groups where
    both versions have requests (Bonferroni).
    """
    u = np.asarray(user, dtype=np.int64)
    v = np.asarray(version, dtype=np.int64)
    c = np.asarray(clicks, dtype=np.float64)
    if not (u.shape == v.shape == c.shape):
        raise must_be("group_ctr_deltas", "version.shape", f"{u.shape} like user", v.shape)
    member = sp.csc_matrix(membership)
    n_users = member.shape[0]
    cells: list[tuple[int, int, int, dict[int, ArmStats]]] = []
    for g in range(member.shape[1]):
        in_group = np.zeros(n_users, dtype=np.bool_)
        in_group[member.indices[member.indptr[g] : member.indptr[g + 1]]] = True
        mine = in_group[u]
        stats: dict[int, ArmStats] = {}
        for code in versions:
            rows = mine & (v == code)
            if rows.any():
                stats[code] = clustered_ratio(
                    np.bincount(u[rows], minlength=n_users),
                    np.bincount(u[rows], weights=c[rows], minlength=n_users),
                )
        cells.append((g, int(in_group[np.unique(u)].sum()), int(mine.sum()), stats))
    compared = sum(1 for *_, s in cells if baseline in s and candidate in s)
    adjusted_level = 1.0 - (1.0 - level) / max(compared, 1)
    out = []
    for g, users, requests, stats in cells:
        both = baseline in stats and candidate in stats
        out.append(
            GroupDelta(
                group=g,
                users=users,
                requests=requests,
                ctr=stats,
                difference=(
                    difference_interval(stats[baseline], stats[candidate], level) if both else None
                ),
                adjusted=(
                    difference_interval(stats[baseline], stats[candidate], adjusted_level)
                    if both
                    else None
                ),
            )
        )
    return out


def paired_share_change(
    lists_a: npt.ArrayLike,
    lists_b: npt.ArrayLike,
    weights: npt.ArrayLike,
    shares: npt.ArrayLike,
    level: float = 0.95,
) -> list[Interval]:
    """Per item group, version b's exposure share − version a's on the *same* users.

    ``lists_a`` and ``lists_b`` int [n, K]: both versions' lists for the same n users (-1 =
    empty slot), ``weights`` [n] their requests, ``shares`` [n_items, G]
    (:func:`level_shares`).  The interval is the paired delta method of the module
    docstring; unbounded with fewer than 2 users.
    """
    s = np.asarray(shares, dtype=np.float64)
    n_a, x_a = _slots_by_group(lists_a, weights, s, source="paired_share_change")
    n_b, x_b = _slots_by_group(lists_b, weights, s, source="paired_share_change")
    if n_a.shape != n_b.shape:
        raise must_be("paired_share_change", "lists_b.shape[0]", f"{n_a.shape[0]}", n_b.shape)
    keep = (n_a > 0) & (n_b > 0)
    n_a, x_a, n_b, x_b = n_a[keep], x_a[keep], n_b[keep], x_b[keep]
    users = int(keep.sum())
    z = z_two_sided(level)
    out = []
    for g in range(s.shape[1]):
        if users == 0:
            out.append(Interval(np.nan, -np.inf, np.inf, level))
            continue
        r_a = x_a[:, g].sum() / n_a.sum()
        r_b = x_b[:, g].sum() / n_b.sum()
        d = float(r_b - r_a)
        if users < 2:
            out.append(Interval(d, -np.inf, np.inf, level))
            continue
        e = (x_b[:, g] - r_b * n_b) / n_b.mean() - (x_a[:, g] - r_a * n_a) / n_a.mean()
        half = z * float(np.sqrt(e.var(ddof=1) / users))
        out.append(Interval(d, d - half, d + half, level))
    return out
