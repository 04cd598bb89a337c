"""The contract every rollout policy keeps, for any sequence of analysis results.

One test class, applied to every registered policy (like implicit's model test mixin):
Hypothesis scripts the analyses (pass / fail / inconclusive / skipped / no traffic) and a
kill switch, and the decision trace must keep the common rules whatever the policy does.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_script import ScriptedEvidence, controller, rollout, run_script

from sim.policies import POLICIES, ArmTotals, PlanStep, policy_for

INTERVAL_S = 300.0


def errors_template(count: int) -> dict[str, Any]:
    """An analysis template measuring the error rate every interval, ``count`` times."""
    metric = {
        "name": "error-rate",
        "measure": {"metric": "error_rate"},
        "interval": "5m",
        "count": count,
        "success_condition": "result < 0.05",
    }
    return {"metrics": [metric]}


ANALYSIS = {"interval": "5m", "failure_limit": 2, "inconclusive_limit": 3}
#: A representative configuration of every policy (gated where the policy can be).
CONFIGS: dict[str, dict[str, Any]] = {
    "canary": {"weight": 10, "mirror": 5, "gate": {"metric": "ctr"}},
    "staged": {
        "steps": [
            {"set_weight": 5},
            {"pause": "10m"},
            {"mirror": 20},
            {"set_weight": 25},
            {"pause": "10m"},
            {"set_weight": 100},
        ],
        "gate": {"metric": "ctr"},
    },
    "big_bang": {},
    "blue_green": {"shadow_for": "10m"},
    "adaptive": {"ramp": [1, 5, 25, 100]},
    "bandit": {"bandit": {"min_weight": 1, "max_weight": 50, "promote_at": 0.95}},
    "shadow_then_canary": {"shadow_for": "10m", "weight": 10, "gate": {"metric": "ctr"}},
    "argo_canary": {
        "steps": [
            {"set_weight": 5},
            {"pause": "10m"},
            {"analysis": {"templates": ["errors"]}},
            {"set_weight": 25},
            {"pause_indefinitely": True},
            {"set_weight": 50},
        ],
        "background_analysis": {"templates": ["errors"], "starting_step": 1},
        "templates": {"errors": errors_template(count=2)},
    },
    "argo_blue_green": {
        "blue_green": {
            "pre_promotion_analysis": {"templates": ["errors"]},
            "post_promotion_analysis": {"templates": ["errors"]},
            "scale_down_delay": "15m",
        },
        "templates": {"errors": errors_template(count=3)},
    },
    "flagger": {
        "flagger": {
            "step_weight": 10,
            "max_weight": 30,
            "checks": [{"name": "error-rate", "measure": {"metric": "error_rate"}, "max": 0.05}],
            "webhooks": [
                {"name": "promotion gate", "type": "confirm-promotion", "opens_at": "20m"}
            ],
        }
    },
}
ITEMS = st.sampled_from(["pass", "fail", "inconclusive", "skip", None])


def test_every_registered_policy_is_under_contract() -> None:
    assert set(CONFIGS) == set(POLICIES)


@pytest.mark.parametrize("name", sorted(CONFIGS))
class TestPolicyContract:
    def config(self, name: str, **extra: Any) -> Any:
        return rollout(policy=name, analysis=ANALYSIS, **CONFIGS[name], **extra)

    def test_plan_is_well_formed(self, name: str) -> None:
        steps = policy_for(self.config(name)).plan()
        assert steps, "a plan must expose something"
        for step in steps:
            assert isinstance(step, PlanStep)
            if step.kind == "pause":
                assert step.value > 0
            else:
                assert 0.0 <= step.value <= 100.0

    @settings(max_examples=60, deadline=None)
    @given(
        script=st.lists(ITEMS, max_size=16),
        kill=st.one_of(st.none(), st.floats(min_value=1.0, max_value=4000.0)),
        lead=st.integers(min_value=0, max_value=200),
    )
    def test_decisions_keep_the_common_rules(
        self, name: str, script: list[str | None], kill: float | None, lead: int
    ) -> None:
        config = self.config(name, kill_switch_at=kill)
        totals = {0: ArmTotals(10_000, 500), 1: ArmTotals(10_000, 500 + lead)}
        evidence = ScriptedEvidence(script, totals)
        ctl = controller(config, evidence)
        steps = policy_for(config).plan()
        trace = run_script(ctl, until_s=16 * INTERVAL_S)
        times = [t for t, _, _ in trace]
        assert times == sorted(times)

        # (e) every decision happens at a step or analysis boundary (or the kill switch).
        pauses = [0.0]
        for step in steps:
            if step.kind == "pause":
                pauses.append(pauses[-1] + step.value)
        for t, action, weight in trace:
            on_interval = math.isclose(t / INTERVAL_S, round(t / INTERVAL_S))
            assert on_interval or t in pauses or t == kill, (t, action)
            assert 0.0 <= weight <= 100.0

        actions = [a for _, a, _ in trace]
        # A rollback ends the release: nothing follows it, and nothing stays exposed.
        if "rollback" in actions:
            assert actions.index("rollback") == len(actions) - 1
            assert trace[-1][2] == 0.0 and ctl.outcome == "rolled_back"
            assert ctl.routing.candidate_threshold == 0 and ctl.routing.mirror_threshold == 0
        # A promotion puts everyone on the candidate.
        for i, (_, action, weight) in enumerate(trace):
            if action == "promote":
                assert weight == 100.0
                assert all(a in ("analysis", "rollback") for a in actions[i + 1 :])
        # failure_limit failed analyses roll back at that analysis, unless decided before.
        verdicts = [*script, *["inconclusive"] * len(evidence.analysed)][: len(evidence.analysed)]
        counted = [v for v in verdicts if v in ("pass", "fail", "inconclusive")]
        assert ctl.analyses == len(counted)
        fails = [i for i, v in enumerate(verdicts) if v == "fail"]
        if len(fails) >= 2 and ctl.outcome != "promoted":
            limit_at = evidence.analysed[fails[1]][0]
            assert ctl.rollback_s is not None and ctl.rollback_s <= limit_at
        # The ramp never shrinks except by a rollback, unless the policy moves it freely.
        if not POLICIES[name].remembers_assignment:
            weights = [w for _, a, w in trace if a == "set_weight"]
            assert weights == sorted(weights)
        # Nothing is analysed after the rollout is decided, unless the policy analyses after
        # promotion; analyses happen only at whole intervals.
        for t, _arms in evidence.analysed:
            assert math.isclose(t / INTERVAL_S, round(t / INTERVAL_S))
            if ctl.rollback_s is not None:
                assert t <= ctl.rollback_s
            if ctl.promote_s is not None and not POLICIES[name].analyses_after_promotion:
                assert t <= ctl.promote_s

    def test_kill_switch_rolls_back_whatever_is_exposed(self, name: str) -> None:
        config = self.config(name, kill_switch_at="450s")
        ctl = controller(config, ScriptedEvidence(["inconclusive"] * 10))
        trace = run_script(ctl, until_s=3600)
        assert trace[-1] == (450.0, "rollback", 0.0)
        assert ctl.outcome == "rolled_back"
