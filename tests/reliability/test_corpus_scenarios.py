"""Invalid scenario files through the real CLI: exit 2, one line on stderr, nothing written.

Every file in ``corpus/scenarios`` holds one mistake (its first line says which).  The
table gives the message ``rollout-lab run FILE`` must print: the whole line where it is
stable, or precise fragments (file and field first, then the value and the fix) where the
line lists choices that grow as the lab grows (kinds, policies, known settings).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import CORPUS, Outcome

FILES = CORPUS / "scenarios"
PREFIX = "rollout-lab: error: "

# file stem -> the exact message, or a tuple of fragments that must all appear in order
EXPECTED: dict[str, str | tuple[str, ...]] = {
    "arrivals_unknown_kind": (
        "arrivals_unknown_kind.toml: traffic.arrivals.kind must be one of 'poisson', 'diurnal'",
        "got 'burst'",
    ),
    "arrivals_without_kind": (
        "arrivals_without_kind.toml: traffic.arrivals.kind is required (one of the kinds "
        "documented in README)"
    ),
    "baseline_with_parent": (
        "baseline_with_parent.toml: models.baseline.parent must be unset for the baseline "
        "(it is trained from scratch), got 'old'"
    ),
    "cache_capacity_negative": "cache_capacity_negative.toml: cache.capacity must be >= 0, got -1",
    "propensity_without_reward": (
        "propensity_without_reward.toml: traffic.log.columns.reward must be set when "
        "propensity is (off-policy estimates need both; map the log's reward column or remove "
        "propensity), got None"
    ),
    "position_without_reward": (
        "position_without_reward.toml: traffic.log.columns.reward must be set when position "
        "is (an impression log needs the column saying whether each shown item was clicked; "
        "map it or remove position), got None"
    ),
    "cache_invalidation_unknown": (
        "cache_invalidation_unknown.toml: cache.invalidation must be one of 'versioned_keys'",
        "got 'never'",
    ),
    "candidate_is_baseline": (
        "candidate_is_baseline.toml: rollout.candidate must differ from rollout.baseline, "
        "got 'baseline'"
    ),
    "candidate_not_a_model": (
        "candidate_not_a_model.toml: rollout.candidate must name a model in [models] "
        "(baseline, candidate), got 'challenger'"
    ),
    "diurnal_amplitude_one": (
        "diurnal_amplitude_one.toml: traffic.arrivals.amplitude must be in [0, 1), got 1.0"
    ),
    "duration_bad_unit": (
        "duration_bad_unit.toml: traffic.duration must be a duration like '90s', '10m' or '2h', "
        "got '10 parsecs'"
    ),
    "duration_bool": (
        "duration_bool.toml: traffic.duration must be a duration like '90s', '10m' or '2h', "
        "got True"
    ),
    "duration_negative": (
        "duration_negative.toml: traffic.duration must be a finite duration >= 0, got -5"
    ),
    "duration_zero": "duration_zero.toml: traffic.duration must be > 0, got '0s'",
    "empirical_latency_empty": (
        "empirical_latency_empty.toml: serving.latency.samples_ms",
        "at least 1 item",
        "got []",
    ),
    "empty_file": "empty_file.toml: name is required",
    "empty_name": ("empty_name.toml: name", "at least 1 character", "got ''"),
    "expect_table": (
        'expect_table.toml: expect.outcome must be a condition such as "< 120" or a value such '
        "as \"rolled_back\", got {'not': 'rolled_back'}"
    ),
    "factors_zero": "factors_zero.toml: models.baseline.factors must be >= 1, got 0",
    "failure_limit_zero": (
        "failure_limit_zero.toml: rollout.analysis.failure_limit must be >= 1, got 0"
    ),
    "fallback_unknown": (
        "fallback_unknown.toml: serving.fallback[1] must be one of 'baseline', 'stale_cache'",
        "got 'retry'",
    ),
    "fault_fraction_above_one": (
        "fault_fraction_above_one.toml: faults[0].fraction must be in [0, 1], got 2"
    ),
    "fault_unknown_kind": (
        "fault_unknown_kind.toml: faults[0].kind must be one of 'latency_spike', 'error_burst'",
        "got 'meteor_strike'",
    ),
    "fault_unknown_version": (
        "fault_unknown_version.toml: faults[0].version must name a model in [models]",
        "(baseline, candidate), got 'canary'",
    ),
    "guardrail_unknown_metric": (
        "guardrail_unknown_metric.toml: rollout.guardrails[0].metric must be one of "
        "'latency_ms.p50'",
        "got 'latency_ms.p42'",
    ),
    "guardrail_without_bound": (
        "guardrail_without_bound.toml: rollout.guardrails[0] must set one of min, max, "
        "min_relative_to_baseline, max_relative_to_baseline, got {'metric': 'timeout_rate'}"
    ),
    "guardrails_without_analysis": (
        "guardrails_without_analysis.toml: rollout.analysis must be set when a gate or "
        'guardrails are given (e.g. analysis = { interval = "5m" }), got None'
    ),
    "huge_world": (
        "huge_world.toml: the run needs about 3.47 TB but the limit is 8 GB (--max-memory); "
        "most of it is history events, about 1.92 TB (about 40,000,000,000: traffic.users x "
        "traffic.history_events_per_user); lower traffic.users or "
        "traffic.history_events_per_user, or pass --max-memory or set ROLLOUT_LAB_MAX_MEMORY"
    ),
    "items_one": "items_one.toml: traffic.items must be >= 2, got 1",
    "latency_p99_below_p50": (
        "latency_p99_below_p50.toml: serving.latency.p99_ms must be greater than p50_ms (50), "
        "got 20.0"
    ),
    "latin1": "latin1.toml: cannot read scenario file (UnicodeDecodeError)",
    "list_size_above_items": (
        "list_size_above_items.toml: users.list_size must be at most traffic.items (100), got 500"
    ),
    "log_format_unknown": (
        "log_format_unknown.toml: traffic.log.format must be one of 'auto', 'movielens_csv'",
        "got 'xlsx'",
    ),
    "log_source_without_log": (
        'log_source_without_log.toml: traffic.log must be set when source = "log" '
        '(e.g. log = { path = "ratings.csv" }), got None'
    ),
    "missing_arrivals": (
        "missing_arrivals.toml: traffic.arrivals must be set for synthetic traffic, got None"
    ),
    "missing_duration": (
        "missing_duration.toml: traffic.duration must be set for synthetic traffic, got None"
    ),
    "missing_name": "missing_name.toml: name is required",
    "misspelled_top_key": (
        "misspelled_top_key.toml: descriptoin is not a known setting (known: ",
        "description",
    ),
    "misspelled_traffic_key": (
        "misspelled_traffic_key.toml: traffic.userz is not a known setting (known: ",
        "users",
    ),
    "name_not_text": "name_not_text.toml: name must be a string, got 42",
    "name_too_long": ("name_too_long.toml: name", "at most 200 characters", "got 'nnnn"),
    "no_models": (
        "no_models.toml: rollout.baseline must name a model in [models] (none), got 'baseline'"
    ),
    "not_toml": (
        "not_toml.toml: not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 5, column 9)"
    ),
    "parent_cycle": "parent_cycle.toml: models.a.parent must not form a cycle of parents, got 'b'",
    "rate_infinite": (
        "rate_infinite.toml: traffic.arrivals.rate_per_s must be > 0 and finite, got inf"
    ),
    "rate_nan": "rate_nan.toml: traffic.arrivals.rate_per_s must be > 0, got nan",
    "rate_negative": "rate_negative.toml: traffic.arrivals.rate_per_s must be > 0, got -5",
    "rate_text": "rate_text.toml: traffic.arrivals.rate_per_s must be a number, got 'fast'",
    "seed_negative": "seed_negative.toml: seed must be >= 0, got -1",
    "staged_without_steps": (
        "staged_without_steps.toml: rollout.steps must be a non-empty list for policy 'staged', "
        "got []"
    ),
    "step_with_two_actions": (
        "step_with_two_actions.toml: rollout.steps[0] must set exactly one of set_weight, pause, "
        "mirror, analysis, pause_indefinitely, got {'set_weight': 5, 'pause': '5m'}"
    ),
    "steps_on_canary": (
        "steps_on_canary.toml: rollout.steps must be empty unless policy is 'staged' or "
        "'argo_canary' (policy is 'canary'), got '[...]'"
    ),
    "sticky_by_device": (
        "sticky_by_device.toml: rollout.sticky_by must be one of 'user' or 'session', got 'device'"
    ),
    "timeout_zero": "timeout_zero.toml: serving.timeout_ms must be > 0, got 0",
    "traffic_not_a_table": "traffic_not_a_table.toml: traffic must be a table, got 5",
    "unknown_algorithm": (
        "unknown_algorithm.toml: models.baseline.algorithm must be one of 'als', 'bpr'",
        "got 'xgboost'",
    ),
    "unknown_parent": (
        "unknown_parent.toml: models.candidate.parent must name another model (baseline), "
        "got 'basline'"
    ),
    "unknown_policy": (
        "unknown_policy.toml: rollout.policy must be one of 'canary', 'staged'",
        "got 'yolo'",
    ),
    "update_window_too_long": (
        "update_window_too_long.toml: traffic.update_window must be shorter than history (2d), "
        "got '3d'"
    ),
    "users_bool": "users_bool.toml: traffic.users must be an integer, got True",
    "users_fraction": "users_fraction.toml: traffic.users must be an integer, got 500.5",
    "users_zero": "users_zero.toml: traffic.users must be >= 1, got 0",
    "warm_start_bpr": (
        "warm_start_bpr.toml: models.candidate.update must be 'fine_tune' or 'retrain' for a "
        "non-ALS model (warm start needs ALS), got 'warm_start'"
    ),
    "weight_150": "weight_150.toml: rollout.weight must be in [0, 100], got 150",
    "weight_negative": "weight_negative.toml: rollout.weight must be in [0, 100], got -1",
}


def test_every_corpus_file_has_an_expected_message() -> None:
    on_disk = {path.stem for path in FILES.glob("*.toml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 40


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_invalid_scenario_exits_2_with_its_one_line(
    stem: str, tmp_path: Path, cli: Callable[..., Outcome]
) -> None:
    out = tmp_path / "out"
    result = cli("run", str(FILES / f"{stem}.toml"), "--out", str(out), "--max-memory", "8GB")
    assert result.code == 2
    assert len(result.err) == 1, result.err
    # Read errors name the path as given, validation errors the file name.
    line = result.err[0].replace(f"{FILES}{os.sep}", "")
    assert line.startswith(PREFIX + f"{stem}.toml: "), line
    message = line.removeprefix(PREFIX)
    expected = EXPECTED[stem]
    if isinstance(expected, str):
        assert message == expected
    else:
        at = 0
        for fragment in expected:
            found = message.find(fragment, at)
            assert found >= 0, f"{fragment!r} missing (in order) from {message!r}"
            at = found + len(fragment)
    assert not out.exists(), "a refused run must not create its output folder"
    assert result.out == ""
