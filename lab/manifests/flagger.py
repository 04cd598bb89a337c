"""Flagger ``Canary`` manifests into the lab's ``[rollout]`` table (policy ``flagger``).

``spec.analysis`` gives the interval (the rollout's ``analysis.interval``), ``threshold``
(``analysis.failure_limit``) and the strategy Flagger derives from it:

* ``match`` with ``iterations`` — A/B testing: the matched requests' headers or cookies map to
  the lab's user segments through ``rollout.segment_map`` (a header name, or
  ``"header=value"``, to a list of segments: the entries of one match are ANDed, the matches
  ORed); the lab's own ``x-user-segment`` header (what ``export`` writes) needs no entry;
* ``iterations`` alone — blue/green: the canary takes no production traffic, so its checks
  read mirrored copies (with ``mirror: true``, or standing in for a load-test webhook);
* otherwise a canary release by ``stepWeight`` up to ``maxWeight``, or ``stepWeights``.

Metrics become checks (``thresholdRange``), bound to lab metrics through
``rollout.metric_map`` (Flagger's two built-in metrics have defaults); ``MetricTemplate``
documents give custom metrics their queries.  Webhooks become gates and checks; what each
answers comes from ``rollout.webhooks`` (``"pass"``, ``"fail"``, ``"open"``, ``"closed"``, or
the time a gate opens), else from the Flagger load tester's own URLs (``/gate/approve`` opens,
``/gate/halt`` and ``/gate/check`` stay closed, ``/rollback/check`` never rolls back), else
gates stay closed — a person would open them — and checks pass.
"""

from __future__ import annotations

from typing import Any

from lab.manifests.context import Context, Translation, check_fields
from lab.manifests.durations import go_duration
from lab.manifests.metric_map import FLAGGER_BUILTINS
from lab.manifests.yaml_source import ManifestError, Node
from sim.durations import parse_duration
from sim.policies.run_settings import WebhookType

__all__ = ["LAB_SEGMENT_HEADER", "translate_flagger"]

API = "flagger.app/"
#: The header ``export`` writes for target segments: its values are the segments themselves.
LAB_SEGMENT_HEADER = "x-user-segment"
SEGMENTS = ("cold", "light", "heavy")
WEBHOOK_TYPES: tuple[str, ...] = WebhookType.__args__  # type: ignore[attr-defined]
GATES = ("confirm-rollout", "confirm-traffic-increase", "confirm-promotion", "rollback")
#: Metadata keys ``export`` writes so that webhooks keep their answers on the way back.
OPENS_AT_KEY = "rollout-lab-opens-at"
ANSWER_KEY = "rollout-lab-answer"

SPEC_NOTES = {
    "targetRef": "the workload: the candidate is [models] in the scenario",
    "service": "services route nothing in the lab: its router splits traffic",
    "autoscalerRef": "replicas come from [serving] and [models] in the lab",
    "progressDeadlineSeconds": "pods always make progress in the lab",
    "ingressRef": "the ingress routes nothing in the lab",
    "routeRef": "the route routes nothing in the lab",
    "upstreamRef": "the upstream routes nothing in the lab",
    "metricsServer": "no metrics server is asked: the lab measures its own traffic",
    "revertOnDeletion": "nothing is deleted in the lab",
    "provider": "the mesh or ingress routes nothing in the lab: its router splits traffic",
}
ANALYSIS_NOTES = {
    "stepWeightPromotion": "the lab moves everyone to the new version at once on promotion",
    "alerts": "no alerts are sent in the lab",
    "primaryReadyThreshold": "pods are ready at once in the lab",
    "canaryReadyThreshold": "pods are ready at once in the lab",
}


def translate_flagger(docs: list[Node], ctx: Context) -> Translation:
    """The ``[rollout]`` table of the manifest's Canary (one per manifest)."""
    canaries = [
        d for d in docs if d.get("kind") is not None and d.require("kind").value == "Canary"
    ]
    if len(canaries) > 1:
        raise canaries[1].error("is a second Canary: the lab rehearses one per scenario")
    doc = canaries[0]
    queries: dict[str, str] = {}
    for other in docs:
        kind = other.get("kind")
        if kind is not None and kind.value == "MetricTemplate":
            name = other.require("metadata").require("name").text()
            spec = other.require("spec")
            queries[name] = spec.require("query").text()
            ctx.note(spec, f"MetricTemplate {name!r}: its provider is not asked, the lab measures")
        elif other is not doc:
            what = kind.value if kind is not None else "no kind"
            ctx.note(other, f"document of kind {what!r} is not read: it changes nothing here")
    api = doc.get("apiVersion")
    if api is None or not api.text().startswith(API):
        raise (api or doc).error("must be apiVersion flagger.app/v1beta1 for a Canary")
    spec = doc.require("spec", "a Canary needs its spec")
    provider = spec.get("provider")
    check_fields(
        spec,
        ctx,
        where="a Canary spec",
        handled={"analysis"},
        notes=SPEC_NOTES,
        refused={
            "skipAnalysis": (
                "ships the canary without its analysis: use policy big_bang to rehearse that"
            ),
            "suspend": "suspends the Canary: nothing would run",
            "canaryAnalysis": "is the v1alpha3 name of analysis: rename it to analysis",
        },
    )
    analysis = spec.require("analysis", "the canary analysis Flagger runs")
    kubernetes = provider is not None and provider.value == "kubernetes"
    return _analysis(analysis, ctx, queries, kubernetes=kubernetes)


def _analysis(
    node: Node, ctx: Context, queries: dict[str, str], *, kubernetes: bool
) -> Translation:
    check_fields(
        node,
        ctx,
        where="a Canary analysis",
        handled={
            "interval",
            "threshold",
            "maxWeight",
            "stepWeight",
            "stepWeights",
            "iterations",
            "mirror",
            "mirrorWeight",
            "sessionAffinity",
            "match",
            "metrics",
            "webhooks",
        },
        notes=ANALYSIS_NOTES,
    )
    interval = 60.0
    if node.get("interval") is not None:
        interval = max(go_duration(node.require("interval")), 10.0)  # Flagger's floor: 10 s
    threshold = node.require("threshold").integer(lo=1) if node.get("threshold") else 1
    settings: dict[str, Any] = {}
    for field, key in (("maxWeight", "max_weight"), ("stepWeight", "step_weight")):
        if node.get(field) is not None:
            settings[key] = float(node.require(field).integer(lo=0, hi=100))
    if node.get("stepWeights") is not None:
        weights = [float(w.integer(lo=1, hi=100)) for w in node.require("stepWeights").sequence()]
        settings["step_weights"] = weights
    iterations = node.require("iterations").integer(lo=0) if node.get("iterations") else 0
    mirror_node = node.get("mirror")
    mirror = mirror_node.boolean() if mirror_node is not None else False
    if node.get("mirrorWeight") is not None:
        settings["mirror_weight"] = float(node.require("mirrorWeight").integer(lo=1, hi=100))
    match = node.get("match")
    rollout: dict[str, Any] = {
        "policy": "flagger",
        "analysis": {"interval": interval, "failure_limit": threshold},
    }
    webhooks = [_webhook(h, ctx) for h in node.list_of("webhooks")]
    load_test = any(h["type"] == "rollout" for h in webhooks)
    if kubernetes and match is not None:
        ctx.note(match, "A/B testing is not possible with the kubernetes provider: ignored")
        match = None
    if kubernetes and iterations < 1:
        ctx.note(node, "the kubernetes provider only runs blue/green: 10 iterations, as Flagger")
        iterations = 10
    if match is not None:
        if iterations < 1:
            raise match.error("needs analysis.iterations: A/B testing runs that many checks")
        settings["strategy"] = "ab_testing"
        rollout["target_segments"] = _segments(match, ctx)
        for field in ("maxWeight", "stepWeight", "stepWeights"):
            if node.get(field) is not None:
                ctx.note(node.require(field), "ignored: A/B testing routes by match")
    elif iterations > 0:
        settings["strategy"] = "blue_green"
        if not mirror and load_test:
            mirror = True
            ctx.note(
                node,
                "blue/green without mirroring: the load test's traffic to the canary is played "
                "by mirrored copies of production traffic",
            )
        elif not mirror:
            ctx.note(
                node,
                "blue/green without mirroring or a load test: the canary gets no traffic, and "
                "its checks find no values",
            )
    elif not settings.get("step_weight") and not settings.get("step_weights"):
        raise node.error(
            "needs stepWeight or stepWeights for a canary release (or iterations for A/B "
            "testing and blue/green)"
        )
    if iterations:
        settings["iterations"] = iterations
    if mirror:
        settings["mirror"] = True
    affinity = node.get("sessionAffinity")
    if affinity is not None:
        rollout["sticky_by"] = "user"
        ctx.note(
            affinity,
            "session affinity: the lab keeps each user on the version they first saw (sticky "
            "by user)",
        )
    elif settings.get("strategy", "canary") == "canary":
        rollout["sticky_by"] = "session"
        ctx.note(
            node,
            "Flagger splits requests by weight; the lab's finest unit is a session (sticky by "
            "session)",
        )
    settings["checks"] = [_check(m, ctx, queries) for m in node.list_of("metrics")]
    settings["webhooks"] = webhooks
    rollout["flagger"] = settings
    return Translation(rollout, {}, ctx.notes)


def _check(node: Node, ctx: Context, queries: dict[str, str]) -> dict[str, Any]:
    check_fields(
        node,
        ctx,
        where="a Canary metric",
        handled={"name", "thresholdRange", "threshold", "interval", "templateRef", "query"},
        notes={"templateVariables": "fill the query's variables: the lab reads the metric map"},
    )
    name = node.require("name").text()
    query = None
    if node.get("templateRef") is not None:
        ref = node.require("templateRef")
        template = ref.require("name").text()
        if template not in queries:
            known = ", ".join(sorted(queries)) or "none in the manifest"
            raise ref.require("name").error(
                f"names MetricTemplate {template!r}, which is not in the manifest ({known})"
            )
        query = queries[template]
    elif node.get("query") is not None:
        query = node.require("query").text()
    binding = ctx.metric_map.resolve(node, name, query, default=FLAGGER_BUILTINS.get(name))
    out: dict[str, Any] = {"name": name, "measure": binding.model_dump(exclude_defaults=True)}
    bounds = node.get("thresholdRange")
    if bounds is not None:
        check_fields(bounds, ctx, where="a thresholdRange", handled={"min", "max"})
        for key in ("min", "max"):
            if bounds.get(key) is not None:
                out[key] = bounds.require(key).number()
        if "min" not in out and "max" not in out:
            raise bounds.error("must set min or max")
    elif node.get("threshold") is not None:
        # The old single threshold: a minimum for the success rate, a maximum otherwise.
        key = "min" if name == "request-success-rate" else "max"
        out[key] = node.require("threshold").number()
    else:
        raise node.error("needs thresholdRange (min and / or max): Flagger checks against it")
    if node.get("interval") is not None:
        out["interval"] = go_duration(node.require("interval"))
        if out["interval"] < 1:
            raise node.require("interval").error(
                "must be at least 1s in the lab (it measures once a second at most)"
            )
    return out


def _webhook(node: Node, ctx: Context) -> dict[str, Any]:
    check_fields(
        node,
        ctx,
        where="a webhook",
        handled={"name", "type", "url", "metadata"},
        notes={
            "timeout": "the lab's webhooks answer at once",
            "retries": "the lab's webhooks answer at once",
            "muteAlert": "no alerts are sent in the lab",
            "disableTLS": "no webhook is called in the lab",
        },
    )
    name = node.require("name").text()
    kind = node.require("type").text() if node.get("type") is not None else "rollout"
    if kind not in WEBHOOK_TYPES:
        raise node.require("type").error(f"must be one of {', '.join(WEBHOOK_TYPES)}, got {kind!r}")
    out: dict[str, Any] = {"name": name, "type": kind}
    answer = _answer(node, ctx, name, kind)
    if kind in GATES:
        out["opens_at"] = answer
    else:
        out["passes"] = answer != "fail"
    if kind in ("post-rollout", "event"):
        ctx.note(node, f"{kind} webhook {name!r}: called after decisions, changes none")
    return out


def _answer(node: Node, ctx: Context, name: str, kind: str) -> Any:
    """What the webhook answers in the lab: for gates the time they open (None: never)."""
    metadata = node.get("metadata")
    given: Any = ctx.webhooks.get(name)
    if given is None and metadata is not None and metadata.is_map:
        if metadata.get(OPENS_AT_KEY) is not None:
            given = metadata.require(OPENS_AT_KEY).text()
        elif metadata.get(ANSWER_KEY) is not None:
            given = metadata.require(ANSWER_KEY).text()
    if given is None:
        url_node = node.get("url")
        url = url_node.text() if url_node is not None else ""
        if kind not in GATES:
            return "pass"
        if url.rstrip("/").endswith("/gate/approve"):
            return 0.0
        if kind != "rollback" and not url.rstrip("/").endswith(("/gate/halt", "/gate/check")):
            ctx.note(node, f"gate {name!r} stays closed: map it in rollout.webhooks to open it")
        return None
    if kind not in GATES:
        if given not in ("pass", "fail"):
            raise _bad_answer(ctx, name, given, "'pass' or 'fail' for a check")
        return given
    if given == "open":
        return 0.0
    if given == "closed":
        return None
    try:
        return parse_duration(given)
    except ValueError:
        raise _bad_answer(
            ctx, name, given, "'open', 'closed' or the time it opens (e.g. '15m') for a gate"
        ) from None


def _bad_answer(ctx: Context, name: str, given: Any, expected: str) -> ManifestError:
    return ManifestError(
        f"{ctx.source}: rollout.webhooks.{name!r} must be {expected}, got {given!r}"
    )


def _segments(match: Node, ctx: Context) -> list[str]:
    """The user segments the match conditions select (entries ORed, headers ANDed)."""
    chosen: set[str] = set()
    for entry in match.sequence():
        check_fields(
            entry,
            ctx,
            where="a match condition",
            handled={"headers"},
            refused={
                "sourceLabels": "matches calling workloads' labels, which the lab does not have",
                "uri": "matches request paths, which the lab does not have",
                "queryParams": "matches query parameters, which the lab does not have",
            },
        )
        within: set[str] | None = None
        for header, rule in entry.require("headers").items():
            segments = _header_segments(header, rule, ctx)
            within = segments if within is None else within & segments
        chosen |= within or set()
    if not chosen:
        raise match.error("selects no user segment: check rollout.segment_map")
    return [s for s in SEGMENTS if s in chosen]


def _header_segments(header: str, rule: Node, ctx: Context) -> set[str]:
    kinds = [key for key, _ in rule.items()]
    if len(kinds) != 1 or kinds[0] not in ("exact", "prefix", "suffix", "regex"):
        raise rule.error(f"must hold one of exact, prefix, suffix, regex, got {kinds}")
    value = rule.require(kinds[0]).text()
    name = header.lower()
    for key in (f"{name}={value}", name):
        if key in ctx.segment_map:
            found = ctx.segment_map[key]
            wrong = [s for s in found if s not in SEGMENTS] if isinstance(found, list) else found
            if not isinstance(found, list) or wrong:
                raise ManifestError(
                    f"{ctx.source}: rollout.segment_map.{key!r} must be a list of segments "
                    f"({', '.join(SEGMENTS)}), got {found!r}"
                )
            return set(found)
    if name == LAB_SEGMENT_HEADER and kinds[0] == "exact" and value in SEGMENTS:
        return {value}
    raise rule.error(
        f"matches header {name!r} ({kinds[0]} {value!r}), which is not in rollout.segment_map: "
        f'map it to user segments, e.g. segment_map = {{ "{name}" = ["heavy"] }} '
        f"({', '.join(SEGMENTS)})"
    )
