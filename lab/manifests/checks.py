"""Cross-checks of the ``[rollout]`` settings of the policies that speak Argo Rollouts and
Flagger (and of a Kayenta judge): each raises ``Inconsistent`` with its own path, which the
scenario loader turns into one line naming the file and the dotted path."""

from __future__ import annotations

import re

from lab.manifests.expressions import ExpressionSyntaxError, parse
from sim.policies.run_settings import RunRef
from sim.policies.settings import Rollout
from sim.schema import Inconsistent

__all__ = ["check_rollout"]

ARGO = ("argo_canary", "argo_blue_green")
#: Policies that read ``rollout.steps``.
STEPPED = ("staged", "argo_canary")
#: The table each of these policies needs, and that no other policy may set.
OWN_TABLE = {"argo_blue_green": "blue_green", "flagger": "flagger"}


def check_rollout(rollout: Rollout) -> None:
    """Raise ``Inconsistent`` (path under ``rollout``) at the first contradiction."""
    policy = rollout.policy
    _check_tables(rollout)
    for i, step in enumerate(rollout.steps):
        if step.analysis is not None and policy != "argo_canary":
            raise Inconsistent(
                ("steps", i, "analysis"),
                f"is a step of policy 'argo_canary' only (policy is {policy!r})",
                "{...}",
            )
        if step.analysis is not None:
            _check_run(rollout, step.analysis, ("steps", i, "analysis"))
    if (policy in ARGO or policy == "flagger") and rollout.analysis is None:
        raise Inconsistent(
            ("analysis",),
            f'must be set for policy {policy!r} (e.g. analysis = {{ interval = "1m" }})',
            None,
        )
    if policy in ARGO:
        assert rollout.analysis is not None
        for limit in ("failure_limit", "inconclusive_limit"):
            if getattr(rollout.analysis, limit) != 1:
                raise Inconsistent(
                    ("analysis", limit),
                    f"must be 1 for policy {policy!r} (one failed or inconclusive analysis run "
                    "aborts or pauses the rollout; the runs' metrics carry their own limits)",
                    getattr(rollout.analysis, limit),
                )
    background = rollout.background_analysis
    if background is not None:
        _check_run(rollout, background, ("background_analysis",))
        if rollout.steps and background.starting_step >= len(rollout.steps):
            raise Inconsistent(
                ("background_analysis", "starting_step"),
                f"must name a step (0 to {len(rollout.steps) - 1})",
                background.starting_step,
            )
    if rollout.blue_green is not None:
        for name in ("pre_promotion_analysis", "post_promotion_analysis"):
            ref = getattr(rollout.blue_green, name)
            if ref is not None:
                _check_run(rollout, ref, ("blue_green", name))
    ab_testing = rollout.flagger is not None and rollout.flagger.strategy == "ab_testing"
    if ab_testing and not rollout.target_segments:
        raise Inconsistent(
            ("target_segments",),
            "must name the matched users' segments for Flagger A/B testing",
            [],
        )
    _check_templates(rollout)
    if rollout.kayenta is not None and policy not in ARGO and policy != "flagger":
        if rollout.gate is not None or rollout.guardrails:
            raise Inconsistent(
                ("kayenta",),
                "judges the analysis in place of gate and guardrails: set one or the other",
                "[rollout.kayenta]",
            )
        if rollout.analysis is None:
            raise Inconsistent(
                ("analysis",), 'must be set with rollout.kayenta (e.g. { interval = "10m" })', None
            )


def _check_tables(rollout: Rollout) -> None:
    policy = rollout.policy
    if rollout.steps and policy not in STEPPED:
        raise Inconsistent(
            ("steps",),
            f"must be empty unless policy is 'staged' or 'argo_canary' (policy is {policy!r})",
            "[...]",
        )
    if policy in STEPPED and not rollout.steps and policy == "staged":
        raise Inconsistent(("steps",), "must be a non-empty list for policy 'staged'", [])
    if rollout.background_analysis is not None and policy != "argo_canary":
        raise Inconsistent(
            ("background_analysis",),
            f"is for policy 'argo_canary' only (policy is {policy!r})",
            "{...}",
        )
    for owner, table in OWN_TABLE.items():
        given = getattr(rollout, table) is not None
        if policy == owner and not given:
            raise Inconsistent((table,), f"must be set for policy {owner!r}", None)
        if policy != owner and given:
            raise Inconsistent(
                (table,), f"is for policy {owner!r} only (policy is {policy!r})", "{...}"
            )


def _check_run(rollout: Rollout, ref: RunRef, path: tuple[str | int, ...]) -> None:
    """Templates exist, merged metric names are unique, dry-run rules match a metric."""
    names: list[str] = []
    for i, template in enumerate(ref.templates):
        if template not in rollout.templates:
            known = ", ".join(sorted(rollout.templates)) or "none"
            raise Inconsistent(
                (*path, "templates", i),
                f"must name a template in rollout.templates ({known})",
                template,
            )
        names += [m.name for m in rollout.templates[template].metrics]
    for name in names:
        if names.count(name) > 1:
            raise Inconsistent(
                (*path, "templates"),
                f"must not merge two metrics named {name!r} (Argo Rollouts refuses that)",
                ref.templates,
            )
    for i, rule in enumerate(ref.dry_run):
        try:
            pattern = re.compile(rule)
        except re.error as error:
            raise Inconsistent(
                (*path, "dry_run", i), f"must be a regular expression ({error})", rule
            ) from None
        if not any(pattern.match(name) for name in names):
            raise Inconsistent(
                (*path, "dry_run", i), "must match a metric of the run's templates", rule
            )


def _check_templates(rollout: Rollout) -> None:
    """Every condition parses; a Kayenta metric has a canary configuration to score."""
    for name, template in rollout.templates.items():
        for i, metric in enumerate(template.metrics):
            for field in ("success_condition", "failure_condition"):
                text = getattr(metric, field)
                if not text:
                    continue
                try:
                    parse(text)
                except ExpressionSyntaxError as error:
                    raise Inconsistent(
                        ("templates", name, "metrics", i, field),
                        f"must be a condition ({error})",
                        text,
                    ) from None
            if metric.kayenta is not None and rollout.kayenta is None:
                raise Inconsistent(
                    ("templates", name, "metrics", i, "kayenta"),
                    "needs rollout.kayenta (the canary configuration Kayenta scores)",
                    "{...}",
                )
