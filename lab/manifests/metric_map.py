"""Provider queries to lab metrics: the scenario's ``rollout.metric_map``.

A manifest's metrics ask a provider (Prometheus, Datadog, New Relic...) a query; the lab has
no provider, so the scenario says which lab number each one stands for::

    [rollout.metric_map]
    success-rate = { metric = "success_rate" }                       # by metric name
    "sum(rate(http_requests_total{code=~\\"5..\\"}[5m]))" = "error_rate" # by query text

A metric is looked up by its name, then by its query (whitespace-insensitive, after the
analysis arguments are filled in).  Queries the lab wrote itself (``export``) describe their
binding — ``rollout_lab:error_rate{of="candidate",scale="1",window="5m"}`` — and need no
entry (they win over one).  Flagger's built-in ``request-success-rate`` (percent of requests
answered without error) and ``request-duration`` (p99 in ms) have defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from lab.manifests.yaml_source import ManifestError, Node
from sim.durations import format_duration
from sim.policies.run_settings import LabMetric, MetricBinding

__all__ = [
    "FLAGGER_BUILTINS",
    "MetricMap",
    "lab_query",
    "parse_lab_query",
    "range_window",
]

LAB_METRICS: tuple[str, ...] = get_args(LabMetric)
FLAGGER_BUILTINS: dict[str, MetricBinding] = {
    "request-success-rate": MetricBinding(metric="success_rate", scale=100.0),
    "request-duration": MetricBinding(metric="latency_ms.p99"),
}
_LAB_QUERY = re.compile(
    r"^rollout_lab:(?P<metric>[a-z_]+(?:\.[a-z0-9_]+)?)(?:\{(?P<labels>[^}]*)\})?$"
)
_LABEL = re.compile(r'\s*([a-z_]+)\s*=\s*"([^"]*)"\s*,?')
_RANGE = re.compile(r"\[(\d+(?:ms|s|m|h|d|w|y))(?::[^\]]*)?\]")
_PROM_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_ENTRY = TypeAdapter(MetricBinding | LabMetric)


def normalise(query: str) -> str:
    """A query with its whitespace collapsed: the form map keys are matched in."""
    return " ".join(query.split())


def lab_query(binding: MetricBinding) -> str:
    """The self-describing query the exporters write for ``binding``."""
    labels = [f'of="{binding.of}"', f'scale="{binding.scale:g}"', f'shape="{binding.shape}"']
    if binding.window is not None:
        labels.append(f'window="{format_duration(binding.window)}"')
    return f"rollout_lab:{binding.metric}{{{','.join(labels)}}}"


def parse_lab_query(query: str) -> MetricBinding | None:
    """The binding a ``rollout_lab:`` query describes (None for any other query)."""
    match = _LAB_QUERY.match(normalise(query).replace(" ", ""))
    if match is None or match.group("metric") not in LAB_METRICS:
        return None
    labels = dict(_LABEL.findall(match.group("labels") or ""))
    settings: dict[str, Any] = {"metric": match.group("metric")}
    for key in ("of", "shape", "window"):
        if key in labels:
            settings[key] = labels[key]
    if "scale" in labels:
        settings["scale"] = float(labels["scale"])
    try:
        return MetricBinding.model_validate(settings, strict=False)
    except ValidationError:
        return None


def range_window(query: str) -> float | None:
    """The look-back of a PromQL query: its last range selector (``[5m]``), in seconds."""
    found = _RANGE.findall(query)
    if not found:
        return None
    text = found[-1]
    unit = "ms" if text.endswith("ms") else text[-1]
    if unit == "y":
        return float(text[:-1]) * 365 * 86400.0
    return float(text[: -len(unit)]) * _PROM_UNITS[unit]


class MetricMap:
    """``rollout.metric_map``, validated: keys are metric names or queries."""

    def __init__(self, raw: Any, *, source: str) -> None:
        self.entries: dict[str, MetricBinding] = {}
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{source}: rollout.metric_map must be a table, got {raw!r}")
        for key, value in raw.items():
            try:
                entry = _ENTRY.validate_python(value)
            except ValidationError:
                raise ManifestError(
                    f"{source}: rollout.metric_map.{key!r} must be a lab metric "
                    f"({', '.join(LAB_METRICS)}) or a table such as "
                    '{ metric = "error_rate", of = "candidate", scale = 100, window = "5m" }, '
                    f"got {value!r}"
                ) from None
            binding = MetricBinding(metric=entry) if isinstance(entry, str) else entry
            self.entries[normalise(str(key))] = binding

    def find(self, name: str, query: str | None) -> MetricBinding | None:
        """The binding of metric ``name`` asking ``query``: a lab query says it itself; else
        by name, then by query."""
        described = parse_lab_query(query) if query is not None else None
        if described is not None:
            return described
        if name in self.entries:
            return self.entries[name]
        return self.entries.get(normalise(query)) if query is not None else None

    def resolve(
        self,
        node: Node,
        name: str,
        query: str | None,
        *,
        default: MetricBinding | None = None,
    ) -> MetricBinding:
        """The binding, or a one-line error naming the metric, its line and the fix."""
        found = self.find(name, query)
        if found is not None:
            return found
        if default is not None:
            return default
        asked = f" (query {normalise(query)[:80]!r})" if query else ""
        raise node.error(
            f"is metric {name!r}{asked}, which is not in rollout.metric_map: map its name or "
            f'query to a lab metric, e.g. [rollout.metric_map] "{name}" = "error_rate" '
            f"({', '.join(LAB_METRICS)})"
        )
