"""How a guardrail names a declared SLO's burn rate: ``slo.<name>.burn_rate``.

Apart from :mod:`sim.slo` so that the scenario schema can check these names without loading
numpy and polars (``rollout-lab validate`` answers before either is imported).
"""

from __future__ import annotations

import re

__all__ = ["SLO_METRIC", "slo_of_metric"]

#: A guardrail on a declared SLO's burn rate in the analysis window: ``slo.<name>.burn_rate``.
SLO_METRIC = re.compile(r"^slo\.([a-z][a-z0-9_]*)\.burn_rate$")


def slo_of_metric(metric: str) -> str | None:
    """The SLO name in ``slo.<name>.burn_rate``, else None."""
    match = SLO_METRIC.match(metric)
    return match.group(1) if match else None
