"""The window metrics a rollout reads, by name: what a guardrail may bound, and what an
analysis run's measurement or a Flagger check may read (those, plus success rate and
request counts)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator

from sim.slo_names import SLO_METRIC, slo_of_metric

__all__ = ["SLO_METRIC", "GuardrailMetric", "LabMetric", "RailMetric", "slo_of_metric"]

GuardrailMetric = Literal[
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "model_latency_ms.p50",
    "model_latency_ms.p95",
    "model_latency_ms.p99",
    "timeout_rate",
    "error_rate",
    "fallback_rate",
    "cache_hit_rate",
    "ctr",
    "abandon_rate",
    "ece",
    "diversity",
    "stability",
    "degraded_rate",
]
#: Success rate: requests served without timeout or error (no fallback); request counts and
#: rates per second: what a provider query such as Flagger's request-success-rate reads.
LabMetric = Literal[GuardrailMetric, "success_rate", "requests", "request_rate_per_s"]

_RAIL_NAMES = frozenset(get_args(GuardrailMetric))


def _rail_metric(value: str) -> str:
    if value in _RAIL_NAMES or SLO_METRIC.match(value):
        return value
    names = ", ".join(repr(n) for n in get_args(GuardrailMetric))
    raise ValueError(f"must be one of {names} or 'slo.<name>.burn_rate'")


#: What a guardrail may bound: a window metric, or a declared SLO's burn rate.
RailMetric = Annotated[str, AfterValidator(_rail_metric)]
