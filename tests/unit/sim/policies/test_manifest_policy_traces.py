"""Exact decision traces of the policies that speak Argo Rollouts and Flagger.

Each test scripts the measurements (Successful, Failed, Inconclusive, Error per metric) and
checks every decision: time, action, the candidate's weight after it.  Each docstring says,
in our words, the documented behaviour it holds the policy to (Argo Rollouts: docs/features/
analysis.md, canary/index.md, bluegreen.md; Flagger: docs/gitbook/usage/deployment-strategies.md,
how-it-works.md, webhooks.md).
"""

from __future__ import annotations

from typing import Any

from measured_script import MeasuredScript
from policy_script import controller, rollout, run_script

from sim.policies.argo_blue_green import WAIT_FOR_PROMOTION
from sim.policies.argo_canary import MANUAL_PROMOTION
from sim.policies.staged import WAITS_FOR_A_PERSON

ARGO_ANALYSIS = {"interval": "1m", "failure_limit": 1, "inconclusive_limit": 1}


def metric(name: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "measure": {"metric": "success_rate"},
        "success_condition": "result >= 0.95",
        **settings,
    }


def template(*metrics: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": list(metrics)}


def argo_canary(steps: list[dict[str, Any]], templates: dict[str, Any], **extra: Any) -> Any:
    return rollout(
        policy="argo_canary", analysis=ARGO_ANALYSIS, steps=steps, templates=templates, **extra
    )


INLINE_STEPS = [
    {"set_weight": 20},
    {"pause": "5m"},
    {"analysis": {"templates": ["success-rate"]}},
    {"set_weight": 40},
    {"pause_indefinitely": True},
]


def test_inline_analysis_blocks_until_it_succeeds_then_a_pause_without_duration_waits() -> None:
    """An inline analysis step starts its run when reached and holds the steps until the run
    completes; success lets the rollout go on.  A ``pause`` without a duration waits for
    someone to promote — which never happens in the lab, so the run ends in progress and
    says so."""
    config = argo_canary(INLINE_STEPS, {"success-rate": template(metric("success-rate"))})
    evidence = MeasuredScript({"success-rate": ["Successful"]})
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=7200)
    assert trace == [
        (0.0, "set_weight", 20.0),
        (0.0, "pause", 20.0),
        (300.0, "pause", 20.0),
        (300.0, "analysis", 20.0),
        (300.0, "set_weight", 40.0),
        (300.0, "pause", 40.0),
    ]
    # No interval: one measurement, at the step, looking back over the last minute.
    assert [(t, r.since_s) for t, r in evidence.requests] == [(300.0, 240.0)]
    assert ctl.outcome == "in_progress"
    assert ctl.summary()["waiting_for"] == MANUAL_PROMOTION
    assert ctl.decisions[-1].reason == f"step 4: {MANUAL_PROMOTION}"


def test_inline_analysis_failure_aborts_the_rollout() -> None:
    """The success or failure of an inline analysis run decides whether the rollout goes on
    or is aborted (weight back to zero)."""
    config = argo_canary(INLINE_STEPS, {"success-rate": template(metric("success-rate"))})
    ctl = controller(config, MeasuredScript({"success-rate": ["Failed"]}))
    trace = run_script(ctl, until_s=7200)
    assert trace[-2:] == [(300.0, "analysis", 20.0), (300.0, "rollback", 0.0)]
    assert ctl.outcome == "rolled_back"
    assert "metric 'success-rate' assessed Failed: failed (1) > failureLimit (0)" in (
        ctl.decisions[-2].reason
    )
    assert ctl.decisions[-1].reason == "an analysis run failed: Argo Rollouts aborts the rollout"


def test_background_analysis_from_starting_step_aborts_after_failure_limit() -> None:
    """The documentation's background example: steps of 20 % every 10 minutes, the analysis
    starting at step 2 (setWeight 40), one measurement every 5 minutes; more than
    ``failureLimit`` (3) failed measurements fail the run, and a failed run aborts the
    rollout.  Failures need not be consecutive."""
    steps = [
        {"set_weight": 20},
        {"pause": "10m"},
        {"set_weight": 40},
        {"pause": "10m"},
        {"set_weight": 60},
        {"pause": "10m"},
        {"set_weight": 80},
        {"pause": "10m"},
    ]
    config = argo_canary(
        steps,
        {"success-rate": template(metric("success-rate", interval="5m", failure_limit=3))},
        background_analysis={"templates": ["success-rate"], "starting_step": 2},
    )
    script = ["Successful", "Failed", "Failed", "Successful", "Failed", "Failed"]
    evidence = MeasuredScript({"success-rate": script})
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=7200)
    assert trace == [
        (0.0, "set_weight", 20.0),
        (0.0, "pause", 20.0),
        (600.0, "set_weight", 40.0),
        (600.0, "pause", 40.0),
        (600.0, "analysis", 40.0),
        (900.0, "analysis", 40.0),
        (1200.0, "analysis", 40.0),
        (1200.0, "set_weight", 60.0),
        (1200.0, "pause", 60.0),
        (1500.0, "analysis", 60.0),
        (1800.0, "analysis", 60.0),
        (1800.0, "set_weight", 80.0),
        (1800.0, "pause", 80.0),
        (2100.0, "analysis", 80.0),
        (2100.0, "rollback", 0.0),
    ]
    # Each measurement reads its own interval, the last five minutes.
    assert [r.since_s for _, r in evidence.requests] == [300, 600, 900, 1200, 1500, 1800]


def test_background_analysis_stops_when_every_step_is_done() -> None:
    """A background run without a count runs until the rollout completes its steps; then
    the controller stops it and the canary becomes the stable version."""
    config = argo_canary(
        [{"set_weight": 50}, {"pause": "10m"}],
        {"success-rate": template(metric("success-rate", interval="5m"))},
        background_analysis={"templates": ["success-rate"]},
    )
    ctl = controller(config, MeasuredScript({"success-rate": ["Successful"]}))
    trace = run_script(ctl, until_s=7200)
    assert trace == [
        (0.0, "set_weight", 50.0),
        (0.0, "pause", 50.0),
        (0.0, "analysis", 50.0),
        (300.0, "analysis", 50.0),
        (600.0, "analysis", 50.0),
        (600.0, "set_weight", 100.0),
        (600.0, "promote", 100.0),
    ]
    assert ctl.outcome == "promoted"


def test_errors_count_against_consecutive_error_limit_and_retry_after_ten_seconds() -> None:
    """Errored measurements do not count towards ``count``; more than
    ``consecutiveErrorLimit`` of them in a row put the metric in Error, which aborts the
    rollout like a failure.  A successful measurement resets the streak.  (Argo Rollouts'
    controller measures again 10 seconds after an error.)"""
    config = argo_canary(
        [{"set_weight": 10}, {"analysis": {"templates": ["t"]}}, {"set_weight": 30}],
        {"t": template(metric("m", interval="1m", count=3, consecutive_error_limit=2))},
    )
    script = ["Error", "Error", "Successful", "Error", "Error", "Error"]
    evidence = MeasuredScript({"m": script})
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=3600)
    assert evidence.times("m") == [0.0, 10.0, 20.0, 80.0, 90.0, 100.0]
    assert trace[-2:] == [(100.0, "analysis", 10.0), (100.0, "rollback", 0.0)]
    assert "consecutive errors (3) > consecutiveErrorLimit (2)" in ctl.decisions[-2].reason


def test_inconclusive_run_pauses_the_rollout_for_a_person() -> None:
    """With both a success and a failure condition, a measurement that meets neither is
    Inconclusive; an inconclusive run pauses the rollout at its step until someone resumes
    or aborts it."""
    config = argo_canary(
        INLINE_STEPS,
        {"success-rate": template(metric("success-rate", failure_condition="result < 0.5"))},
    )
    ctl = controller(config, MeasuredScript({"success-rate": ["Inconclusive"]}))
    trace = run_script(ctl, until_s=7200)
    assert trace[-2:] == [(300.0, "analysis", 20.0), (300.0, "hold", 20.0)]
    assert ctl.outcome == "inconclusive"
    assert ctl.summary()["waiting_for"].startswith("paused after inconclusive analyses")


def test_count_interval_and_initial_delay_set_the_measurements() -> None:
    """``initialDelay`` postpones a metric's first measurement; ``count`` measurements
    ``interval`` apart complete it."""
    config = argo_canary(
        [{"set_weight": 10}, {"analysis": {"templates": ["t"]}}, {"set_weight": 30}],
        {"t": template(metric("m", interval="2m", count=3, initial_delay="1m"))},
    )
    evidence = MeasuredScript({"m": ["Successful"]})
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=3600)
    assert evidence.times("m") == [60.0, 180.0, 300.0]
    assert trace[-3:] == [
        (300.0, "set_weight", 30.0),
        (300.0, "set_weight", 100.0),
        (300.0, "promote", 100.0),
    ]


def test_dry_run_metrics_never_change_the_outcome() -> None:
    """A metric in dry-run mode is measured and reported but, failing or inconclusive, does
    not change the run's outcome."""
    config = argo_canary(
        [{"set_weight": 10}, {"analysis": {"templates": ["t"], "dry_run": ["total-.*"]}}],
        {"t": template(metric("ok"), metric("total-5xx"))},
    )
    ctl = controller(config, MeasuredScript({"ok": ["Successful"], "total-5xx": ["Failed"]}))
    run_script(ctl, until_s=3600)
    assert ctl.outcome == "promoted"
    assert "dry-run 'total-5xx' Failed" in ctl.decisions[-3].reason


def test_a_set_weight_of_100_alone_does_not_promote_an_argo_canary() -> None:
    """Argo Rollouts promotes once every step is done; a background failure during a later
    step still aborts a canary that had all the traffic."""
    config = argo_canary(
        [{"set_weight": 100}, {"pause": "10m"}],
        {"t": template(metric("m", interval="5m"))},
        background_analysis={"templates": ["t"]},
    )
    ctl = controller(config, MeasuredScript({"m": ["Successful", "Failed"]}))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 100.0),
        (0.0, "pause", 100.0),
        (0.0, "analysis", 100.0),
        (300.0, "analysis", 100.0),
        (300.0, "rollback", 0.0),
    ]


# --- blue-green ------------------------------------------------------------------------------


def blue_green(settings: dict[str, Any], **extra: Any) -> Any:
    templates = {
        "smoke": template(metric("smoke")),
        "errors": template(metric("errors", interval="5m", count=2)),
        "forever": template(metric("errors", interval="5m", initial_delay="1m")),
    }
    return rollout(
        policy="argo_blue_green",
        analysis=ARGO_ANALYSIS,
        blue_green=settings,
        templates=templates,
        **extra,
    )


def test_blue_green_switches_after_pre_promotion_and_switches_back_on_post_failure() -> None:
    """The switch to the new version waits for the pre-promotion run to succeed; after the
    switch, a failed post-promotion run aborts the rollout and sends traffic back to the
    previous version."""
    config = blue_green(
        {
            "pre_promotion_analysis": {"templates": ["smoke"]},
            "post_promotion_analysis": {"templates": ["errors"]},
        }
    )
    script = MeasuredScript({"smoke": ["Successful"], "errors": ["Successful", "Failed"]})
    ctl = controller(config, script)
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "pause", 0.0),
        (0.0, "analysis", 0.0),
        (0.0, "mirror", 0.0),
        (0.0, "set_weight", 100.0),
        (0.0, "promote", 100.0),
        (0.0, "analysis", 100.0),
        (300.0, "analysis", 100.0),
        (300.0, "rollback", 0.0),
    ]
    assert ctl.outcome == "rolled_back"
    assert ctl.max_weight == 100.0


def test_blue_green_auto_promotion_seconds_switch_whatever_the_run() -> None:
    """With ``autoPromotionSeconds`` the switch comes that long after the preview is up: a
    pre-promotion run still going is marked successful (one that failed would have aborted
    first)."""
    config = blue_green(
        {
            "auto_promotion_seconds": "10m",
            "pre_promotion_analysis": {"templates": ["forever"]},
        }
    )
    ctl = controller(config, MeasuredScript({"errors": ["Successful"]}))
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (0.0, "pause", 0.0),
        (60.0, "analysis", 0.0),
        (360.0, "analysis", 0.0),
        (600.0, "mirror", 0.0),
        (600.0, "set_weight", 100.0),
        (600.0, "promote", 100.0),
    ]


def test_blue_green_without_auto_promotion_waits_for_a_person() -> None:
    """``autoPromotionEnabled: false`` pauses the rollout before the switch, after the
    pre-promotion analysis, until someone promotes it."""
    config = blue_green(
        {"auto_promotion_enabled": False, "pre_promotion_analysis": {"templates": ["smoke"]}}
    )
    ctl = controller(config, MeasuredScript({"smoke": ["Successful"]}))
    trace = run_script(ctl, until_s=3600)
    assert trace[-2:] == [(0.0, "analysis", 0.0), (0.0, "pause", 0.0)]
    assert ctl.outcome == "in_progress"
    assert ctl.summary()["waiting_for"] == WAIT_FOR_PROMOTION


def test_blue_green_scale_down_delay_cancels_the_post_promotion_run() -> None:
    """With ``scaleDownDelaySeconds`` set, the post-promotion run is cancelled when the old
    version scales down; cancelled early it ends successful and the rollout stays promoted."""
    config = blue_green(
        {"post_promotion_analysis": {"templates": ["forever"]}, "scale_down_delay": "5m"}
    )
    evidence = MeasuredScript({"errors": ["Successful"]})
    ctl = controller(config, evidence)
    trace = run_script(ctl, until_s=3600)
    assert trace == [
        (0.0, "set_weight", 100.0),
        (0.0, "promote", 100.0),
        (60.0, "analysis", 100.0),
        (300.0, "analysis", 100.0),
    ]
    assert evidence.times("errors") == [60.0]
    assert "scale-down delay elapsed" in ctl.decisions[-1].reason
    assert ctl.outcome == "promoted"


# --- Flagger ---------------------------------------------------------------------------------


def flagger(settings: dict[str, Any], threshold: int = 2, **extra: Any) -> Any:
    checks = [{"name": "error-rate", "measure": {"metric": "error_rate"}, "max": 0.01}]
    return rollout(
        policy="flagger",
        analysis={"interval": "1m", "failure_limit": threshold},
        flagger={"checks": checks, **settings},
        **extra,
    )


def test_flagger_steps_the_weight_and_promotes_past_max_weight() -> None:
    """The documentation's weights example: stepWeight 20, maxWeight 50 gives 20, 40, 60,
    then promotion — one passing check per interval each."""
    config = flagger({"step_weight": 20, "max_weight": 50})
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    assert trace == [
        (0.0, "set_weight", 20.0),
        (60.0, "analysis", 20.0),
        (60.0, "set_weight", 40.0),
        (120.0, "analysis", 40.0),
        (120.0, "set_weight", 60.0),
        (180.0, "analysis", 60.0),
        (180.0, "set_weight", 100.0),
        (180.0, "promote", 100.0),
    ]


def test_flagger_failed_checks_halt_and_threshold_rolls_back() -> None:
    """A failed check halts the advance and counts towards ``threshold``; when the failed
    checks reach it, Flagger routes all traffic back to the primary."""
    config = flagger({"step_weight": 20, "max_weight": 80}, threshold=2)
    script = ["Successful", "Failed", "Successful", "Failed"]
    ctl = controller(config, MeasuredScript({"error-rate": script}))
    trace = run_script(ctl, 3600)
    assert trace == [
        (0.0, "set_weight", 20.0),
        (60.0, "analysis", 20.0),
        (60.0, "set_weight", 40.0),
        (120.0, "analysis", 40.0),
        (180.0, "analysis", 40.0),
        (180.0, "set_weight", 60.0),
        (240.0, "analysis", 60.0),
        (240.0, "rollback", 0.0),
    ]
    assert ctl.summary()["failures"] == 2
    assert ctl.decisions[-1].reason == "2 failed checks reached the threshold: Flagger rolls back"


def test_flagger_step_weights_are_followed_in_order() -> None:
    """``stepWeights: [1, 2, 10, 80]`` goes 1, 2, 10, 80, then promotion."""
    config = flagger({"step_weights": [1, 2, 10, 80]})
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    weights = [w for _, a, w in trace if a == "set_weight"]
    assert weights == [1.0, 2.0, 10.0, 80.0, 100.0]
    assert trace[-1] == (240.0, "promote", 100.0)


def test_flagger_mirror_step_comes_before_any_weight() -> None:
    """With ``mirror: true`` a canary release first mirrors traffic for one interval (the
    canary's answers are discarded), then shifts real traffic."""
    config = flagger({"step_weight": 25, "max_weight": 50, "mirror": True})
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    assert trace[:4] == [
        (0.0, "mirror", 0.0),
        (60.0, "analysis", 0.0),
        (60.0, "mirror", 0.0),
        (60.0, "set_weight", 25.0),
    ]
    assert trace[-1] == (180.0, "promote", 100.0)


def test_flagger_ab_testing_promotes_after_iterations() -> None:
    """A/B testing routes the matched users to the canary for ``iterations`` checks, then
    promotes: interval × iterations.  Routing all matched users there is not a promotion."""
    config = flagger({"strategy": "ab_testing", "iterations": 3}, target_segments=["heavy"])
    ctl = controller(config, MeasuredScript({"error-rate": ["Successful"]}))
    trace = run_script(ctl, 3600)
    assert trace == [
        (0.0, "set_weight", 100.0),
        (60.0, "analysis", 100.0),
        (120.0, "analysis", 100.0),
        (180.0, "analysis", 100.0),
        (180.0, "promote", 100.0),
    ]
    assert ctl.decisions[1].reason.endswith("iteration 2 of 3")


def test_flagger_blue_green_mirrors_for_the_iterations_then_switches() -> None:
    """Blue/green with mirroring copies every request to the canary during the iterations
    (answers discarded), then routes live traffic to it."""
    config = flagger({"strategy": "blue_green", "iterations": 2, "mirror": True})
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    assert trace == [
        (0.0, "mirror", 0.0),
        (60.0, "analysis", 0.0),
        (120.0, "analysis", 0.0),
        (120.0, "set_weight", 100.0),
        (120.0, "promote", 100.0),
    ]


def test_flagger_confirm_promotion_gate_halts_while_checks_go_on() -> None:
    """A ``confirm-promotion`` hook pauses the promotion until it answers yes; Flagger keeps
    running the checks meanwhile.  A gate nobody opens leaves the canary waiting."""
    gate = {"name": "promotion gate", "type": "confirm-promotion", "opens_at": None}
    config = flagger({"step_weight": 50, "max_weight": 50, "webhooks": [gate]})
    ctl = controller(config, MeasuredScript({"error-rate": ["Successful"]}))
    trace = run_script(ctl, 600)
    assert [a for _, a, _ in trace] == ["set_weight"] + ["analysis"] * 10
    assert ctl.outcome == "in_progress"
    assert ctl.summary()["waiting_for"] == (
        "confirm-promotion webhook 'promotion gate' is closed: Flagger halts until it opens, "
        "and nobody does in the lab"
    )
    opened = flagger(
        {"step_weight": 50, "max_weight": 50, "webhooks": [{**gate, "opens_at": "150s"}]}
    )
    trace = run_script(controller(opened, MeasuredScript({"error-rate": ["Successful"]})), 600)
    assert trace[-1] == (180.0, "promote", 100.0)


def test_flagger_failing_pre_rollout_hook_never_starts_and_rolls_back() -> None:
    """A failing ``pre-rollout`` hook halts the canary before any traffic and counts as a
    failed check; reaching the threshold rolls back."""
    hook = {"name": "acceptance", "type": "pre-rollout", "passes": False}
    config = flagger({"step_weight": 20, "webhooks": [hook]}, threshold=2)
    ctl = controller(config, MeasuredScript({"error-rate": ["Successful"]}))
    trace = run_script(ctl, 3600)
    assert trace == [(60.0, "analysis", 0.0), (120.0, "analysis", 0.0), (120.0, "rollback", 0.0)]
    assert ctl.max_weight == 0.0


def test_flagger_rollback_hook_rolls_back_at_the_next_check() -> None:
    """A ``rollback`` hook that answers yes stops the analysis and marks the canary failed."""
    hook = {"name": "rollback gate", "type": "rollback", "opens_at": "100s"}
    config = flagger({"step_weight": 20, "max_weight": 80, "webhooks": [hook]})
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    assert trace[-1] == (120.0, "rollback", 0.0)
    assert trace[-2] == (60.0, "set_weight", 40.0)


def test_flagger_failing_rollout_hook_fails_each_check() -> None:
    """``rollout`` hooks run at every check; one that fails fails the check."""
    hook = {"name": "load test", "type": "rollout", "passes": False}
    config = flagger({"step_weight": 20, "webhooks": [hook]}, threshold=3)
    trace = run_script(controller(config, MeasuredScript({"error-rate": ["Successful"]})), 3600)
    assert trace[-1] == (180.0, "rollback", 0.0)


def test_staged_pause_without_duration_waits_for_a_person() -> None:
    """A staged ramp's ``pause_indefinitely`` step holds the ramp for good in the lab (it was
    once dropped from the plan, and the ramp went on)."""
    from policy_script import ScriptedEvidence

    config = rollout(
        policy="staged",
        steps=[{"set_weight": 10}, {"pause_indefinitely": True}, {"set_weight": 100}],
        analysis={"interval": "5m"},
    )
    ctl = controller(config, ScriptedEvidence(["pass"] * 12))
    trace = run_script(ctl, until_s=3600)
    assert [a for _, a, _ in trace] == ["set_weight", "pause"] + ["analysis"] * 12
    assert ctl.outcome == "in_progress"
    assert ctl.summary()["waiting_for"] == WAITS_FOR_A_PERSON
