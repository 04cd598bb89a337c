"""Argo Rollouts manifests into the lab's ``[rollout]`` table.

A ``Rollout`` with ``strategy.canary`` becomes policy ``argo_canary`` (its steps, inline
analysis steps and background analysis); with ``strategy.blueGreen``, ``argo_blue_green``.
The ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` documents it references become
``rollout.templates``, their metrics bound to lab metrics through ``rollout.metric_map``.

Where the tools' semantics need numbers the lab does not have, they are computed as the
documentation describes them:

* without ``trafficRouting``, a canary's weight is carried by pods: ``setWeight`` W with
  ``spec.replicas`` R gives the canary the whole number of pods closest to W % of R (ties
  round up), both sides keeping a pod; with ``maxSurge`` above 0 one extra pod may be added
  for a closer split — the share of traffic is the canary's share of the pods;
* ``setCanaryScale`` sets the candidate's replicas (the lab keeps them for the run).

Fields that change nothing in the lab (services, pod template, metadata, history limits,
the traffic router itself) are listed as notes; fields that would change the outcome and
cannot be played (experiments, header routes, plugins) are one-line errors.
"""

from __future__ import annotations

import math
import re
from typing import Any

from lab.manifests.context import Context, Translation, check_fields, condition
from lab.manifests.durations import go_duration, pause_duration
from lab.manifests.metric_map import range_window
from lab.manifests.yaml_source import Node

__all__ = ["basic_canary_share", "translate_argo"]

API = "argoproj.io/"
TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.\-]+)\s*\}\}")
#: Providers whose query text identifies the measurement (the metric_map key).
_QUERY_FIELDS = {
    "prometheus": "query",
    "datadog": "query",
    "newRelic": "query",
    "wavefront": "query",
    "graphite": "query",
    "influxdb": "query",
    "skywalking": "query",
    "web": "url",
}
_PROVIDERS = (*_QUERY_FIELDS, "cloudWatch", "job", "kayenta", "plugin")

SPEC_NOTES = {
    "selector": "pod selection: the lab's versions are its [models]",
    "template": "the pod template: the candidate is [models] in the scenario",
    "workloadRef": "the referenced workload: the candidate is [models] in the scenario",
    "minReadySeconds": "pods are ready at once in the lab",
    "revisionHistoryLimit": "old ReplicaSets are not kept in the lab",
    "progressDeadlineSeconds": "pods always make progress in the lab",
    "progressDeadlineAbort": "pods always make progress in the lab",
    "restartAt": "no pods to restart in the lab",
    "rollbackWindow": "the lab rehearses one update",
    "analysis": "analysis run history limits change no decision",
}
CANARY_NOTES = {
    "canaryService": "services route nothing in the lab: its router splits traffic by weight",
    "stableService": "services route nothing in the lab: its router splits traffic by weight",
    "pingPong": "services route nothing in the lab",
    "canaryMetadata": "labels and annotations change nothing here",
    "stableMetadata": "labels and annotations change nothing here",
    "antiAffinity": "no nodes to spread pods on in the lab",
    "scaleDownDelaySeconds": "the lab routes back at once and keeps every version's servers",
    "scaleDownDelayRevisionLimit": "the lab keeps every version's servers",
    "abortScaleDownDelaySeconds": "the lab keeps every version's servers",
    "dynamicStableScale": "the baseline keeps its replicas in the lab",
    "minPodsPerReplicaSet": "replicas come from [serving] and [models] in the lab",
    "maxUnavailable": "paces pods while they move, which the lab does not model",
}
BLUE_GREEN_NOTES = {
    "activeService": "services route nothing in the lab: the switch is its router's",
    "previewService": "the preview takes mirrored traffic in the lab (rollout.mirror)",
    "previewReplicaCount": "replicas come from [serving] and [models] in the lab",
    "antiAffinity": "no nodes to spread pods on in the lab",
    "activeMetadata": "labels and annotations change nothing here",
    "previewMetadata": "labels and annotations change nothing here",
    "scaleDownDelayRevisionLimit": "the lab keeps every version's servers",
    "abortScaleDownDelaySeconds": "the lab keeps every version's servers",
    "maxUnavailable": "paces pods while they move, which the lab does not model",
}
STEP_REFUSED = {
    "experiment": (
        "is an experiment (extra baseline and canary ReplicaSets beside the rollout), which "
        "the lab does not run: not supported"
    ),
    "setHeaderRoute": (
        "sends requests carrying a header to the canary whatever the weight; the lab routes "
        "by user and weight only: not supported (use a Flagger A/B test with "
        "rollout.segment_map)"
    ),
    "plugin": "runs a step plugin, whose effect the lab cannot know: not supported",
}
STEP_NOTES = {"replicaProgressThreshold": "pods are ready at once in the lab"}
STEP_KINDS = ("setWeight", "pause", "analysis", "setCanaryScale", "setMirrorRoute")
RETENTION_NOTE = "how many measurements are kept changes no decision"


def basic_canary_share(weight: float, replicas: int, surge: bool) -> float:
    """The share of traffic a basic canary (no traffic router) gets for ``setWeight``.

    The canary gets the whole number of pods closest to ``weight`` percent of the replicas,
    rounding up on a tie; while the weight is strictly between 0 and 100 both versions keep at
    least one pod (unless a single replica and no surge leaves no choice); with surge, a total
    of ``replicas + 1`` pods is also considered.  The share is canary pods / all pods.
    """
    if weight <= 0 or weight >= 100 or replicas <= 0:
        return float(min(max(weight, 0.0), 100.0))
    best: tuple[float, int, int] | None = None  # (delta, -canary, total)
    for total in (replicas, replicas + 1) if surge else (replicas,):
        exact = total * weight / 100.0
        for canary in sorted({math.floor(exact), math.ceil(exact)}):
            both_sides = 1 <= canary <= total - 1
            lone = replicas == 1 and not surge and total == 1
            if not both_sides and not lone:
                continue
            # Deltas rounded so that a true tie (1 of 3 vs 2 of 3 for 50 %) rounds up.
            key = (round(abs(100.0 * canary / total - weight), 9), -canary, total)
            if best is None or key < best:
                best = key
    if best is None:
        return float(weight)
    return round(100.0 * -best[1] / best[2], 6)


def _int_or_percent(node: Node, replicas: int, *, up: bool) -> int:
    """``maxSurge`` / ``maxUnavailable``: a count, or a percentage of the replicas."""
    value = node.value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise node.error(f"must be a count or a percentage like '25%', got {value!r}") from None
        share = replicas * percent / 100.0
        return math.ceil(share) if up else math.floor(share)
    return node.integer(lo=0)


class _Templates:
    """The manifest's analysis templates, turned into lab templates as runs use them."""

    def __init__(self, docs: list[Node], ctx: Context) -> None:
        self.ctx = ctx
        self.docs: dict[tuple[bool, str], Node] = {}
        for doc in docs:
            kind = doc.get("kind")
            if kind is None or kind.value not in TEMPLATE_KINDS:
                continue
            name = doc.require("metadata").require("name").text()
            self.docs[(kind.value == "ClusterAnalysisTemplate", name)] = doc
        self.lab: dict[str, dict[str, Any]] = {}
        self.used: set[tuple[bool, str]] = set()

    def note_unused(self) -> None:
        for key, doc in self.docs.items():
            if key not in self.used:
                kind = "ClusterAnalysisTemplate" if key[0] else "AnalysisTemplate"
                self.ctx.note(doc, f"{kind} {key[1]!r} is not used by the Rollout")

    def names(self) -> str:
        return ", ".join(sorted(name for _, name in self.docs)) or "none in the manifest"

    def run(self, ref: Node) -> dict[str, Any]:
        """A lab run (``RunRef``) for an analysis stanza (step, background, blue-green)."""
        check_fields(
            ref,
            self.ctx,
            where="an analysis",
            handled={"templates", "args", "dryRun", "startingStep"},
            notes={
                "measurementRetention": RETENTION_NOTE,
                "analysisRunMetadata": "labels and annotations change nothing here",
            },
        )
        run_args = _args(ref.require("args"), self.ctx) if ref.get("args") is not None else {}
        names: list[str] = []
        seen: set[tuple[bool, str]] = set()
        for item in ref.require("templates", "the templates the run merges").sequence():
            check_fields(
                item,
                self.ctx,
                where="a template reference",
                handled={"templateName", "clusterScope"},
            )
            self._collect(item, names, seen, run_args)
        dry_run = [rule.require("metricName").text() for rule in ref.list_of("dryRun")]
        return {"templates": names, "dry_run": dry_run}

    def _collect(
        self, item: Node, names: list[str], seen: set[tuple[bool, str]], args: dict[str, str]
    ) -> None:
        name_node = item.require("templateName")
        cluster = item.get("clusterScope")
        key = (bool(cluster.boolean()) if cluster is not None else False, name_node.text())
        if key in seen:
            return  # a template met twice along the references is kept once
        seen.add(key)
        self.used.add(key)
        doc = self.docs.get(key)
        if doc is None:
            kind = "ClusterAnalysisTemplate" if key[0] else "AnalysisTemplate"
            raise name_node.error(
                f"names {kind} {key[1]!r}, which is not in the manifest ({self.names()})"
            )
        spec = doc.require("spec")
        check_fields(
            spec,
            self.ctx,
            where="an AnalysisTemplate spec",
            handled={"metrics", "args", "dryRun", "templates"},
            notes={
                "measurementRetention": RETENTION_NOTE,
                "ttlStrategy": "finished runs are not kept in the lab",
            },
        )
        template_args = {**_defaults(spec, self.ctx), **args}
        if spec.get("metrics") is not None:
            names.append(self._translate(spec, key, template_args))
        for nested in spec.list_of("templates"):
            self._collect(nested, names, seen, args)

    def _translate(self, spec: Node, key: tuple[bool, str], args: dict[str, str]) -> str:
        dry = [rule.require("metricName").text() for rule in spec.list_of("dryRun")]
        metrics = [
            _metric(m, args, self.ctx, dry_run=any(re.match(p, _name(m)) for p in dry))
            for m in spec.require("metrics").sequence()
        ]
        table = {"metrics": metrics}
        base = ("cluster-" if key[0] else "") + key[1]
        name, k = base, 1
        while name in self.lab and self.lab[name] != table:
            k += 1
            name = f"{base}-{k}"  # the same template with other arguments
        self.lab[name] = table
        return name


def _name(metric: Node) -> str:
    return metric.require("name").text()


def _args(node: Node, ctx: Context) -> dict[str, str]:
    """``args`` of a run: values given here (``valueFrom`` cannot be read in the lab)."""
    out: dict[str, str] = {}
    for arg in node.sequence():
        name = arg.require("name").text()
        if arg.get("value") is not None:
            out[name] = arg.require("value").text()
        elif arg.get("valueFrom") is not None:
            ctx.note(arg, f"argument {name!r} comes from the cluster (valueFrom): left unread")
            out[name] = f"{{{{valueFrom {name}}}}}"
    return out


def _defaults(spec: Node, ctx: Context) -> dict[str, str]:
    args = spec.get("args")
    return {} if args is None else _args(args, ctx)


def _fill(text: str, args: dict[str, str], node: Node) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in args:
            raise node.error(
                f"uses {{{{args.{name}}}}}, which has no value: pass it in the Rollout's "
                "analysis args or give the template a default"
            )
        return args[name]

    return _ARG.sub(value, text)


def _metric(node: Node, args: dict[str, str], ctx: Context, *, dry_run: bool) -> dict[str, Any]:
    """One AnalysisTemplate metric as a lab ``RunMetric``."""
    check_fields(
        node,
        ctx,
        where="an analysis metric",
        handled={
            "name",
            "interval",
            "initialDelay",
            "count",
            "failureLimit",
            "inconclusiveLimit",
            "consecutiveErrorLimit",
            "consecutiveSuccessLimit",
            "successCondition",
            "failureCondition",
            "provider",
        },
    )
    name = _name(node)
    out: dict[str, Any] = {"name": name}
    if dry_run:
        out["dry_run"] = True
    for field, key in (("interval", "interval"), ("initialDelay", "initial_delay")):
        if node.get(field) is not None:
            out[key] = go_duration(node.require(field))
    if "interval" in out and out["interval"] < 1:
        raise node.require("interval").error(
            "must be at least 1s in the lab (it measures once a second at most)"
        )
    limits = {
        "count": ("count", 0),
        "failureLimit": ("failure_limit", -1),
        "inconclusiveLimit": ("inconclusive_limit", 0),
        "consecutiveErrorLimit": ("consecutive_error_limit", 0),
        "consecutiveSuccessLimit": ("consecutive_success_limit", 0),
    }
    for field, (key, lowest) in limits.items():
        if node.get(field) is not None:
            out[key] = node.require(field).integer(lo=lowest)
    if out.get("count", 0) > 1 and "interval" not in out:
        raise node.require("count").error("must come with an interval when above 1")
    out["success_condition"] = condition(node.get("successCondition"))
    out["failure_condition"] = condition(node.get("failureCondition"))
    provider = node.require("provider", "where the measurement comes from")
    given = [key for key, _ in provider.items()]
    if len(given) != 1 or given[0] not in _PROVIDERS:
        raise provider.error(
            f"must name exactly one provider ({', '.join(_PROVIDERS)}), "
            f"got {', '.join(given) or 'none'}"
        )
    kind = given[0]
    settings = provider.require(kind)
    if kind == "kayenta":
        out["kayenta"] = _kayenta(settings, ctx)
        return out
    query_field = _QUERY_FIELDS.get(kind)
    query = None
    if query_field is not None and settings.is_map and settings.get(query_field) is not None:
        query = _fill(settings.require(query_field).text(), args, settings.require(query_field))
    elif kind == "datadog" and settings.is_map and settings.get("queries") is not None:
        query = str(settings.require("queries").plain())
    binding = ctx.metric_map.resolve(node, name, query)
    measure = binding.model_dump(exclude_defaults=True)
    if "shape" not in binding.model_fields_set and kind == "prometheus":
        conditions = out["success_condition"] + " " + out["failure_condition"]
        if re.search(r"result\s*\[|len\(\s*result|\(\s*result\s*,", conditions):
            measure["shape"] = "vector"  # a vector query: conditions read result[0]
    if "window" not in binding.model_fields_set and query is not None:
        window = range_window(query)
        if window is not None:
            measure["window"] = window
    out["measure"] = measure
    return out


def _kayenta(settings: Node, ctx: Context) -> dict[str, Any]:
    if not ctx.has_kayenta:
        raise settings.error(
            "needs [rollout.kayenta] in the scenario: the canary configuration Kayenta scores "
            "(metrics, groups, weights) lives in Kayenta, not in the manifest"
        )
    thresholds = settings.require("thresholds")
    out: dict[str, Any] = {
        "pass_score": thresholds.require("pass").number(),
        "marginal_score": thresholds.require("marginal").number(),
    }
    if settings.get("lookback") is not None:
        out["lookback"] = settings.require("lookback").boolean()
    ctx.note(settings, "Kayenta's address, application and scopes: the lab scores its own arms")
    return out


def _steps(
    steps: Node,
    templates: _Templates,
    ctx: Context,
    *,
    exact: bool,
    replicas: int,
    surge: bool,
) -> tuple[list[dict[str, Any]], int | None]:
    """The lab steps, and the candidate's replicas set by ``setCanaryScale`` (if any)."""
    out: list[dict[str, Any]] = []
    scale: tuple[int, Node] | None = None
    for step in steps.sequence():
        keys = [key for key, _ in step.items()]
        if len(keys) != 1:
            raise step.error(
                f"must hold exactly one step kind ({', '.join(STEP_KINDS)}), got {keys}"
            )
        kind = keys[0]
        body = step.require(kind)
        if kind in STEP_REFUSED:
            raise body.error(STEP_REFUSED[kind])
        if kind in STEP_NOTES:
            ctx.note(body, STEP_NOTES[kind])
            continue
        if kind == "setWeight":
            weight = float(body.integer(lo=0, hi=100))
            share = weight if exact else basic_canary_share(weight, replicas, surge)
            if share != weight:
                ctx.note(
                    body,
                    f"setWeight {weight:g} with {replicas} replicas and no trafficRouting gives "
                    f"the canary {share:g}% of the pods, hence of the traffic",
                )
            out.append({"set_weight": share})
        elif kind == "pause":
            if body.value is not None and not body.is_map:
                raise body.error("must be a mapping ({} or {duration: 10m})")
            if body.is_map:
                check_fields(body, ctx, where="a pause", handled={"duration"})
            duration = body.get("duration") if body.is_map else None
            if duration is None:
                out.append({"pause_indefinitely": True})
            else:
                seconds = pause_duration(duration)
                if seconds > 0:
                    out.append({"pause": seconds})
                else:
                    ctx.note(duration, "a pause of 0 waits for nothing")
        elif kind == "analysis":
            out.append({"analysis": templates.run(body)})
        elif kind == "setMirrorRoute":
            check_fields(body, ctx, where="setMirrorRoute", handled={"name", "percentage", "match"})
            if body.get("match") is None:
                out.append({"mirror": 0.0})  # a route without match is removed
            else:
                percent = body.get("percentage")
                share = float(percent.integer(lo=0, hi=100)) if percent is not None else 100.0
                ctx.note(
                    body.require("match"),
                    "the lab mirrors every request, not only those the match selects",
                )
                out.append({"mirror": share})
        elif kind == "setCanaryScale":
            replicas_now = _canary_scale(body, ctx, replicas)
            if replicas_now is not None:
                if scale is not None and scale[0] != replicas_now:
                    raise body.error(
                        f"sets {replicas_now} canary replicas after {scale[0]} (line "
                        f"{scale[1].line}): the lab keeps a version's replicas for the whole "
                        "run; give every setCanaryScale the same scale"
                    )
                scale = (replicas_now, body)
        else:
            raise body.error(
                f"is not a step Argo Rollouts knows (known: "
                f"{', '.join(sorted((*STEP_KINDS, *STEP_REFUSED, *STEP_NOTES)))})"
            )
    return out, None if scale is None else scale[0]


SCALE_FORMS = ("replicas", "weight", "matchTrafficWeight")


def _canary_scale(body: Node, ctx: Context, replicas: int) -> int | None:
    """The candidate's own replica count (``models.<candidate>.replicas``) a
    ``setCanaryScale`` step sets: ``replicas: N`` is N; ``weight: W`` is Argo's
    ceil(W % of ``spec.replicas``); ``matchTrafficWeight: true`` sets none (the lab keeps the
    count of the run).  Forms the lab cannot play are one-line errors: no replica at all
    (the lab runs a version with at least one), several forms at once, ``false``."""
    if not body.is_map:
        raise body.error(f"must be a mapping with one of {', '.join(SCALE_FORMS)}")
    check_fields(body, ctx, where="setCanaryScale", handled=set(SCALE_FORMS))
    given = [key for key, _ in body.items()]
    if len(given) != 1:
        raise body.error(
            f"must hold exactly one of {', '.join(SCALE_FORMS)}, got {', '.join(given) or 'none'}"
        )
    form = body.require(given[0])
    if given[0] == "matchTrafficWeight":
        if not form.boolean():
            raise form.error(
                "is false, which sets no scale: give replicas or weight, or true to follow "
                "the traffic weight"
            )
        ctx.note(body, "the canary's scale follows its weight in Argo; the lab keeps its replicas")
        return None
    if given[0] == "replicas":
        count = form.integer(lo=0)
    else:
        weight = form.integer(lo=0, hi=100)
        count = math.ceil(replicas * weight / 100.0)
        ctx.note(
            form,
            f"setCanaryScale weight {weight} of spec.replicas {replicas} gives the canary "
            f"{count} replicas",
        )
    if count == 0:
        raise form.error(
            "scales the canary to 0 replicas: the lab runs every version on at least one "
            "replica, not supported (leave the step out, or give replicas: 1 or more)"
        )
    return count


def _spec_of(doc: Node, kind: str) -> Node:
    api = doc.get("apiVersion")
    if api is None or not api.text().startswith(API):
        raise (api or doc).error(f"must be apiVersion argoproj.io/v1alpha1 for a {kind}")
    return doc.require("spec", f"a {kind} needs its spec")


def translate_argo(docs: list[Node], ctx: Context, *, candidate: str) -> Translation:
    """The ``[rollout]`` table of the manifest's Rollout (one per manifest)."""
    rollouts = [
        d for d in docs if d.get("kind") is not None and d.require("kind").value == "Rollout"
    ]
    if len(rollouts) > 1:
        raise rollouts[1].error("is a second Rollout: the lab rehearses one per scenario")
    doc = rollouts[0]
    for other in docs:
        kind = other.get("kind")
        if other is not doc and (kind is None or kind.value not in TEMPLATE_KINDS):
            what = kind.value if kind is not None else "no kind"
            ctx.note(other, f"document of kind {what!r} is not read: it changes nothing here")
    spec = _spec_of(doc, "Rollout")
    paused = spec.get("paused")
    check_fields(
        spec,
        ctx,
        where="a Rollout spec",
        handled={"replicas", "strategy", "paused"},
        notes=SPEC_NOTES,
    )
    if paused is not None and paused.boolean():
        raise paused.error(
            "is true: a paused Rollout waits for someone before it starts; remove it to "
            "rehearse the rollout"
        )
    replicas_node = spec.get("replicas")
    replicas = 1 if replicas_node is None else replicas_node.integer(lo=0)
    strategy = spec.require("strategy", "a Rollout needs strategy.canary or strategy.blueGreen")
    kinds = [key for key, _ in strategy.items()]
    if kinds not in (["canary"], ["blueGreen"]):
        raise strategy.error(f"must hold exactly one of canary, blueGreen, got {kinds or 'none'}")
    templates = _Templates(docs, ctx)
    models: dict[str, dict[str, Any]] = {}
    if kinds == ["canary"]:
        canary = strategy.require("canary")
        rollout = _canary(canary, templates, ctx, replicas, models, candidate)
    else:
        rollout = _blue_green(strategy.require("blueGreen"), templates, ctx)
    rollout["templates"] = templates.lab
    templates.note_unused()
    return Translation(rollout, models, ctx.notes)


def _canary(
    canary: Node,
    templates: _Templates,
    ctx: Context,
    replicas: int,
    models: dict[str, dict[str, Any]],
    candidate: str,
) -> dict[str, Any]:
    check_fields(
        canary,
        ctx,
        where="strategy.canary",
        handled={"steps", "analysis", "trafficRouting", "maxSurge"},
        notes=CANARY_NOTES,
    )
    routing = canary.get("trafficRouting")
    if routing is not None:
        routers = ", ".join(key for key, _ in routing.items()) or "none"
        ctx.note(
            routing,
            f"traffic router ({routers}): the lab splits traffic by weight exactly, as a "
            "router does",
        )
    surge_node = canary.get("maxSurge")
    surge = 1 if surge_node is None else _int_or_percent(surge_node, replicas, up=True)
    if routing is not None and surge_node is not None:
        ctx.note(surge_node, "maxSurge sets pod counts only without trafficRouting")
    background = canary.get("analysis")
    steps_node = canary.get("steps")
    steps: list[dict[str, Any]] = []
    scale = None
    if steps_node is not None:
        exact = routing is not None
        steps, scale = _steps(
            steps_node, templates, ctx, exact=exact, replicas=replicas, surge=surge > 0
        )
    if scale is not None:
        models[candidate] = {"replicas": scale}
    out: dict[str, Any] = {
        "policy": "argo_canary",
        "analysis": {"failure_limit": 1, "inconclusive_limit": 1},
        "steps": steps,
    }
    if background is not None:
        run = templates.run(background)
        start = background.get("startingStep")
        run["starting_step"] = start.integer(lo=0) if start is not None else 0
        if steps and run["starting_step"] >= len(steps):
            raise (start or background).error(
                f"must name a step (0 to {len(steps) - 1}), got {run['starting_step']}"
            )
        out["background_analysis"] = run
    return out


def _blue_green(node: Node, templates: _Templates, ctx: Context) -> dict[str, Any]:
    check_fields(
        node,
        ctx,
        where="strategy.blueGreen",
        handled={
            "autoPromotionEnabled",
            "autoPromotionSeconds",
            "prePromotionAnalysis",
            "postPromotionAnalysis",
            "scaleDownDelaySeconds",
        },
        notes=BLUE_GREEN_NOTES,
    )
    settings: dict[str, Any] = {}
    enabled = node.get("autoPromotionEnabled")
    if enabled is not None:
        settings["auto_promotion_enabled"] = enabled.boolean()
    seconds = node.get("autoPromotionSeconds")
    if seconds is not None:
        if enabled is not None and not enabled.boolean():
            ctx.note(seconds, "ignored: autoPromotionEnabled is false")
        settings["auto_promotion_seconds"] = float(seconds.integer(lo=1))
    for field, key in (
        ("prePromotionAnalysis", "pre_promotion_analysis"),
        ("postPromotionAnalysis", "post_promotion_analysis"),
    ):
        ref = node.get(field)
        if ref is not None:
            settings[key] = templates.run(ref)
    delay = node.get("scaleDownDelaySeconds")
    if delay is not None:
        if "post_promotion_analysis" in settings:
            settings["scale_down_delay"] = float(delay.integer(lo=0))
        else:
            ctx.note(delay, "without post-promotion analysis it only delays freeing old pods")
    return {
        "policy": "argo_blue_green",
        "analysis": {"failure_limit": 1, "inconclusive_limit": 1},
        "blue_green": settings,
    }
