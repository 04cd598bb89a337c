"""Serving topology settings: stages, single flight; each mistake one exact line."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab.scenario import parse_scenario
from replay.errors import UserInputError
from tests.unit.lab.test_scenario import BASE

LAW = {"kind": "exponential", "mean_ms": 5}


def _with_stages(stages: list[dict[str, Any]], *, where: str = "serving") -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    if where == "serving":
        data["serving"] = {"stages": stages}
    else:
        data["models"]["candidate"]["stages"] = stages
    return data


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    text = str(info.value)
    assert "\n" not in text
    return text


def test_stage_after_an_unknown_stage() -> None:
    data = _with_stages(
        [
            {"name": "retrieval", "latency": LAW},
            {"name": "ranking", "after": "retrievl", "latency": LAW},
        ]
    )
    assert _error(data) == (
        "s.toml: serving.stages[1].after must name another stage (retrieval, ranking), "
        "got 'retrievl'"
    )


def test_stages_in_a_cycle() -> None:
    data = _with_stages(
        [
            {"name": "a", "latency": LAW},
            {"name": "b", "after": "c", "latency": LAW},
            {"name": "c", "after": "b", "latency": LAW},
        ],
        where="model",
    )
    assert (
        _error(data)
        == "s.toml: models.candidate.stages[1].after must not form a cycle of stages, got 'c'"
    )


def test_stages_without_a_first_stage() -> None:
    data = _with_stages(
        [{"name": "a", "after": "b", "latency": LAW}, {"name": "b", "after": "a", "latency": LAW}]
    )
    assert _error(data) == (
        "s.toml: serving.stages[0].after must make the stages one chain without a cycle "
        "(exactly one stage without 'after'; found 0), got 'b'"
    )


def test_two_stages_after_one() -> None:
    data = _with_stages(
        [
            {"name": "a", "latency": LAW},
            {"name": "b", "after": "a", "latency": LAW},
            {"name": "c", "after": "a", "latency": LAW},
        ]
    )
    assert _error(data) == (
        "s.toml: serving.stages[2].after must not follow 'a', which 'b' already follows "
        "(the stages form one chain), got 'a'"
    )


def test_duplicate_and_self_referring_stages() -> None:
    dup = _with_stages([{"name": "a", "latency": LAW}, {"name": "a", "latency": LAW}])
    assert _error(dup) == "s.toml: serving.stages[1].name must be unique among the stages, got 'a'"
    itself = _with_stages([{"name": "a", "after": "a", "latency": LAW}])
    assert _error(itself) == "s.toml: serving.stages[0].after must name another stage, got 'a'"


def test_stage_degrade_and_timeout_values() -> None:
    bad = _with_stages([{"name": "a", "latency": LAW, "degrade": "ignore"}])
    assert _error(bad) == (
        "s.toml: serving.stages[0].degrade must be one of 'fail', 'skip' or 'retrieval_order', "
        "got 'ignore'"
    )
    negative = _with_stages([{"name": "a", "latency": LAW, "timeout_ms": -5}])
    assert _error(negative) == "s.toml: serving.stages[0].timeout_ms must be > 0, got -5"


def test_server_faults_on_a_staged_version_are_refused() -> None:
    data = _with_stages([{"name": "a", "latency": LAW}])
    data["faults"] = [
        {"kind": "latency_spike", "version": "candidate", "at": "1m", "length": "1m", "factor": 3}
    ]
    assert _error(data) == (
        "s.toml: faults[0].kind must not act on servers of candidate, whose serving path has "
        "stages (slow a stage down with its own latency instead), got 'latency_spike'"
    )


def test_unused_settings_stay_out_of_the_resolved_scenario() -> None:
    # Summaries of scenarios without stages or single flight stay byte-identical.
    plain = parse_scenario(copy.deepcopy(BASE), source="s.toml").model_dump(mode="json")
    assert "stages" not in plain["serving"]
    assert "coalesce" not in plain["cache"]
    assert all("stages" not in m for m in plain["models"].values())
    data = _with_stages([{"name": "a", "latency": LAW}])
    data["cache"] = {"coalesce": True}
    used = parse_scenario(data, source="s.toml").model_dump(mode="json")
    assert used["serving"]["stages"][0]["name"] == "a"
    assert used["cache"]["coalesce"] is True
