"""Replicas on nodes of finite memory: placement, OOM kills in a crash loop, freed memory."""

from __future__ import annotations

import copy

import pytest
import simpy

from lab.scenario import parse_scenario
from replay.errors import UserInputError
from sim.memory import MemoryPlan, MemoryTrace, Nodes
from sim.servers import ServerPool
from tests.unit.lab.test_scenario import BASE

GB = 2.0**30


def _nodes(nodes: int, node_gb: float) -> tuple[simpy.Environment, Nodes, list[ServerPool]]:
    env = simpy.Environment()
    pools = [ServerPool(8, lambda _a: None), ServerPool(8, lambda _a: None)]
    plan = MemoryPlan(nodes, node_gb * GB, 30.0, (1.0 * GB, 1.0 * GB))
    nodes_ = Nodes(env, plan, pools, (2, 2), (4, 4), MemoryTrace(), until_s=1000.0)
    return env, nodes_, pools


def test_both_stacks_fit_on_two_nodes() -> None:
    env, nodes, pools = _nodes(2, 2.0)
    env.run(until=100)
    assert nodes.trace.oom_kills == [0, 0]
    assert [p.capacity for p in pools] == [8, 8]
    assert nodes.trace.node_peak_bytes == [2 * GB, 2 * GB]


def test_a_replica_without_room_crash_loops_until_the_old_stack_leaves() -> None:
    # One node of 3.5 GB: the baseline's two replicas (2 GB) and the candidate's first (1 GB)
    # fit; its second is killed at 0 and at every restart (30, 60, 90 s).  The baseline
    # leaves at 100 s; the restart at 120 s fits.
    env, nodes, pools = _nodes(1, 3.5)
    assert pools[1].capacity == 4
    env.run(until=100)
    assert nodes.trace.oom_kills == [0, 4]
    assert nodes.trace.first_kill_s == 0
    nodes.retire(0)
    env.run(until=200)
    assert nodes.trace.oom_kills == [0, 4]
    assert pools[1].capacity == 8
    assert nodes.trace.down_seconds == [0.0, pytest.approx(120.0)]


def test_a_retired_stack_stops_restarting() -> None:
    env, nodes, _ = _nodes(1, 3.5)
    env.run(until=45)
    nodes.retire(1)  # the candidate is rolled back while its replica is down
    env.run(until=200)
    assert nodes.trace.oom_kills == [0, 2]
    assert nodes.trace.down_seconds[1] == pytest.approx(45.0)


def test_a_crash_loop_ends_with_the_run() -> None:
    # Regression: restarts were scheduled for ever, so a run whose stacks never left
    # (a canary still in progress) never ended.
    env, nodes, _ = _nodes(1, 3.5)
    env.run(until=1100.0)
    # Nothing of the nodes' is left scheduled (only the stop event of ``until``): a plain
    # ``env.run()`` would return.
    assert [when for when, *_ in env._queue if when != 1100.0] == []
    assert nodes.trace.oom_kills == [0, 1 + 1000 // 30]


def _error(resources: dict[str, object], memory_mb: float | None = None) -> str:
    data = copy.deepcopy(BASE)
    data["resources"] = resources
    if memory_mb is not None:
        data["models"]["candidate"]["memory_mb"] = memory_mb
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    return str(info.value)


def test_nodes_settings_mistakes_are_one_line() -> None:
    assert _error({"nodes": 2, "node_memory_gb": 1}, memory_mb=4096) == (
        "s.toml: models.candidate.memory_mb must fit on a node (resources.node_memory_gb = 1, "
        "1024 MB), got 4096.0"
    )
    assert _error({"nodes": 2}) == (
        "s.toml: resources.node_memory_gb must be set with nodes and node_memory_gb, got None"
    )


def _refusal(**extra: object) -> str:
    data = copy.deepcopy(BASE)
    data["resources"] = {"nodes": 2, "node_memory_gb": 4}
    data.update(extra)
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    return str(info.value)


def test_nodes_with_stages_or_a_release_train_are_refused_with_the_reason() -> None:
    law = {"kind": "exponential", "mean_ms": 4}
    stages = {
        "stages": [{"name": "retrieval", "latency": law}, {"name": "ranking", "latency": law}]
    }
    assert _refusal(serving=stages) == (
        "s.toml: resources.nodes must be unset with a staged serving path (a footprint is per "
        "replica of a version's one pool; its stages' replicas have no footprint of their "
        "own), got 2"
    )
    train = {"every": "20m", "count": 2, "update": "warm_start"}
    assert _refusal(release_train=train) == (
        "s.toml: resources.nodes must be unset with a release train (nodes place the "
        "baseline's and one candidate's replicas; later releases would need a placement of "
        "their own), got 2"
    )


def test_nodes_take_an_autoscaled_version() -> None:
    data = copy.deepcopy(BASE)
    data["resources"] = {"nodes": 2, "node_memory_gb": 4}
    data["serving"] = {"replicas": 2, "autoscaler": {"max_replicas": 6}}
    scenario = parse_scenario(data, source="s.toml")
    assert scenario.resources is not None and scenario.resources.nodes == 2


def test_an_autoscaler_outgrowing_its_node_is_oom_killed_and_every_request_counted() -> None:
    """The flash-crowd scenario on one 3 GB node: the autoscaler wants up to 8 replicas of
    about 0.5 GB beside the candidate's; those without room are killed as they start, the
    node never holds more than its capacity, and every request is answered or counted."""
    from pathlib import Path

    from lab.pipeline import run
    from lab.scenario import load_scenario
    from reports.summary import build_summary
    from sim.records import PENDING

    root = Path(__file__).resolve().parents[3]
    scenario = load_scenario(
        root / "scenarios" / "autoscaler_flash_crowd.toml",
        [
            "traffic.duration=32m",
            "traffic.users=800",
            "traffic.items=300",
            "resources.nodes=1",
            "resources.node_memory_gb=3",
        ],
    )
    result = run(scenario)
    summary = build_summary(result, reproducible=True)
    resources = summary["resources"]
    assert resources["nodes"]["peak_gb"][0] <= 3.0
    assert resources["versions"]["baseline"]["oom_kills"] > 0
    assert resources["nodes"]["first_oom_kill_s"] >= 20 * 60  # when the crowd came
    ready = [n for _, n in summary["versions"]["baseline"]["autoscaler"]["timeline"]]
    gb = resources["versions"]["baseline"]["footprint_gb"]
    fewest = summary["versions"]["candidate"]["autoscaler"]["min_replicas_seen"]
    # What fits beside the candidate's replicas (at their fewest) on the node.
    assert max(ready) <= (3.0 - fewest * resources["versions"]["candidate"]["footprint_gb"]) // gb
    requests = summary["requests"]
    assert requests["served"] + requests["fallback"] + requests["dropped"] == requests["arrivals"]
    assert not (result.monitor.records.result == PENDING).any()
