"""Invariants of remembering users driven through the real engine and monitor (Hypothesis).

Each example: a few users with several sessions of several requests, two versions (the
candidate on a share of the buckets, sometimes slow, sometimes timing out into the fallback
chain), a controller that settles a window every few seconds, and remembering users whose
return decisions are taken at session starts.  The properties:

- every request is answered or counted: served, fallback, dropped or not sent, none pending;
- satisfaction stays in [0, 1] after every request, and so does every user's final one;
- a user who left sends no more requests: no request of theirs after the decision is sent,
  and every request not sent belongs to a user who left at or before it;
- taste never grows beyond its strength;
- retention and return rates are in [0, 1] with their intervals inside [0, 1];
- the engine with users who never leave records exactly what it records without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine import EnginePlan
from sim.engine import simulate as engine_simulate
from sim.metrics.retention import remembering_outcomes
from sim.monitor import Monitor, Retrieval
from sim.records import ABSENT, DROPPED, FALLBACK, POPULAR, SERVED, Records
from sim.remembering import MemoryParams, RememberingUsers
from sim.router import Routing
from sim.users import CascadeUsers
from tests.helpers_engine import USER_COLUMNS, columns, make_plan, version

K = 4
N_ITEMS = 12


@dataclass
class SettlingController:
    """Settles the monitor's windows every ``every_s`` (as the rollout controller does)."""

    monitor: Monitor
    every_s: float
    end_s: float
    routing: Routing = field(default_factory=Routing)

    def next_wakeup_s(self, now_s: float) -> float | None:
        wake = (np.floor(now_s / self.every_s) + 1) * self.every_s
        return None if wake > self.end_s else float(wake)

    def tick(self, now_s: float, settled_until_s: float) -> None:
        self.monitor.settle(max(settled_until_s, 0.0))


@st.composite
def runs(draw: st.DrawFn) -> dict[str, object]:
    n_users = draw(st.integers(1, 5))
    sessions = []
    for u in range(n_users):
        start = 0.0
        for _ in range(draw(st.integers(1, 5))):
            start += draw(st.floats(0.0, 60.0))
            times = start + np.cumsum(
                [draw(st.floats(0.1, 10.0)) for _ in range(draw(st.integers(1, 5)))]
            )
            sessions.append((u, times))
    user = np.concatenate([np.full(t.size, u, np.int32) for u, t in sessions])
    session = np.concatenate([np.full(t.size, s, np.int32) for s, (_, t) in enumerate(sessions)])
    t_s = np.concatenate([t for _, t in sessions])
    order = np.argsort(t_s, kind="stable")
    return {
        "t_s": t_s[order],
        "user": user[order],
        "session": session[order],
        "n_users": n_users,
        "candidate_share": draw(st.sampled_from([0, 5_000, 10_000])),
        "slow_ms": draw(st.sampled_from([5.0, 300.0])),
        "timeout_s": draw(st.sampled_from([0.1, 10.0])),
        "return_at_zero": draw(st.floats(0.0, 1.0)),
        "drift_rate": draw(st.sampled_from([0.0, 0.3])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _simulate(spec: dict[str, object], *, remembering: bool, leave: bool = True):
    t_s, user, session = spec["t_s"], spec["user"], spec["session"]
    assert isinstance(t_s, np.ndarray) and isinstance(user, np.ndarray)
    assert isinstance(session, np.ndarray)
    n_users = int(spec["n_users"])  # type: ignore[call-overload]
    plan: EnginePlan = make_plan(
        t_s,
        versions=[
            version("baseline", mean_ms=5.0),
            version("candidate", mean_ms=float(spec["slow_ms"])),
        ],  # type: ignore[arg-type]
        users=user,
        n_users=n_users,
        timeout_s=float(spec["timeout_s"]),  # type: ignore[arg-type]
        fallback=("baseline", "popular"),
    )
    plan = EnginePlan(
        **{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "session": session}
    )
    rng = np.random.default_rng(int(spec["seed"]))  # type: ignore[call-overload]
    items = {v: rng.integers(0, N_ITEMS, (n_users, K)) for v in (0, 1)}
    relevance = {code: rng.random((n_users, K)).astype(np.float32) for code in (0, 1, POPULAR)}
    predicted = {code: np.full(n_users, 0.2, np.float32) for code in (0, 1, POPULAR)}
    cascade = CascadeUsers(0.8, 400.0, 0.1)
    params = MemoryParams(
        return_at_zero=float(spec["return_at_zero"]) if leave else 1.0,  # type: ignore[arg-type]
        return_at_one=1.0,
        drift_rate=float(spec["drift_rate"]),  # type: ignore[arg-type]
        drift_strength=1.5,
    )
    factors = rng.normal(size=(N_ITEMS, 3))
    factors /= np.linalg.norm(factors, axis=1, keepdims=True)
    memory = (
        RememberingUsers(params, cascade, user=user, session=session, n_users=n_users,
                         item_unit_factors=factors, rng=np.random.default_rng(1))
        if remembering
        else None
    )  # fmt: skip
    records = Records(t_s.size)
    monitor = Monitor(
        records, t_s, user, relevance, predicted, ["baseline", "candidate"], cascade,
        rng=np.random.default_rng(2), session=session,
        retrieval=Retrieval(items, np.ones(N_ITEMS, np.int64)), memory=memory,
        popular_items=np.arange(K),
    )  # fmt: skip
    controller = SettlingController(monitor, every_s=7.0, end_s=float(t_s[-1]))
    controller.routing.candidate_threshold = int(spec["candidate_share"])  # type: ignore[call-overload]
    engine_simulate(
        plan, controller, records,  # type: ignore[arg-type]
        rng_service=np.random.default_rng(3), rng_faults=np.random.default_rng(4),
        presence=monitor if remembering else None,
    )  # fmt: skip
    monitor.settle(float(t_s[-1]) + 1e9, upto=t_s.size)
    return records, monitor, memory


@given(runs())
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
def test_remembering_users_invariants(spec: dict[str, object]) -> None:
    records, monitor, memory = _simulate(spec, remembering=True)
    assert memory is not None
    result = records.result
    assert np.isin(result, (SERVED, FALLBACK, DROPPED, ABSENT)).all()
    assert monitor.responded == records.n
    sent = result != ABSENT
    after = memory.satisfaction_after[sent]
    assert np.isfinite(after).all() and (after >= 0).all() and (after <= 1).all()
    assert ((memory.satisfaction >= 0) & (memory.satisfaction <= 1)).all()
    assert (np.linalg.norm(memory.taste, axis=1) <= 1.5 + 1e-9).all()
    user, t_s = memory.user, monitor.t_s
    for u in np.unique(user):
        rows = np.flatnonzero(user == u)
        left = rows[memory.decision[rows] == 0]
        assert left.size <= 1
        if left.size:
            assert memory.gone[u]
            assert not sent[rows[rows >= left[0]]].any()  # nothing sent from the decision on
            assert sent[rows[rows < left[0]]].all()
        else:
            assert not memory.gone[u] and sent[rows].all()
    # Dropped or abandoned lists are never clicked; not-sent requests have no version.
    assert not records.clicks[~sent].any() and (records.version[~sent] == -2).all()
    assert t_s.size == records.n
    block = remembering_outcomes(memory, records, ["baseline", "candidate"])
    assert block["requests_not_sent"] == int((~sent).sum())
    for v in block["versions"].values():
        for key in ("retained", "return_rate"):
            if v[key] is not None:
                assert 0.0 <= v[key] <= 1.0
                low, high = v[key + "_ci95"]
                assert 0.0 <= low <= v[key] <= high <= 1.0


@given(runs())
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
def test_users_who_never_leave_change_nothing_in_the_engine(spec: dict[str, object]) -> None:
    """The engine with a presence that always answers yes records what it records without."""
    with_memory, _, memory = _simulate(spec, remembering=True, leave=False)
    without, _, _ = _simulate(spec, remembering=False)
    assert memory is not None and not memory.gone.any()
    for name, values in columns(without, USER_COLUMNS).items():
        np.testing.assert_array_equal(getattr(with_memory, name), values, err_msg=name)
