"""Manifests into ``[rollout]`` tables: what each documented field becomes in the lab."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from manifest_files import write_scenario

from lab.manifests.argo import basic_canary_share
from lab.scenario import Scenario, load_scenario
from replay.errors import UserInputError

ROOT = Path(__file__).resolve().parents[4]


def load(tmp_path: Path, manifest: str, extra: str = "") -> Scenario:
    manifest, extra = textwrap.dedent(manifest), textwrap.dedent(extra)
    return load_scenario(write_scenario(tmp_path, manifest, extra))


@pytest.mark.parametrize(
    ("weight", "replicas", "surge", "share"),
    [
        # The documentation's examples: 10 replicas, 10 % -> 1 pod; 41 % -> 4 of 10 pods.
        (10, 10, True, 10.0),
        (41, 10, True, 40.0),
        (41, 10, False, 40.0),
        # 4 replicas, 10 %: 1 of 4 is 25 %; with surge 1 of 5 (20 %) is closer.
        (10, 4, True, 20.0),
        (10, 4, False, 25.0),
        # One replica: with surge, 1 canary beside 1 stable; without, nothing to split.
        (5, 1, True, 50.0),
        (5, 1, False, 0.0),
        (95, 1, True, 50.0),
        # 3 replicas, 20 %: 1 of 3 (33 %) or, with surge, 1 of 4 (25 %).
        (20, 3, True, 25.0),
        (20, 3, False, 33.333333),
        # A tie rounds up: 50 % of 3 -> 2 of 3 rather than 1 of 3.
        (50, 3, False, 66.666667),
        # 0 and 100 need no pods on the other side.
        (0, 4, True, 0.0),
        (100, 4, True, 100.0),
    ],
)
def test_basic_canary_weights_come_from_pod_counts(
    weight: float, replicas: int, surge: bool, share: float
) -> None:
    """Without a traffic router Argo Rollouts approximates the weight with pod counts: the
    whole number of pods closest to the weight, rounding up on a tie, both sides keeping a
    pod, one extra pod allowed by maxSurge."""
    assert basic_canary_share(weight, replicas, surge) == share


def test_library_background_manifest_translates_field_by_field() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "argo_background_analysis.toml")
    rollout = scenario.rollout
    assert rollout.policy == "argo_canary"
    assert [s.set_weight or s.pause for s in rollout.steps] == [20, 600, 40, 600, 60, 600, 80, 600]
    assert rollout.background_analysis is not None
    assert rollout.background_analysis.starting_step == 2
    metric = rollout.templates["success-rate"].metrics[0]
    assert metric.interval == 300 and metric.failure_limit == 3
    assert metric.measure is not None
    # The query's [5m] is the look-back; its conditions read result[0]: a vector.
    assert (metric.measure.metric, metric.measure.window, metric.measure.shape) == (
        "success_rate",
        300.0,
        "vector",
    )
    assert rollout.analysis is not None and rollout.analysis.failure_limit == 1


def test_notes_list_what_changes_nothing(tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "scenarios" / "argo_canary_inline_analysis.toml")
    notes = scenario.rollout.manifest_notes
    assert (
        "spec.strategy.canary.trafficRouting (line 27): traffic router (nginx): the lab splits "
        "traffic by weight exactly, as a router does"
    ) in notes
    assert all(" (line " in note for note in notes)


def test_basic_canary_without_router_is_noted_and_scale_sets_replicas(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        """\
        apiVersion: argoproj.io/v1alpha1
        kind: Rollout
        spec:
          replicas: 4
          strategy:
            canary:
              maxSurge: 0
              maxUnavailable: 1
              steps:
                - setCanaryScale: {replicas: 2}
                - setWeight: 10
                - setCanaryScale: {matchTrafficWeight: true}
        """,
    )
    assert [s.set_weight for s in scenario.rollout.steps] == [25.0]
    assert scenario.models["candidate"].replicas == 2
    notes = scenario.rollout.manifest_notes
    assert (
        "spec.strategy.canary.steps[1].setWeight (line 11): setWeight 10 with 4 replicas and no "
        "trafficRouting gives the canary 25% of the pods, hence of the traffic"
    ) in notes
    assert any(n.startswith("spec.strategy.canary.maxUnavailable (line 8)") for n in notes)


@pytest.mark.parametrize(
    ("spec_replicas", "weight", "canary_replicas"),
    [(10, 25, 3), (4, 10, 1), (5, 100, 5), (3, 34, 2)],
)
def test_canary_scale_by_weight_is_a_share_of_spec_replicas(
    tmp_path: Path, spec_replicas: int, weight: int, canary_replicas: int
) -> None:
    """``setCanaryScale: {weight: W}`` gives the canary ceil(W % of spec.replicas) replicas,
    its own count for the run (``models.<candidate>.replicas``)."""
    scenario = load(
        tmp_path,
        f"""\
        apiVersion: argoproj.io/v1alpha1
        kind: Rollout
        spec:
          replicas: {spec_replicas}
          strategy:
            canary:
              trafficRouting: {{nginx: {{stableIngress: app}}}}
              steps:
                - setCanaryScale: {{weight: {weight}}}
                - setWeight: 10
        """,
    )
    assert scenario.models["candidate"].replicas == canary_replicas
    assert (
        f"spec.strategy.canary.steps[0].setCanaryScale.weight (line 9): setCanaryScale weight "
        f"{weight} of spec.replicas {spec_replicas} gives the canary {canary_replicas} replicas"
    ) in scenario.rollout.manifest_notes


def test_different_canary_scales_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"steps\[1\]\.setCanaryScale \(line 8\) sets 3"):
        load(
            tmp_path,
            """\
            apiVersion: argoproj.io/v1alpha1
            kind: Rollout
            spec:
              strategy:
                canary:
                  steps:
                    - setCanaryScale: {replicas: 2}
                    - setCanaryScale: {replicas: 3}
            """,
        )


TEMPLATES = """\
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: errors
spec:
  args:
    - name: service
      value: default-svc
  dryRun:
    - metricName: total-.*
  metrics:
    - name: error-rate
      interval: 1m
      count: 3
      successCondition: result <= 0.01
      provider:
        datadog:
          query: sum:errors{service:{{args.service}}}
    - name: total-5xx
      failureCondition: result > 10
      provider:
        prometheus:
          query: sum(increase(http_5xx[10m]))
  templates:
    - templateName: latency
      clusterScope: true
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: latency
spec:
  metrics:
    - name: p99
      successCondition: "all(result, # < 120)"
      provider:
        prometheus:
          query: histogram_quantile(0.99, rate(latency_bucket[2m]))
---
apiVersion: v1
kind: Service
metadata:
  name: app
"""


def test_templates_args_cluster_scope_nesting_and_dry_run(tmp_path: Path) -> None:
    rollout = """\
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    spec:
      strategy:
        canary:
          steps:
            - analysis:
                templates: [{templateName: errors}]
                args: [{name: service, value: checkout}]
            - analysis:
                templates: [{templateName: errors}]
                dryRun: [{metricName: error-rate}]
                args:
                  - name: service
                    valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    """
    extra = """\
    [rollout.metric_map]
    "sum:errors{service:checkout}" = "error_rate"
    "sum:errors{service:{{valueFrom service}}}" = { metric = "error_rate", of = "ratio" }
    total-5xx = { metric = "requests", window = "10m" }
    p99 = "latency_ms.p99"
    """
    scenario = load(tmp_path, textwrap.dedent(rollout) + TEMPLATES, extra)
    r = scenario.rollout
    # The same template with other arguments binds other queries: two lab templates.
    assert sorted(r.templates) == ["cluster-latency", "errors", "errors-2"]
    first, second = r.steps[0].analysis, r.steps[1].analysis
    assert first is not None and second is not None
    assert first.templates == ["errors", "cluster-latency"]
    assert second.templates == ["errors-2", "cluster-latency"] and second.dry_run == ["error-rate"]
    errors = {m.name: m for m in r.templates["errors"].metrics}
    assert errors["error-rate"].measure is not None
    assert errors["error-rate"].measure.shape == "scalar"  # Datadog answers a number
    assert errors["total-5xx"].dry_run  # the template's own dryRun rule
    assert errors["total-5xx"].measure is not None
    assert errors["total-5xx"].measure.window == 600.0
    second_rate = r.templates["errors-2"].metrics[0].measure
    assert second_rate is not None and second_rate.of == "ratio"
    p99 = r.templates["cluster-latency"].metrics[0].measure
    assert p99 is not None and p99.shape == "vector" and p99.window == 120.0
    notes = r.manifest_notes
    assert any("argument 'service' comes from the cluster (valueFrom)" in n for n in notes)
    assert any("document of kind 'Service' is not read" in n for n in notes)


FLAGGER = """\
apiVersion: flagger.app/v1beta1
kind: Canary
spec:
  provider: {provider}
  analysis:
{analysis}
"""


def flagger(tmp_path: Path, analysis: str, extra: str = "", provider: str = "istio") -> Scenario:
    text = FLAGGER.format(
        provider=provider, analysis=textwrap.indent(textwrap.dedent(analysis), "    ")
    )
    return load(tmp_path, text, extra)


def test_flagger_match_maps_headers_to_segments(tmp_path: Path) -> None:
    """Headers within one match entry must all hold (intersection of segments); the entries
    are alternatives (union)."""
    scenario = flagger(
        tmp_path,
        """\
        iterations: 3
        match:
          - headers:
              x-canary: {exact: insider}
              user-agent: {regex: ".*Mobile.*"}
          - headers:
              cookie: {regex: "canary=always"}
        """,
        """\
        [rollout.segment_map]
        "x-canary=insider" = ["heavy", "light"]
        user-agent = ["light", "cold"]
        cookie = ["cold"]
        """,
    )
    assert scenario.rollout.target_segments == ["cold", "light"]
    assert scenario.rollout.flagger is not None
    assert scenario.rollout.flagger.strategy == "ab_testing"


def test_flagger_builtins_templates_and_webhooks(tmp_path: Path) -> None:
    analysis = """\
    interval: 30s
    threshold: 4
    maxWeight: 60
    stepWeight: 15
    sessionAffinity: {cookieName: flagger-cookie}
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
      - name: request-duration
        threshold: 500
      - name: clicks
        templateRef: {name: click-rate}
        thresholdRange: {min: 0.02}
        interval: 2m
    webhooks:
      - name: approve
        type: confirm-traffic-increase
        url: http://flagger-loadtester.test/gate/approve
      - name: halt
        type: confirm-promotion
        url: http://flagger-loadtester.test/gate/halt
      - name: timed
        type: confirm-rollout
        url: http://gate.example.com/
      - name: smoke
        type: pre-rollout
        url: http://flagger-loadtester.test/
      - name: notify
        type: post-rollout
        url: http://chat.example.com/
    """
    template = """\
    ---
    apiVersion: flagger.app/v1beta1
    kind: MetricTemplate
    metadata: {name: click-rate}
    spec:
      provider: {type: prometheus, address: http://prometheus:9090}
      query: sum(rate(clicks[1m])) / sum(rate(impressions[1m]))
    """
    text = FLAGGER.format(
        provider="istio", analysis=textwrap.indent(textwrap.dedent(analysis), "    ")
    )
    extra = """\
    webhooks = { timed = "15m", smoke = "fail" }
    metric_map = { "sum(rate(clicks[1m])) / sum(rate(impressions[1m]))" = "ctr" }
    """
    scenario = load(tmp_path, text + textwrap.dedent(template), extra)
    r = scenario.rollout
    assert r.analysis is not None
    assert (r.analysis.interval, r.analysis.failure_limit) == (30.0, 4)
    assert r.sticky_by == "user"  # session affinity keeps users on the version they saw
    f = r.flagger
    assert f is not None and (f.strategy, f.max_weight, f.step_weight) == ("canary", 60.0, 15.0)
    checks = {c.name: c for c in f.checks}
    assert checks["request-success-rate"].measure.metric == "success_rate"
    assert checks["request-success-rate"].measure.scale == 100.0
    assert checks["request-duration"].max == 500.0  # the old single threshold: a maximum
    assert checks["clicks"].measure.metric == "ctr" and checks["clicks"].interval == 120.0
    hooks = {h.name: h for h in f.webhooks}
    assert hooks["approve"].opens_at == 0.0
    assert hooks["halt"].opens_at is None
    assert hooks["timed"].opens_at == 900.0
    assert hooks["smoke"].passes is False
    assert any("post-rollout webhook 'notify'" in n for n in r.manifest_notes)


def test_flagger_kubernetes_provider_runs_blue_green(tmp_path: Path) -> None:
    """With the kubernetes provider Flagger runs blue/green only (ten iterations when none
    are set); a load-test webhook's traffic is played by mirrored copies."""
    scenario = flagger(
        tmp_path,
        """\
        stepWeight: 10
        webhooks:
          - name: load-test
            url: http://flagger-loadtester.test/
        """,
        provider="kubernetes",
    )
    f = scenario.rollout.flagger
    assert f is not None and (f.strategy, f.iterations, f.mirror) == ("blue_green", 10, True)
    assert any("10 iterations" in n for n in scenario.rollout.manifest_notes)


def test_flagger_canary_without_affinity_is_sticky_by_session(tmp_path: Path) -> None:
    scenario = flagger(tmp_path, "stepWeights: [5, 25, 50]\n")
    assert scenario.rollout.sticky_by == "session"
    assert scenario.rollout.flagger is not None
    assert scenario.rollout.flagger.step_weights == [5.0, 25.0, 50.0]


def test_yaml_duplicate_and_merge_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as caught:
        load(tmp_path, "kind: Rollout\nkind: Canary\n")
    assert str(caught.value) == "m.yaml: kind (line 2) is given twice in the same mapping"
    with pytest.raises(UserInputError) as caught:
        load(tmp_path, "base: &b {kind: Rollout}\nother:\n  <<: *b\n")
    assert str(caught.value) == "m.yaml: line 3: merge keys (<<) are not read; write the fields out"
