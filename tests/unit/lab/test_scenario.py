"""Scenario loading: every mistake is one line naming file, path, expectation and value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lab.overrides import parse_override
from lab.scenario import load_scenario, parse_scenario
from replay.errors import UserInputError
from sim.durations import parse_duration

BASE: dict[str, Any] = {
    "name": "t",
    "traffic": {"duration": "1h", "arrivals": {"kind": "poisson", "rate_per_s": 10}},
    "models": {"baseline": {}, "candidate": {"parent": "baseline"}},
}

INVALID = [
    ("rollout.weight=150", "s.toml: rollout.weight must be in [0, 100], got 150"),
    ("rollout.weight=-1", "s.toml: rollout.weight must be in [0, 100], got -1"),
    (
        "traffic.userz=5",
        "s.toml: traffic.userz is not a known setting (known: arrivals, duration, fitted, "
        "flash_crowds, history, history_events_per_user, items, latent_factors, log, new_items, "
        "popularity_drift, popularity_skew, ramps, session, source, taste_signal, update_window, "
        "users)",
    ),
    ('traffic.users="many"', "s.toml: traffic.users must be an integer, got 'many'"),
    ("traffic.users=true", "s.toml: traffic.users must be an integer, got True"),
    ("traffic.users=0", "s.toml: traffic.users must be >= 1, got 0"),
    (
        'traffic.arrivals.kind="burst"',
        "s.toml: traffic.arrivals.kind must be one of 'poisson', 'diurnal', got 'burst'",
    ),
    ("traffic.arrivals.rate_per_s=-1", "s.toml: traffic.arrivals.rate_per_s must be > 0, got -1"),
    (
        'traffic.duration="10 parsecs"',
        "s.toml: traffic.duration must be a duration like '90s', '10m' or '2h', got '10 parsecs'",
    ),
    ("traffic.duration=0", "s.toml: traffic.duration must be > 0, got 0"),
    (
        'traffic.update_window="30d"',
        "s.toml: traffic.update_window must be shorter than history (14d), got '30d'",
    ),
    (
        "rollout.policy=staged",
        "s.toml: rollout.steps must be a non-empty list for policy 'staged', got []",
    ),
    (
        "rollout.steps=[{set_weight=5}]",
        "s.toml: rollout.steps must be empty unless policy is 'staged' or 'argo_canary' "
        "(policy is 'canary'), got '[...]'",
    ),
    (
        'rollout.candidate="nope"',
        "s.toml: rollout.candidate must name a model in [models] (baseline, candidate), got 'nope'",
    ),
    (
        'models.candidate.parent="candidate"',
        "s.toml: models.candidate.parent must name another model, got 'candidate'",
    ),
    (
        'serving.latency={kind="lognormal", p50_ms=10, p99_ms=5}',
        "s.toml: serving.latency.p99_ms must be greater than p50_ms (10), got 5.0",
    ),
    (
        "serving.explore_slots=10",
        "s.toml: serving.explore_slots must be smaller than users.list_size (10): the model "
        "keeps at least the first position, got 10",
    ),
    (
        'models.baseline.algorithm="svd"',
        "s.toml: models.baseline.algorithm must be one of 'als', 'bpr', 'lmf', 'popularity' or "
        "'random', got 'svd'",
    ),
    (
        'models.candidate.algorithm="bpr"',
        "s.toml: models.candidate.update must be 'fine_tune' or 'retrain' for a non-ALS model "
        "(warm start needs ALS), got 'warm_start'",
    ),
    (
        'rollout.guardrails=[{metric="ctr"}]',
        "s.toml: rollout.guardrails[0] must set one of min, max, min_relative_to_baseline, "
        "max_relative_to_baseline, got {'metric': 'ctr'}",
    ),
    (
        'rollout.guardrails=[{metric="latency_ms.p99", max=100}]',
        "s.toml: rollout.analysis must be set when a gate or guardrails are given "
        '(e.g. analysis = { interval = "5m" }), got None',
    ),
    ("seed=-1", "s.toml: seed must be >= 0, got -1"),
    (
        "expect={a=[1]}",
        's.toml: expect.a must be a condition such as "< 120" or a value such as '
        '"rolled_back", got [1]',
    ),
    (
        'cache.invalidation="never"',
        "s.toml: cache.invalidation must be one of 'versioned_keys', 'flush_on_change' or "
        "'ttl_only', got 'never'",
    ),
    (
        "users.list_size=5000",
        "s.toml: users.list_size must be at most traffic.items (2000), got 5000",
    ),
    (
        'serving.fallback=["baseline", "pray"]',
        "s.toml: serving.fallback[1] must be one of 'baseline', 'stale_cache' or 'popular', "
        "got 'pray'",
    ),
    ("rollout.steps[0].pause=5", "s.toml: --set rollout.steps[0] names item 0 of a list of 0"),
    ("nonsense", "--set expects dotted.path=value, got 'nonsense'"),
    ("a..b=1", "--set path must look like section.key or list[0].key, got 'a..b'"),
    (
        'rollout.target={ country = ["DE"] }',
        "s.toml: rollout.target needs a user attribute table ([attributes.users] with a path), "
        "got {'country': ['DE']}",
    ),
    (
        "rollout.target={ country = [] }",
        "s.toml: rollout.target.country list should have at least 1 item after validation, "
        "not 0, got []",
    ),
    (
        'attributes.items={ path = "i.csv", categorical = ["genre"], provider = "studio" }',
        "s.toml: attributes.items.provider must be one of attributes.items.categorical (genre), "
        "got 'studio'",
    ),
    (
        'attributes.users={ path = "" }',
        "s.toml: attributes.users.path string should have at least 1 character, got ''",
    ),
]


@pytest.mark.parametrize(("override", "message"), INVALID, ids=[o for o, _ in INVALID])
def test_invalid_inputs_give_one_exact_line(override: str, message: str) -> None:
    with pytest.raises(UserInputError) as info:
        parse_scenario(copy.deepcopy(BASE), source="s.toml", overrides=[override])
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_cycle_of_parents_is_rejected() -> None:
    data = copy.deepcopy(BASE)
    data["models"]["x"] = {"parent": "y"}
    data["models"]["y"] = {"parent": "x"}
    with pytest.raises(UserInputError, match="must not form a cycle of parents"):
        parse_scenario(data, source="s.toml")


def test_missing_required_field() -> None:
    data = copy.deepcopy(BASE)
    del data["traffic"]["duration"]
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    assert str(info.value) == "s.toml: traffic.duration must be set for synthetic traffic, got None"


def test_fault_on_unknown_version() -> None:
    data = copy.deepcopy(BASE)
    data["faults"] = [{"kind": "error_burst", "version": "nope", "at": "1m", "length": "1m"}]
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    assert str(info.value) == (
        "s.toml: faults[0].version must name a model in [models] or a release "
        "(baseline, candidate), got 'nope'"
    )


def test_release_train_must_fit_in_the_run() -> None:
    data = copy.deepcopy(BASE)
    data["release_train"] = {"every": "40m", "count": 3}
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    assert str(info.value) == (
        "s.toml: release_train.every must leave every release inside the run: "
        "every x (count - 1) < traffic.duration (1h), got '40m'"
    )


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"^bad.toml: not valid TOML"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        (45, 45.0),
        (1.5, 1.5),
        ("12", 12.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_override_values_are_toml_typed() -> None:
    assert parse_override("rollout.weight=5") == (["rollout", "weight"], 5)
    assert parse_override("rollout.policy=staged") == (["rollout", "policy"], "staged")
    assert parse_override('a.b[2].c="x y"') == (["a", "b", 2, "c"], "x y")
    assert parse_override("cache.enabled=false") == (["cache", "enabled"], False)


def test_override_reaches_nested_list_items() -> None:
    data = copy.deepcopy(BASE)
    data["rollout"] = {"policy": "staged", "steps": [{"set_weight": 5}, {"pause": "1m"}]}
    scenario = parse_scenario(data, source="s.toml", overrides=["rollout.steps[0].set_weight=20"])
    assert scenario.rollout.steps[0].set_weight == 20


def test_every_shipped_scenario_validates() -> None:
    for path in sorted(Path(__file__).resolve().parents[3].joinpath("scenarios").glob("*.toml")):
        assert load_scenario(path).name
