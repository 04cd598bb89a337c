"""The window metrics a rollout reads, by name: what a guardrail may bound, and what an
analysis run's measurement or a Flagger check may read (those, plus success rate and
request counts)."""

from __future__ import annotations

from typing import Literal

__all__ = ["GuardrailMetric", "LabMetric"]

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
]
#: Success rate: requests served without timeout or error (no fallback); request counts and
#: rates per second: what a provider query such as Flagger's request-success-rate reads.
LabMetric = Literal[GuardrailMetric, "success_rate", "requests", "request_rate_per_s"]
