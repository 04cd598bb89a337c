"""Autoscaled versions on nodes of finite memory (Hypothesis).

Over random nodes, footprints, starting replicas, autoscaler settings and bursty arrivals
(both versions serving, one or both autoscaled, one fixed pool crash-looping beside them):

- a node's memory never exceeds its capacity: every replica that would not fit is killed out
  of memory before it holds any, so the peak the nodes record (the largest memory any node
  ever held) is within capacity;
- every request is answered or counted (served, fallback or dropped; nothing pending);
- the autoscaler never has more ready replicas than its maximum, and its ready replicas hold
  their memory on the nodes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.autoscaler import AutoscalerPlan
from sim.engine import VersionPlan
from sim.memory import MemoryPlan, Nodes
from sim.records import DROPPED, FALLBACK, PENDING, SERVED
from sim.router import Routing
from sim.servers import ServiceTime
from tests.helpers_engine import FixedController, make_plan, run_plan

GB = 2.0**30
FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    nodes = draw(st.integers(1, 3))
    footprints = (draw(st.sampled_from([0.5, 1.0, 1.5])), draw(st.sampled_from([0.5, 1.0, 2.0])))
    node_gb = draw(st.sampled_from([2.0, 2.5, 3.0, 4.0]))
    scaled = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    replicas = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    plans = []
    for v in (0, 1):
        low = draw(st.integers(1, replicas[v]))
        high = draw(st.integers(replicas[v], 6))
        plans.append(
            AutoscalerPlan(
                target_utilisation=draw(st.sampled_from([0.5, 0.7, 0.9])),
                min_replicas=low,
                max_replicas=high,
                stabilisation_s=draw(st.sampled_from([5.0, 20.0])),
                scale_up_delay_s=draw(st.sampled_from([0.5, 3.0])),
                sync_s=draw(st.sampled_from([1.0, 2.0])),
            )
            if scaled[v]
            else None
        )
    # Bursts of arrivals: (length s, rate per s) pieces.
    pieces = draw(
        st.lists(st.tuples(st.integers(2, 10), st.integers(1, 60)), min_size=2, max_size=5)
    )
    return {
        "nodes": nodes,
        "node_gb": node_gb,
        "footprints": footprints,
        "replicas": replicas,
        "plans": plans,
        "pieces": pieces,
        "share": draw(st.sampled_from([2_000, 5_000])),
        "seed": draw(st.integers(0, 2**16)),
    }


@FAST
@given(scenarios())
def test_memory_stays_within_capacity_and_every_request_is_counted(case: dict[str, object]) -> None:
    rng = np.random.default_rng(case["seed"])  # type: ignore[arg-type]
    t, times = 0.0, []
    for length, rate in case["pieces"]:  # type: ignore[attr-defined]
        n = rng.poisson(length * rate)
        times.append(np.sort(rng.uniform(t, t + length, n)))
        t += length
    t_s = np.concatenate(times)
    law = ServiceTime("exponential", mean_ms=120.0)
    versions = [
        VersionPlan(
            name,
            law,
            replicas=case["replicas"][v],  # type: ignore[index]
            concurrency=2,
            autoscaler=case["plans"][v],  # type: ignore[index]
        )
        for v, name in enumerate(("baseline", "candidate"))
    ]
    node_bytes = float(case["node_gb"]) * GB  # type: ignore[arg-type]
    footprints = tuple(f * GB for f in case["footprints"])  # type: ignore[attr-defined]
    plan = dataclasses.replace(
        make_plan(t_s, versions=versions, timeout_s=1.0, fallback=("baseline",)),
        memory=MemoryPlan(case["nodes"], node_bytes, 2.0, footprints),  # type: ignore[arg-type]
    )
    controller = FixedController(Routing(candidate_threshold=case["share"]))  # type: ignore[arg-type]
    outcome = run_plan(plan, controller, seed=int(case["seed"]))  # type: ignore[call-overload]
    memory = outcome.memory
    assert memory is not None
    assert max(memory.node_peak_bytes) <= node_bytes
    result = outcome.records.result
    assert not (result == PENDING).any()
    counted = (result == SERVED) | (result == FALLBACK) | (result == DROPPED)
    assert counted.all()
    for v, autoscaler in enumerate(case["plans"]):  # type: ignore[attr-defined]
        if autoscaler is None:
            continue
        ready = [n for _, n in outcome.autoscalers[v].timeline]
        assert max(ready) <= autoscaler.max_replicas
        # Ready replicas hold their memory: at its most, this version alone held that much
        # (a replica started without asking the nodes would not show here).
        assert max(ready) * footprints[v] <= sum(memory.node_peak_bytes) + 1.0


def test_nodes_ledger_for_an_autoscaled_version_by_hand() -> None:
    """One 3.5 GB node: the baseline's two fixed replicas (2 GB) and the candidate's one
    scaled replica (1 GB) fit; a second scaled replica is killed as it starts; once the
    first gives its memory back, the next start fits."""
    import simpy

    from sim.memory import MemoryTrace
    from sim.servers import ServerPool

    env = simpy.Environment()
    pools = [ServerPool(8, lambda _a: None), ServerPool(4, lambda _a: None)]
    plan = MemoryPlan(1, 3.5 * GB, 30.0, (1.0 * GB, 1.0 * GB))
    trace = MemoryTrace()
    nodes = Nodes(env, plan, pools, (2, 1), (4, 4), trace, until_s=100.0, scaled=(False, True))
    assert nodes.started(1) == 1 and pools[1].capacity == 4  # the autoscaler owns it
    assert nodes.allocate(1) is False
    assert trace.oom_kills == [0, 1]
    nodes.release(1)
    assert nodes.started(1) == 0
    assert nodes.allocate(1) is True
    assert trace.node_peak_bytes == [3.0 * GB]
    nodes.retire(1)
    assert nodes.allocate(1) is False and trace.oom_kills == [0, 1]  # gone: no kill
