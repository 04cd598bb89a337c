"""Faults inside the simulation: the lab keeps serving through fallbacks, accounts for every
request, and rolls back within the policy's bound when a guardrail sees the fault.

One reduced scenario (3,000 users, 600 items, 30 minutes, 40 requests/s, a 30 % canary with
no cache in front, analyses every 5 minutes, two failures roll back) runs under each fault,
starting at minute 10 for 15 minutes.  Checks, from the summary: ``arrivals == served +
fallback + dropped``, per-version counts add up to the arrivals and to their own requests,
nothing is dropped (the chain ends in ``popular``), and — where a guardrail sees the fault —
``rollback_at_s <= at + failure_limit x interval + interval``.

Losing a cache node mid-run (``cache_loss``) is checked on its own, with a cache in front.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest

from lab.pipeline import RunResult, run
from lab.scenario import parse_scenario
from reports.summary import build_summary

AT_S, LENGTH_S, INTERVAL_S, FAILURE_LIMIT = 600.0, 900.0, 300.0, 2
BOUND_S = AT_S + FAILURE_LIMIT * INTERVAL_S + INTERVAL_S

BASE: dict[str, Any] = {
    "name": "fault-matrix",
    "seed": 3,
    "traffic": {
        "duration": "30m",
        "users": 3000,
        "items": 600,
        "arrivals": {"kind": "poisson", "rate_per_s": 40},
    },
    "models": {"baseline": {"factors": 16, "iterations": 5}, "candidate": {"parent": "baseline"}},
    "serving": {
        "replicas": 4,
        "concurrency": 2,
        "latency": {"kind": "lognormal", "p50_ms": 40, "p99_ms": 120},
        "timeout_ms": 200,
        "fallback": ["baseline", "popular"],
    },
    "cache": {"enabled": False},
    "rollout": {
        "policy": "canary",
        "weight": 30,
        "analysis": {"interval": "5m", "failure_limit": FAILURE_LIMIT},
        "guardrails": [
            {"metric": "timeout_rate", "max": 0.02},
            {"metric": "error_rate", "max": 0.02},
            {"metric": "latency_ms.p99", "max": 250},
        ],
    },
}
WINDOW = {"version": "candidate", "at": "10m", "length": "15m"}


@dataclass(frozen=True)
class Case:
    faults: list[dict[str, Any]]
    rolls_back: bool  # a guardrail sees the fault
    changes: dict[str, Any] = field(default_factory=dict)


CASES = {
    "no_fault": Case([], rolls_back=False),
    "candidate_crash": Case([{"kind": "replica_crash", "replicas": 4, **WINDOW}], True),
    "replica_loss": Case([{"kind": "replica_crash", "replicas": 3, **WINDOW}], False),
    "capacity_loss": Case([{"kind": "capacity_loss", "fraction": 0.25, **WINDOW}], False),
    "latency_spike": Case([{"kind": "latency_spike", "factor": 10, **WINDOW}], True),
    "error_burst": Case([{"kind": "error_burst", "fraction": 0.5, **WINDOW}], True),
    "baseline_latency_spike": Case(
        [{"kind": "latency_spike", "factor": 10, **{**WINDOW, "version": "baseline"}}], False
    ),
    "small_cache": Case(
        [{"kind": "latency_spike", "factor": 10, **WINDOW}],
        True,
        {"cache": {"enabled": True, "capacity": 50, "ttl": "1m"}},
    ),
}


@dataclass
class Ran:
    result: RunResult
    summary: dict[str, Any]


_RUNS: dict[str, Ran] = {}


def _run(name: str) -> Ran:
    if name not in _RUNS:
        case = CASES[name]
        data = copy.deepcopy(BASE)
        data.update(copy.deepcopy(case.changes))
        data["faults"] = copy.deepcopy(case.faults)
        result = run(parse_scenario(data, source=f"{name}.toml"))
        _RUNS[name] = Ran(result, build_summary(result, scenario_file=f"{name}.toml"))
    return _RUNS[name]


@pytest.mark.parametrize("name", list(CASES))
def test_every_request_is_accounted_for(name: str) -> None:
    ran = _run(name)
    requests = ran.summary["requests"]
    assert requests["arrivals"] == requests["served"] + requests["fallback"] + requests["dropped"]
    assert requests["arrivals"] == ran.result.requests.height > 50_000
    versions = ran.summary["versions"]
    assert sum(v["requests"] for v in versions.values()) == requests["arrivals"]
    for block in versions.values():
        assert block["requests"] == block["served"] + block["fallback"] + block["dropped"]
    assert set(ran.result.requests["result"].unique()) <= {"served", "fallback", "dropped"}
    # The chain ends in the popularity list: nobody is left without an answer.
    assert requests["dropped"] == 0


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.faults])
def test_faults_are_served_through_fallbacks(name: str) -> None:
    frame = _run(name).result.requests
    during = frame.filter((pl.col("t_s") >= AT_S) & (pl.col("t_s") < AT_S + LENGTH_S))
    before = frame.filter(pl.col("t_s") < AT_S)
    share = {
        label: part.filter(pl.col("result") == "fallback").height / max(part.height, 1)
        for label, part in (("during", during), ("before", before))
    }
    if name in ("replica_loss", "capacity_loss"):
        # Enough capacity survives at this load: no more fallbacks than before.
        assert share["during"] < 0.01
    else:
        assert share["during"] > 10 * share["before"] + 0.001


@pytest.mark.parametrize("name", list(CASES))
def test_rollback_within_the_policy_bound(name: str) -> None:
    rollout = _run(name).summary["rollout"]
    if CASES[name].rolls_back:
        assert rollout["outcome"] == "rolled_back"
        assert AT_S < rollout["rollback_at_s"] <= BOUND_S
        assert rollout["first_failure_at_s"] > AT_S
    else:
        assert rollout["outcome"] != "rolled_back"


def test_a_crash_of_every_replica_serves_nothing() -> None:
    frame = _run("candidate_crash").result.requests
    # Requests that arrive once the crash has begun (plus one timeout) cannot be served by
    # the candidate's servers.
    late = frame.filter(
        (pl.col("t_s") >= AT_S + 1.0)
        & (pl.col("t_s") < AT_S + LENGTH_S)
        & (pl.col("version") == "candidate")
    )
    assert late.height > 0
    assert late.filter(pl.col("served_by") == "candidate").height == 0


def test_cache_node_loss() -> None:
    """Half the cache (entries and capacity) is lost for 15 minutes: misses surge, the
    servers absorb them, every request is still answered and accounted for."""
    data = copy.deepcopy(BASE)
    data["cache"] = {"enabled": True, "capacity": 2_000, "ttl": "30m"}
    data["faults"] = [{"kind": "cache_loss", "fraction": 0.5, **WINDOW}]
    result = run(parse_scenario(data, source="cache_loss.toml"))
    summary = build_summary(result, scenario_file="cache_loss.toml")
    requests = summary["requests"]
    assert requests["arrivals"] == requests["served"] + requests["fallback"] + requests["dropped"]
    assert requests["dropped"] == 0
    frame = result.requests
    hit = pl.col("cache") == "hit"

    def hit_rate(lo: float, hi: float) -> float:
        part = frame.filter((pl.col("t_s") >= lo) & (pl.col("t_s") < hi))
        return part.filter(hit).height / max(part.height, 1)

    before, during = hit_rate(AT_S - 300.0, AT_S), hit_rate(AT_S, AT_S + 60.0)
    assert during < before - 0.05, (before, during)
