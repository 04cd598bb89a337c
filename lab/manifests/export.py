"""A scenario's rollout policy written as an Argo Rollouts or a Flagger manifest.

``export_argo`` writes a ``Rollout`` (and its ``AnalysisTemplate``s) for the policies
``argo_canary``, ``argo_blue_green`` and ``staged``; ``export_flagger`` a ``Canary`` (and its
``MetricTemplate``s) for ``flagger``.  Reading the written manifest back gives the same
policy: queries are the lab's own self-describing ones
(``rollout_lab:error_rate{of="candidate",...}``), target segments travel in the lab's
``x-user-segment`` header, and webhook answers in the webhook's metadata.  What a manifest
cannot say (a staged ramp's sequential gate) is listed in the file's opening comment.
"""

from __future__ import annotations

import math
import re
from typing import Any, cast

import yaml

from lab.manifests.flagger import ANSWER_KEY, LAB_SEGMENT_HEADER, OPENS_AT_KEY
from lab.manifests.metric_map import FLAGGER_BUILTINS, lab_query
from lab.scenario import Scenario
from replay.errors import UserInputError
from sim.policies.run_settings import (
    AnalysisTemplate,
    FlaggerCheck,
    LabMetric,
    MetricBinding,
    RunMetric,
    RunRef,
    Webhook,
)
from sim.policies.settings import Guardrail, Rollout
from sim.slo import slo_of_metric

__all__ = ["EXPORT_MARKER", "export_argo", "export_flagger"]

#: The first comment line of every exported manifest says who wrote it: ``export --out``
#: replaces a file only when it carries this.
EXPORT_MARKER = "manifest written by rollout-lab"

PROMETHEUS = "http://prometheus.example.com:9090"
LOAD_TESTER = "http://flagger-loadtester.test"
ARGO_POLICIES = ("argo_canary", "argo_blue_green", "staged")


def _go(seconds: float) -> str:
    """Seconds as a Go duration (``90s``, ``5m``, ``2h``, ``250ms``)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _whole(value: float, what: str, source: str) -> int:
    if not float(value).is_integer():
        raise UserInputError(
            f"{source}: {what} is {value:g}, but the manifest takes whole numbers: round it "
            "in the scenario first"
        )
    return int(value)


def _name(scenario: Scenario) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", scenario.name.lower()).strip("-")[:63] or "rollout"


def _dump(documents: list[dict[str, Any]], header: list[str]) -> str:
    comment = "".join(f"# {line}\n" for line in header)
    body: str = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
    return comment + body


# --- Argo Rollouts -------------------------------------------------------------------------


def _argo_metric(metric: RunMetric) -> dict[str, Any]:
    out: dict[str, Any] = {"name": metric.name}
    if metric.interval is not None:
        out["interval"] = _go(metric.interval)
    if metric.initial_delay:
        out["initialDelay"] = _go(metric.initial_delay)
    if metric.count is not None:
        out["count"] = metric.count
    for key, field, default in (
        ("failureLimit", "failure_limit", 0),
        ("inconclusiveLimit", "inconclusive_limit", 0),
        ("consecutiveErrorLimit", "consecutive_error_limit", 4),
        ("consecutiveSuccessLimit", "consecutive_success_limit", 0),
    ):
        value = getattr(metric, field)
        if value != default:
            out[key] = value
    if metric.success_condition:
        out["successCondition"] = metric.success_condition
    if metric.failure_condition:
        out["failureCondition"] = metric.failure_condition
    if metric.kayenta is not None:
        out["provider"] = {
            "kayenta": {
                "address": "https://kayenta.example.com",
                "application": "recommender",
                "canaryConfigName": "rollout-lab",
                "thresholds": {
                    "pass": metric.kayenta.pass_score,
                    "marginal": metric.kayenta.marginal_score,
                },
                **({"lookback": True} if metric.kayenta.lookback else {}),
                "scopes": [{"name": "default"}],
            }
        }
    else:
        assert metric.measure is not None
        out["provider"] = {
            "prometheus": {"address": PROMETHEUS, "query": lab_query(metric.measure)}
        }
    return out


def _argo_templates(
    templates: dict[str, AnalysisTemplate], used: list[str]
) -> list[dict[str, Any]]:
    documents = []
    for name in used:
        template = templates[name]
        spec: dict[str, Any] = {"metrics": [_argo_metric(m) for m in template.metrics]}
        dry = [m.name for m in template.metrics if m.dry_run]
        if dry:
            spec["dryRun"] = [{"metricName": re.escape(n)} for n in dry]
        documents.append(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    return documents


def _argo_run(ref: RunRef, used: list[str]) -> dict[str, Any]:
    for name in ref.templates:
        if name not in used:
            used.append(name)
    out: dict[str, Any] = {"templates": [{"templateName": n} for n in ref.templates]}
    if ref.dry_run:
        out["dryRun"] = [{"metricName": rule} for rule in ref.dry_run]
    return out


def _guardrail_template(rollout: Rollout) -> tuple[AnalysisTemplate, list[str]]:
    """A staged ramp's guardrails as one analysis template, and what differs."""
    analysis = rollout.analysis
    assert analysis is not None
    metrics = [
        _guardrail_metric(i, guard, analysis.interval, analysis.failure_limit)
        for i, guard in enumerate(rollout.guardrails)
        if slo_of_metric(guard.metric) is None
    ]
    notes = [
        f"guardrails: failure_limit {analysis.failure_limit} counts failed analyses over all "
        "guardrails in the lab, each metric's own failureLimit in Argo Rollouts"
    ]
    notes.extend(
        f"guardrails: {guard.metric} (an SLO's burn rate) left out: no provider query measures it"
        for guard in rollout.guardrails
        if slo_of_metric(guard.metric) is not None
    )
    return AnalysisTemplate(metrics=metrics), notes


def _guardrail_metric(i: int, guard: Guardrail, interval: float, failure_limit: int) -> RunMetric:
    bounds = (guard.min_relative_to_baseline, guard.max_relative_to_baseline)
    relative = any(bound is not None for bound in bounds)
    conditions = []
    if guard.max is not None:
        conditions.append(f"result <= {guard.max!r}")
    if guard.min is not None:
        conditions.append(f"result >= {guard.min!r}")
    if guard.max_relative_to_baseline is not None:
        conditions.append(f"result <= {1 + guard.max_relative_to_baseline!r}")
    if guard.min_relative_to_baseline is not None:
        conditions.append(f"result >= {1 + guard.min_relative_to_baseline!r}")
    metric = cast(LabMetric, guard.metric)  # SLO burn rates are left out by the caller
    binding = MetricBinding(metric=metric, of="ratio" if relative else "candidate")
    return RunMetric(
        name=f"guardrail-{i}-{guard.metric.replace('.', '-').replace('_', '-')}",
        measure=binding,
        interval=interval,
        failure_limit=failure_limit - 1,
        success_condition=" && ".join(conditions),
    )


def _argo_steps(rollout: Rollout, used: list[str], source: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(rollout.steps):
        where = f"rollout.steps[{i}]"
        if step.set_weight is not None:
            steps.append({"setWeight": _whole(step.set_weight, f"{where}.set_weight", source)})
        elif step.pause is not None:
            seconds = _whole(step.pause, f"{where}.pause (seconds)", source)
            steps.append({"pause": {"duration": _go(seconds)}})
        elif step.pause_indefinitely:
            steps.append({"pause": {}})
        elif step.mirror is not None:
            route: dict[str, Any] = {"name": "rollout-lab-mirror"}
            if step.mirror > 0:
                route["percentage"] = _whole(step.mirror, f"{where}.mirror", source)
                route["match"] = [{"method": {"regex": ".*"}}]
            steps.append({"setMirrorRoute": route})
        elif step.analysis is not None:
            steps.append({"analysis": _argo_run(step.analysis, used)})
    return steps


def export_argo(scenario: Scenario, *, source: str) -> str:
    """The scenario's policy as an Argo Rollouts ``Rollout`` manifest (YAML text)."""
    rollout = scenario.rollout
    if rollout.policy not in ARGO_POLICIES:
        raise UserInputError(
            f"{source}: rollout.policy {rollout.policy!r} has no Argo Rollouts form here; "
            f"export argo writes policies {', '.join(ARGO_POLICIES)}"
        )
    name = _name(scenario)
    header = [f"Argo Rollouts {EXPORT_MARKER} from {source} ({scenario.name})."]
    used: list[str] = []
    templates = dict(rollout.templates)
    replicas = scenario.models[rollout.candidate].replicas
    if rollout.policy == "argo_blue_green":
        strategy = {"blueGreen": _argo_blue_green(rollout, name, used)}
    else:
        canary: dict[str, Any] = {
            "canaryService": f"{name}-canary",
            "stableService": f"{name}-stable",
            # With a traffic router the weights are exact, as they are in the lab.
            "trafficRouting": {
                "nginx": {"stableIngress": name},
                "managedRoutes": [{"name": "rollout-lab-mirror"}],
            },
        }
        if rollout.policy == "staged":
            header.append("From policy staged; what Argo Rollouts cannot say:")
            if rollout.gate is not None:
                header.append("- the mSPRT gate on CTR (no sequential test in Argo Rollouts)")
            if rollout.guardrails and rollout.analysis is not None:
                templates["guardrails"], notes = _guardrail_template(rollout)
                header += [f"- {n}" for n in notes]
                canary["analysis"] = _argo_run(RunRef(templates=["guardrails"]), used)
        elif rollout.background_analysis is not None:
            background_run = _argo_run(rollout.background_analysis, used)
            if rollout.background_analysis.starting_step:
                background_run["startingStep"] = rollout.background_analysis.starting_step
            canary["analysis"] = background_run
        steps = _argo_steps(rollout, used, source)
        if replicas is not None:
            steps.insert(0, {"setCanaryScale": {"replicas": replicas}})
        canary["steps"] = steps
        strategy = {"canary": canary}
    document = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{rollout.candidate}:latest"}]},
            },
            "strategy": strategy,
        },
    }
    if rollout.kayenta is not None:
        header.append("Keep [rollout.kayenta] in the scenario: it is Kayenta's canary config.")
    return _dump([document, *_argo_templates(templates, used)], header)


def _argo_blue_green(rollout: Rollout, name: str, used: list[str]) -> dict[str, Any]:
    settings = rollout.blue_green
    assert settings is not None
    out: dict[str, Any] = {
        "activeService": f"{name}-active",
        "previewService": f"{name}-preview",
    }
    if not settings.auto_promotion_enabled:
        out["autoPromotionEnabled"] = False
    if settings.auto_promotion_seconds is not None:
        out["autoPromotionSeconds"] = math.ceil(settings.auto_promotion_seconds)
    if settings.pre_promotion_analysis is not None:
        out["prePromotionAnalysis"] = _argo_run(settings.pre_promotion_analysis, used)
    if settings.post_promotion_analysis is not None:
        out["postPromotionAnalysis"] = _argo_run(settings.post_promotion_analysis, used)
        if settings.scale_down_delay is not None:
            out["scaleDownDelaySeconds"] = math.ceil(settings.scale_down_delay)
    return out


# --- Flagger ---------------------------------------------------------------------------------


def _flagger_check(
    check: FlaggerCheck, templates: list[dict[str, Any]], namespace: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": check.name}
    builtin = FLAGGER_BUILTINS.get(check.name)
    if builtin is None or builtin != check.measure:
        out["templateRef"] = {"name": check.name}
        templates.append(
            {
                "apiVersion": "flagger.app/v1beta1",
                "kind": "MetricTemplate",
                "metadata": {"name": check.name, "namespace": namespace},
                "spec": {
                    "provider": {"type": "prometheus", "address": PROMETHEUS},
                    "query": lab_query(check.measure),
                },
            }
        )
    bounds = {k: v for k, v in (("min", check.min), ("max", check.max)) if v is not None}
    out["thresholdRange"] = bounds
    if check.interval is not None:
        out["interval"] = _go(check.interval)
    return out


def _flagger_webhook(hook: Webhook) -> dict[str, Any]:
    """A webhook whose answer survives the way back: the load tester's own URLs where they
    say it, the lab's metadata keys where they cannot."""
    out: dict[str, Any] = {"name": hook.name, "type": hook.type}
    if hook.type == "rollback":
        out["url"] = f"{LOAD_TESTER}/rollback/check"
        if hook.opens_at is not None:
            out["metadata"] = {OPENS_AT_KEY: _go(hook.opens_at)}
    elif hook.type.startswith("confirm-"):
        if hook.opens_at == 0:
            out["url"] = f"{LOAD_TESTER}/gate/approve"
        else:
            out["url"] = f"{LOAD_TESTER}/gate/check"
            if hook.opens_at is not None:
                out["metadata"] = {OPENS_AT_KEY: _go(hook.opens_at)}
    else:
        out["url"] = f"{LOAD_TESTER}/"
        if not hook.passes:
            out["metadata"] = {ANSWER_KEY: "fail"}
    return out


def export_flagger(scenario: Scenario, *, source: str) -> str:
    """The scenario's policy as a Flagger ``Canary`` manifest (YAML text)."""
    rollout = scenario.rollout
    if rollout.policy != "flagger" or rollout.flagger is None or rollout.analysis is None:
        raise UserInputError(
            f"{source}: rollout.policy {rollout.policy!r} has no Flagger form here; export "
            "flagger writes policy flagger"
        )
    settings = rollout.flagger
    name, namespace = _name(scenario), "default"
    analysis: dict[str, Any] = {
        "interval": _go(rollout.analysis.interval),
        "threshold": rollout.analysis.failure_limit,
    }
    if settings.strategy == "canary":
        if settings.step_weights:
            analysis["stepWeights"] = [
                _whole(w, "rollout.flagger.step_weights", source) for w in settings.step_weights
            ]
        else:
            analysis["maxWeight"] = _whole(
                settings.max_weight, "rollout.flagger.max_weight", source
            )
            analysis["stepWeight"] = _whole(
                settings.step_weight, "rollout.flagger.step_weight", source
            )
        if rollout.sticky_by == "user":
            analysis["sessionAffinity"] = {"cookieName": "rollout-lab"}
    else:
        analysis["iterations"] = settings.iterations
    if settings.mirror:
        analysis["mirror"] = True
        if settings.mirror_weight != 100:
            analysis["mirrorWeight"] = _whole(
                settings.mirror_weight, "rollout.flagger.mirror_weight", source
            )
    if settings.strategy == "ab_testing":
        analysis["match"] = [
            {"headers": {LAB_SEGMENT_HEADER: {"exact": segment}}}
            for segment in rollout.target_segments
        ]
    templates: list[dict[str, Any]] = []
    analysis["metrics"] = [_flagger_check(c, templates, namespace) for c in settings.checks]
    if settings.webhooks:
        analysis["webhooks"] = [_flagger_webhook(h) for h in settings.webhooks]
    document = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80},
            "analysis": analysis,
        },
    }
    header = [f"Flagger {EXPORT_MARKER} from {source} ({scenario.name})."]
    return _dump([document, *templates], header)
