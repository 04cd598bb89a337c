"""Exact decision traces: given these analysis results, exactly this sequence of decisions.

Each test scripts the analyses (pass / fail / inconclusive / skipped) and checks every
decision the controller records — time, action, the candidate's weight after it — like
SimPy's own tests check an exact event log.
"""

from __future__ import annotations

from policy_script import ScriptedEvidence, controller, rollout, run_script

from sim.policies import ArmTotals

ANALYSIS = {"interval": "5m", "failure_limit": 2, "inconclusive_limit": 2}
GATE = {"metric": "ctr"}


def test_canary_mirrors_then_promotes_after_two_passes_in_a_row() -> None:
    config = rollout(
        policy="canary",
        weight=10,
        mirror=5,
        analysis={**ANALYSIS, "consecutive_success_limit": 2},
        gate=GATE,
    )
    evidence = ScriptedEvidence(["pass", "inconclusive", "pass", "pass"])
    trace = run_script(controller(config, evidence), until_s=3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "set_weight", 10.0),
        (300.0, "analysis", 10.0),
        (600.0, "analysis", 10.0),
        (900.0, "analysis", 10.0),
        (1200.0, "analysis", 10.0),
        (1200.0, "set_weight", 100.0),
        (1200.0, "promote", 100.0),
    ]


def test_canary_rolls_back_at_the_failure_limit_and_stops_analysing() -> None:
    config = rollout(policy="canary", weight=10, analysis=ANALYSIS, gate=GATE)
    evidence = ScriptedEvidence(["fail", "inconclusive", "fail", "pass"])
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 10.0),
        (300.0, "analysis", 10.0),
        (600.0, "analysis", 10.0),
        (900.0, "analysis", 10.0),
        (900.0, "rollback", 0.0),
    ]
    assert ctl.outcome == "rolled_back"
    assert len(evidence.analysed) == 3


def test_canary_without_a_gate_never_promotes() -> None:
    config = rollout(policy="canary", weight=10, analysis=ANALYSIS)
    trace = run_script(controller(config, ScriptedEvidence(["pass"] * 20)), until_s=1800)
    assert [a for _, a, _ in trace] == ["set_weight"] + ["analysis"] * 6


def test_failures_need_not_be_consecutive_and_on_failure_hold_holds() -> None:
    config = rollout(policy="canary", weight=10, analysis=ANALYSIS, on_failure="hold")
    ctl = controller(config, ScriptedEvidence(["fail", "pass", "fail", "pass", "pass"]))
    trace = run_script(ctl, until_s=1500)
    assert trace == [
        (0.0, "set_weight", 10.0),
        (300.0, "analysis", 10.0),
        (600.0, "analysis", 10.0),
        (900.0, "analysis", 10.0),
        (900.0, "hold", 10.0),
        (1200.0, "analysis", 10.0),
        (1500.0, "analysis", 10.0),
    ]
    assert ctl.outcome == "held"


def test_staged_pauses_on_inconclusive_streak_and_resumes_on_a_pass() -> None:
    config = rollout(
        policy="staged",
        steps=[
            {"set_weight": 5},
            {"pause": "10m"},
            {"set_weight": 50},
            {"pause": "10m"},
            {"set_weight": 100},
        ],
        analysis=ANALYSIS,
        gate=GATE,
    )
    evidence = ScriptedEvidence(["pass", "inconclusive", "inconclusive", "pass"])
    trace = run_script(controller(config, evidence), until_s=3600)
    assert trace == [
        (0.0, "set_weight", 5.0),
        (0.0, "pause", 5.0),
        (300.0, "analysis", 5.0),
        (600.0, "analysis", 5.0),
        (600.0, "set_weight", 50.0),
        (600.0, "pause", 50.0),
        (900.0, "analysis", 50.0),
        (900.0, "hold", 50.0),
        (1200.0, "analysis", 50.0),
        (1200.0, "resume", 50.0),
        (1200.0, "set_weight", 100.0),
        (1200.0, "promote", 100.0),
    ]


def test_staged_skipped_windows_do_not_count() -> None:
    config = rollout(
        policy="staged",
        steps=[{"set_weight": 5}, {"pause": "30m"}, {"set_weight": 100}],
        analysis=ANALYSIS,
    )
    ctl = controller(config, ScriptedEvidence(["skip", "fail", "skip", "skip", "fail"]))
    trace = run_script(ctl, until_s=3600)
    assert trace[-2:] == [(1500.0, "analysis", 5.0), (1500.0, "rollback", 0.0)]
    assert ctl.analyses == 2


def test_big_bang_promotes_at_once_and_post_promotion_analysis_rolls_back() -> None:
    config = rollout(policy="big_bang", analysis=ANALYSIS)
    ctl = controller(config, ScriptedEvidence(["pass", "fail", "fail"]))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 100.0),
        (0.0, "promote", 100.0),
        (300.0, "analysis", 100.0),
        (600.0, "analysis", 100.0),
        (900.0, "analysis", 100.0),
        (900.0, "rollback", 0.0),
    ]
    assert ctl.outcome == "rolled_back"


def test_blue_green_analyses_the_mirror_then_switches() -> None:
    config = rollout(policy="blue_green", shadow_for="10m", analysis=ANALYSIS)
    ctl = controller(config, ScriptedEvidence(["pass", "pass", "pass"]))
    trace = run_script(ctl, until_s=900)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "pause", 0.0),
        (300.0, "analysis", 0.0),
        (600.0, "analysis", 0.0),
        (600.0, "mirror", 0.0),
        (600.0, "set_weight", 100.0),
        (600.0, "promote", 100.0),
        (900.0, "analysis", 100.0),
    ]
    assert ctl.outcome == "promoted"


def test_blue_green_failing_preview_never_switches() -> None:
    config = rollout(policy="blue_green", shadow_for="20m", analysis=ANALYSIS)
    ctl = controller(config, ScriptedEvidence(["fail", "fail"]))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "pause", 0.0),
        (300.0, "analysis", 0.0),
        (600.0, "analysis", 0.0),
        (600.0, "rollback", 0.0),
    ]
    assert ctl.max_weight == 0.0


def test_adaptive_climbs_one_rung_per_pass() -> None:
    config = rollout(policy="adaptive", ramp=[1, 5, 100], analysis=ANALYSIS)
    ctl = controller(config, ScriptedEvidence(["pass", "inconclusive", "pass"]))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 1.0),
        (300.0, "analysis", 1.0),
        (300.0, "set_weight", 5.0),
        (600.0, "analysis", 5.0),
        (900.0, "analysis", 5.0),
        (900.0, "set_weight", 100.0),
        (900.0, "promote", 100.0),
    ]


def test_bandit_moves_the_weight_to_the_posterior_and_caps_it() -> None:
    config = rollout(
        policy="bandit",
        bandit={"min_weight": 1, "max_weight": 50, "promote_at": 0.95},
        analysis=ANALYSIS,
    )
    # Candidate ahead by about 1.3 standard errors: P(better) ≈ 0.9, capped at 50 %.
    totals = {0: ArmTotals(10_000, 500), 1: ArmTotals(10_000, 540)}
    ctl = controller(config, ScriptedEvidence(["pass"], totals))
    trace = run_script(ctl, until_s=300)
    assert trace == [
        (0.0, "set_weight", 1.0),
        (300.0, "analysis", 1.0),
        (300.0, "set_weight", 50.0),
    ]


def test_bandit_promotes_a_clearly_better_candidate() -> None:
    config = rollout(policy="bandit", analysis=ANALYSIS)
    totals = {0: ArmTotals(10_000, 500), 1: ArmTotals(10_000, 800)}
    ctl = controller(config, ScriptedEvidence(["inconclusive"], totals))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 1.0),
        (300.0, "analysis", 1.0),
        (300.0, "set_weight", 100.0),
        (300.0, "promote", 100.0),
    ]


def test_shadow_then_canary_mirrors_first_then_gates_the_canary() -> None:
    config = rollout(
        policy="shadow_then_canary", shadow_for="10m", weight=10, analysis=ANALYSIS, gate=GATE
    )
    ctl = controller(config, ScriptedEvidence(["pass", "pass", "pass"]))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "pause", 0.0),
        (300.0, "analysis", 0.0),
        (600.0, "analysis", 0.0),
        (600.0, "mirror", 0.0),
        (600.0, "set_weight", 10.0),
        (900.0, "analysis", 10.0),
        (900.0, "set_weight", 100.0),
        (900.0, "promote", 100.0),
    ]


def test_kill_switch_rolls_back_whatever_is_exposed() -> None:
    config = rollout(policy="canary", weight=10, analysis=ANALYSIS, kill_switch_at="450s")
    ctl = controller(config, ScriptedEvidence(["pass"] * 5))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 10.0),
        (300.0, "analysis", 10.0),
        (450.0, "rollback", 0.0),
    ]


def test_release_train_supersedes_an_undecided_release_and_starts_over() -> None:
    config = rollout(policy="canary", weight=10, analysis=ANALYSIS, gate=GATE)
    evidence = ScriptedEvidence(["inconclusive", "pass"])
    ctl = controller(config, evidence, releases=[(0.0, 1), (600.0, 2)])
    trace = run_script(ctl, until_s=900)
    assert trace == [
        (0.0, "set_weight", 10.0),
        (300.0, "analysis", 10.0),
        (600.0, "supersede", 0.0),
        (600.0, "set_weight", 10.0),
        (900.0, "analysis", 10.0),
        (900.0, "set_weight", 100.0),
        (900.0, "promote", 100.0),
    ]
    assert [d.release for d in ctl.decisions] == [1, 1, 1, 2, 2, 2, 2]
    assert ctl.routing.candidate == 2
    assert evidence.restarts == 2
