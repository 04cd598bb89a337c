"""What a manifest's translation reads besides the manifest: the scenario's mappings, and the
notes it collects on fields that change nothing in the lab."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.manifests.expressions import ExpressionSyntaxError, parse
from lab.manifests.metric_map import MetricMap
from lab.manifests.yaml_source import Node

__all__ = ["Context", "Translation", "check_fields", "condition"]


@dataclass
class Translation:
    """The ``[rollout]`` keys a manifest sets, per-model settings, and the notes."""

    rollout: dict[str, Any]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """The scenario's side of a translation."""

    source: str
    metric_map: MetricMap
    segment_map: Mapping[str, Any]
    webhooks: Mapping[str, Any]
    has_kayenta: bool
    notes: list[str] = field(default_factory=list)

    def note(self, node: Node, text: str) -> None:
        self.notes.append(f"{node.path} (line {node.line}): {text}")


def check_fields(
    node: Node,
    ctx: Context,
    *,
    where: str,
    handled: frozenset[str] | set[str],
    notes: Mapping[str, str] | None = None,
    refused: Mapping[str, str] | None = None,
) -> None:
    """Every key of ``node`` is handled, noted (changes nothing here) or refused (would change
    the outcome and cannot be played); an unknown key is a mistake, as for the tool itself."""
    notes = notes or {}
    refused = refused or {}
    for key, child in node.items():
        if key in handled:
            continue
        if key in notes:
            ctx.note(child, notes[key])
            continue
        if key in refused:
            raise child.error(refused[key])
        known = ", ".join(sorted({*handled, *notes, *refused}))
        raise child.error(f"is not a field of {where} (known: {known})")


def condition(node: Node | None) -> str:
    """A success / failure condition's text, parsed now so a mistake names its line."""
    if node is None:
        return ""
    text = node.text()
    try:
        parse(text)
    except ExpressionSyntaxError as error:
        raise node.error(f"does not parse: {error}: {text!r}") from None
    return text
