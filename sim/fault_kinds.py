"""The kinds of fault a scenario may schedule (``sim.faults`` runs them).

Apart from ``sim.faults`` so that the scenario schema can name them without loading the
simulator.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["FAULT_KINDS", "FaultKind"]

FaultKind = Literal[
    "latency_spike", "error_burst", "replica_crash", "capacity_loss", "misroute", "cache_loss"
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency_spike",
    "error_burst",
    "replica_crash",
    "capacity_loss",
    "misroute",
    "cache_loss",
)
