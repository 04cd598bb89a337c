"""Scenario settings of versions from outside the run: one source each, sound fallbacks."""

from __future__ import annotations

from typing import Any

import pytest

from lab.scenario import parse_scenario
from replay.errors import UserInputError


def _data(**models: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "byo",
        "traffic": {"duration": "10m", "arrivals": {"kind": "poisson", "rate_per_s": 1}},
        "models": {"baseline": {}, "candidate": {}, **models},
    }


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as error:
        parse_scenario(data, source="s.toml")
    text = str(error.value)
    assert "\n" not in text and text.startswith("s.toml: ")
    return text


def test_sources_and_defaults() -> None:
    data = _data(candidate={"topk": {"path": "lists.parquet"}})
    data["models"]["other"] = {"embeddings": {"path": "e.npz", "fallback": "candidate"}}
    data["models"]["third"] = {"plugin": "pkg.mod:make", "options": {"n": 3}}
    data["models"]["fourth"] = {"registry": "baseline"}
    data["registry"] = "registry"
    scenario = parse_scenario(data, source="s.toml")
    models = scenario.models
    assert [models[n].source for n in ("baseline", "candidate", "other", "third", "fourth")] == [
        "lab",
        "topk",
        "embeddings",
        "plugin",
        "registry",
    ]
    assert models["candidate"].fallback == "popular" and models["other"].fallback == "candidate"
    assert models["third"].fallback is None and models["third"].options == {"n": 3}


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        ({"topk": {"path": "a"}, "plugin": "p.m:f"}, "models.candidate.plugin must not be set"),
        ({"options": {"n": 1}}, "models.candidate.options must only be set with plugin"),
        ({"registry": "x"}, "registry must name the registry folder"),
        ({"topk": {"path": "a"}, "fault": "stale"}, "models.candidate.fault must be unset"),
        (
            {"topk": {"path": "a"}, "parent": "baseline"},
            "models.candidate.parent must be unset for a version from topk",
        ),
        (
            {"topk": {"path": "a", "fallback": "nobody"}},
            "models.candidate.topk.fallback must be 'popular', 'baseline' or another model",
        ),
        (
            {"embeddings": {"path": "a", "fallback": "candidate"}},
            "models.candidate.embeddings.fallback must be 'popular'",
        ),
        ({"topk": {"path": "a", "require_coverage": 1.5}}, "require_coverage"),
        ({"topk": {"path": "a", "colour": "red"}}, "colour"),
    ],
)
def test_contradictions_are_one_line(candidate: dict[str, Any], words: str) -> None:
    assert words in _error(_data(candidate=candidate))


def test_fallbacks_must_not_go_round_in_a_circle() -> None:
    data = _data(
        baseline={"topk": {"path": "a", "fallback": "candidate"}},
        candidate={"topk": {"path": "b", "fallback": "baseline"}},
    )
    assert "must not lead back to this model" in _error(data)


def test_lists_from_outside_cannot_be_updated() -> None:
    data = _data(candidate={"parent": "other", "update": "fine_tune"})
    data["models"]["other"] = {"plugin": "p.m:f"}
    assert "models.candidate.parent must name a version the lab can update" in _error(data)
    data = _data(candidate={"embeddings": {"path": "e.npz"}})
    data["release_train"] = {"every": "2m", "count": 2, "update": "retrain"}
    assert "release_train needs a candidate that can be updated" in _error(data)


def test_a_rollback_target_must_be_a_version_loaded_from_the_registry() -> None:
    data = _data()
    data["release_train"] = {"every": "2m", "count": 2, "rollback_to": "candidate@2026"}
    assert "release_train.rollback_to must name a version this run loads" in _error(data)
    data["models"]["stable"] = {"registry": "candidate@2026"}
    data["registry"] = "registry"
    train = parse_scenario(data, source="s.toml").release_train
    assert train is not None and train.rollback_to == "candidate@2026"
