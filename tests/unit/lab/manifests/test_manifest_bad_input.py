"""Bad manifests: one line naming the manifest, the field and its line; exit code 2.

Each case is a manifest (and the scenario's mapping tables) and the exact line the lab must
answer with.  Line numbers count from the first line of the manifest text below.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from manifest_files import write_scenario

from lab.manifests.metric_map import LAB_METRICS
from lab.scenario import load_scenario
from replay.errors import UserInputError
from rollout_lab.cli import main

CANARY = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: app
spec:
  strategy:
    canary:
      steps:
        - setWeight: 20
{steps}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  metrics:
    - name: success-rate
{metric}
"""
METRIC = """\
      successCondition: result[0] >= 0.95
      provider:
        prometheus:
          query: sum(rate(ok[5m])) / sum(rate(all[5m]))"""


ANALYSIS_STEP = (
    "        - analysis:\n            templates:\n              - templateName: success-rate"
)


def canary(steps: str = ANALYSIS_STEP, metric: str = METRIC) -> str:
    return CANARY.format(steps=steps, metric=metric)


FLAGGER = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: app
spec:
  analysis:
{analysis}
"""


def flagger(analysis: str) -> str:
    return FLAGGER.format(analysis=textwrap.indent(textwrap.dedent(analysis), "    "))


MAPPED = 'metric_map = { success-rate = "success_rate" }'
METRICS = ", ".join(LAB_METRICS)

#: (case, manifest text, extra [rollout] lines, expected message)
CASES: list[tuple[str, str, str, str]] = [
    (
        "not_yaml",
        "apiVersion: v1\nkind: [Rollout\nspec: {}\n",
        "",
        "m.yaml: not valid YAML at line 3: expected ',' or ']', but got ':'",
    ),
    (
        "empty",
        "# nothing here\n",
        "",
        "m.yaml: empty: expected an Argo Rollouts Rollout or a Flagger Canary",
    ),
    (
        "not_a_mapping",
        "- just\n- a list\n",
        "",
        "m.yaml: line 1 is a document that is not a mapping (a list): expected a Kubernetes "
        "object with apiVersion and kind",
    ),
    (
        "neither_tool",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n",
        "",
        "m.yaml: holds no Argo Rollouts Rollout and no Flagger Canary (kinds found: Deployment)",
    ),
    (
        "missing_strategy",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: app\nspec:\n"
        "  replicas: 3\n",
        "",
        "m.yaml: spec.strategy is required (line 5): a Rollout needs strategy.canary or "
        "strategy.blueGreen",
    ),
    (
        "two_strategies",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nspec:\n  strategy:\n    canary: {}\n"
        "    blueGreen: {}\n",
        "",
        "m.yaml: spec.strategy (line 4) must hold exactly one of canary, blueGreen, got "
        "['canary', 'blueGreen']",
    ),
    (
        "wrong_api_version",
        "apiVersion: apps/v1\nkind: Rollout\nspec: {}\n",
        "",
        "m.yaml: apiVersion (line 1) must be apiVersion argoproj.io/v1alpha1 for a Rollout",
    ),
    (
        "unknown_step_kind",
        canary("        - pauze: {duration: 5m}"),
        MAPPED,
        "m.yaml: spec.strategy.canary.steps[1].pauze (line 10) is not a step Argo Rollouts "
        "knows (known: analysis, experiment, pause, plugin, replicaProgressThreshold, "
        "setCanaryScale, setHeaderRoute, setMirrorRoute, setWeight)",
    ),
    (
        "two_kinds_in_one_step",
        canary("        - setWeight: 40\n          pause: {}"),
        MAPPED,
        "m.yaml: spec.strategy.canary.steps[1] (line 10) must hold exactly one step kind "
        "(setWeight, pause, analysis, setCanaryScale, setMirrorRoute), got ['setWeight', "
        "'pause']",
    ),
    (
        "pause_in_days",
        canary("        - pause: {duration: 1d}"),
        MAPPED,
        "m.yaml: spec.strategy.canary.steps[1].pause.duration (line 10) must be a duration "
        "like 30s, 10m or 1h with known units (s, m, h), not 'd', got '1d'",
    ),
    (
        "interval_without_unit",
        canary(metric="      interval: 5\n" + METRIC),
        MAPPED,
        "m.yaml: spec.metrics[0].interval (line 21) must be a duration like 30s, 5m or 1h with "
        "a unit after 5 (ns, us, ms, s, m, h), got 5",
    ),
    (
        "condition_does_not_parse",
        canary(metric=METRIC.replace("result[0] >= 0.95", "result[0 >= 0.95")),
        MAPPED,
        "m.yaml: spec.metrics[0].successCondition (line 21) does not parse: expected ']', found "
        "the end at column 17: 'result[0 >= 0.95'",
    ),
    (
        "metric_missing_from_metric_map",
        canary(),
        "",
        "m.yaml: spec.metrics[0] (line 20) is metric 'success-rate' (query 'sum(rate(ok[5m])) "
        "/ sum(rate(all[5m]))'), which is not in rollout.metric_map: map its name or query to "
        f'a lab metric, e.g. [rollout.metric_map] "success-rate" = "error_rate" ({METRICS})',
    ),
    (
        "misspelt_metric_field",
        canary(metric=METRIC.replace("successCondition", "sucessCondition")),
        MAPPED,
        "m.yaml: spec.metrics[0].sucessCondition (line 21) is not a field of an analysis metric "
        "(known: consecutiveErrorLimit, consecutiveSuccessLimit, count, failureCondition, "
        "failureLimit, inconclusiveLimit, initialDelay, interval, name, provider, "
        "successCondition)",
    ),
    (
        "experiment_step",
        canary("        - experiment:\n            duration: 1h"),
        MAPPED,
        "m.yaml: spec.strategy.canary.steps[1].experiment (line 10) is an experiment (extra "
        "baseline and canary ReplicaSets beside the rollout), which the lab does not run: not "
        "supported",
    ),
    (
        "missing_template",
        canary(
            "        - analysis:\n            templates:\n              - templateName: latency"
        ),
        MAPPED,
        "m.yaml: spec.strategy.canary.steps[1].analysis.templates[0].templateName (line 12) "
        "names AnalysisTemplate 'latency', which is not in the manifest (success-rate)",
    ),
    (
        "missing_argument",
        canary(metric=METRIC.replace("sum(rate(ok[5m]))", "sum(rate(ok{svc='{{args.svc}}'}[5m]))")),
        MAPPED,
        "m.yaml: spec.metrics[0].provider.prometheus.query (line 24) uses {{args.svc}}, which "
        "has no value: pass it in the Rollout's analysis args or give the template a default",
    ),
    (
        "paused_rollout",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nspec:\n  paused: true\n  strategy:\n"
        "    canary: {}\n",
        "",
        "m.yaml: spec.paused (line 4) is true: a paused Rollout waits for someone before it "
        "starts; remove it to rehearse the rollout",
    ),
    (
        "two_rollouts",
        canary() + "---\n" + canary(),
        MAPPED,
        "m.yaml: line 26 is a second Rollout: the lab rehearses one per scenario",
    ),
    (
        "scenario_sets_what_the_manifest_sets",
        canary(),
        MAPPED + '\npolicy = "staged"',
        "s.toml: rollout.policy comes from the manifest (m.yaml); remove it from the scenario",
    ),
    (
        "bad_metric_map_entry",
        canary(),
        'metric_map = { success-rate = "sucess_rate" }',
        f"s.toml: rollout.metric_map.'success-rate' must be a lab metric ({METRICS}) or a "
        'table such as { metric = "error_rate", of = "candidate", scale = 100, window = "5m" }, '
        "got 'sucess_rate'",
    ),
    (
        "flagger_without_weights",
        flagger("interval: 1m\nthreshold: 2\n"),
        "",
        "m.yaml: spec.analysis (line 6) needs stepWeight or stepWeights for a canary release "
        "(or iterations for A/B testing and blue/green)",
    ),
    (
        "flagger_interval_in_days",
        flagger("interval: 1d\nstepWeight: 10\n"),
        "",
        "m.yaml: spec.analysis.interval (line 7) must be a duration like 30s, 5m or 1h with "
        "known units (ns, us, ms, s, m, h), not 'd', got '1d'",
    ),
    (
        "flagger_header_not_in_segment_map",
        flagger("iterations: 5\nmatch:\n  - headers:\n      x-canary:\n        exact: insider\n"),
        "",
        "m.yaml: spec.analysis.match[0].headers.x-canary (line 10) matches header 'x-canary' "
        "(exact 'insider'), which is not in rollout.segment_map: map it to user segments, e.g. "
        'segment_map = { "x-canary" = ["heavy"] } (cold, light, heavy)',
    ),
    (
        "flagger_match_without_iterations",
        flagger("stepWeight: 10\nmatch:\n  - headers:\n      x-canary:\n        exact: insider\n"),
        'segment_map = { x-canary = ["heavy"] }',
        "m.yaml: spec.analysis.match (line 8) needs analysis.iterations: A/B testing runs that "
        "many checks",
    ),
    (
        "flagger_custom_metric_unmapped",
        flagger(
            "stepWeight: 10\nmetrics:\n  - name: p95-latency\n    thresholdRange: {max: 300}\n"
            "    query: histogram_quantile(0.95, rate(latency_bucket[1m]))\n"
        ),
        "",
        "m.yaml: spec.analysis.metrics[0] (line 9) is metric 'p95-latency' (query "
        "'histogram_quantile(0.95, rate(latency_bucket[1m]))'), which is not in "
        "rollout.metric_map: map its name or query to a lab metric, e.g. [rollout.metric_map] "
        f'"p95-latency" = "error_rate" ({METRICS})',
    ),
    (
        "flagger_bad_webhook_answer",
        flagger(
            "stepWeight: 10\nwebhooks:\n  - name: gate\n    type: confirm-promotion\n"
            "    url: http://gate/\n"
        ),
        'webhooks = { gate = "maybe" }',
        "s.toml: rollout.webhooks.'gate' must be 'open', 'closed' or the time it opens (e.g. "
        "'15m') for a gate, got 'maybe'",
    ),
    (
        "flagger_skip_analysis",
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nspec:\n  skipAnalysis: true\n"
        "  analysis: {stepWeight: 10}\n",
        "",
        "m.yaml: spec.skipAnalysis (line 4) ships the canary without its analysis: use policy "
        "big_bang to rehearse that",
    ),
    (
        "python_object_tag",
        "apiVersion: argoproj.io/v1alpha1\nkind: !!python/object/apply:os.system ['true']\n",
        "",
        "m.yaml: line 2: 'tag:yaml.org,2002:python/object/apply:os.system' is not a value the "
        "lab reads (plain maps, lists, strings, numbers, booleans and null only)",
    ),
    (
        "billion_laughs",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, "
        "*c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e]\n",
        "",
        "m.yaml: line 1 unfolds into more than 200,000 values (aliases of aliases?); a rollout "
        "manifest is far smaller",
    ),
    # setCanaryScale forms the lab cannot play (the step is line 10).
    (
        "canary_scale_to_zero",
        canary("        - setCanaryScale: {replicas: 0}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale.replicas (line 10) scales the "
        "canary to 0 replicas: the lab runs every version on at least one replica, not "
        "supported (leave the step out, or give replicas: 1 or more)",
    ),
    (
        "canary_scale_weight_zero",
        canary("        - setCanaryScale: {weight: 0}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale.weight (line 10) scales the "
        "canary to 0 replicas: the lab runs every version on at least one replica, not "
        "supported (leave the step out, or give replicas: 1 or more)",
    ),
    (
        "canary_scale_two_forms",
        canary("        - setCanaryScale: {replicas: 2, weight: 50}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale (line 10) must hold exactly one "
        "of replicas, weight, matchTrafficWeight, got replicas, weight",
    ),
    (
        "canary_scale_empty",
        canary("        - setCanaryScale: {}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale (line 10) must hold exactly one "
        "of replicas, weight, matchTrafficWeight, got none",
    ),
    (
        "canary_scale_match_false",
        canary("        - setCanaryScale: {matchTrafficWeight: false}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale.matchTrafficWeight (line 10) is "
        "false, which sets no scale: give replicas or weight, or true to follow the traffic "
        "weight",
    ),
    (
        "canary_scale_not_a_mapping",
        canary("        - setCanaryScale: 3"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale (line 10) must be a mapping with "
        "one of replicas, weight, matchTrafficWeight",
    ),
    (
        "canary_scale_unknown_field",
        canary("        - setCanaryScale: {pods: 2}"),
        "",
        "m.yaml: spec.strategy.canary.steps[1].setCanaryScale.pods (line 10) is not a field of "
        "setCanaryScale (known: matchTrafficWeight, replicas, weight)",
    ),
]


def write(tmp_path: Path, manifest: str, extra: str) -> Path:
    return write_scenario(tmp_path, manifest, extra)


@pytest.mark.parametrize(
    ("manifest", "extra", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_manifests_give_one_exact_line(
    manifest: str, extra: str, message: str, tmp_path: Path
) -> None:
    scenario = write(tmp_path, manifest, extra)
    with pytest.raises(UserInputError) as caught:
        load_scenario(scenario)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_missing_manifest_file_names_the_path(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, None)
    with pytest.raises(UserInputError) as caught:
        load_scenario(scenario)
    assert str(caught.value) == (
        "s.toml: rollout.manifest names 'm.yaml', which is no file (paths are relative to the "
        "scenario's folder; --rollout paths to the current one)"
    )


def test_cli_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(tmp_path, canary("        - pauze: {}"), MAPPED)
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "rollout-lab: error: m.yaml: spec.strategy.canary.steps[1].pauze (line 10)"
    )
    assert "Traceback" not in err


def test_nothing_in_a_manifest_is_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    manifest = f"kind: !!python/object/apply:os.system ['touch {marker}']\n"
    scenario = write(tmp_path, manifest, "")
    with pytest.raises(UserInputError):
        load_scenario(scenario)
    assert not marker.exists()


def test_checks_of_hand_written_run_settings(tmp_path: Path) -> None:
    """The same mistakes written in TOML are caught by the scenario's checks."""
    from lab.scenario import parse_scenario

    base: dict[str, Any] = {
        "name": "t",
        "traffic": {"duration": "1h", "arrivals": {"kind": "poisson", "rate_per_s": 10}},
        "models": {"baseline": {}, "candidate": {"parent": "baseline"}},
    }
    metric = {"name": "m", "measure": {"metric": "error_rate"}, "success_condition": "result <"}
    rollout = {
        "policy": "argo_canary",
        "analysis": {"failure_limit": 1, "inconclusive_limit": 1},
        "steps": [{"analysis": {"templates": ["t"]}}],
        "templates": {"t": {"metrics": [metric]}},
    }
    with pytest.raises(UserInputError) as caught:
        parse_scenario({**base, "rollout": rollout}, source="s.toml")
    assert str(caught.value) == (
        "s.toml: rollout.templates.t.metrics[0].success_condition must be a condition "
        "(expected a value, found the end at column 9), got 'result <'"
    )
    rollout["templates"] = {"u": {"metrics": [{**metric, "success_condition": ""}]}}
    with pytest.raises(UserInputError) as caught:
        parse_scenario({**base, "rollout": rollout}, source="s.toml")
    assert str(caught.value) == (
        "s.toml: rollout.steps[0].analysis.templates[0] must name a template in "
        "rollout.templates (u), got 't'"
    )
    rollout["templates"] = {"t": {"metrics": [{**metric, "success_condition": ""}]}}
    rollout["analysis"] = {"failure_limit": 2}
    with pytest.raises(UserInputError, match=r"analysis\.failure_limit must be 1 for policy"):
        parse_scenario({**base, "rollout": rollout}, source="s.toml")
