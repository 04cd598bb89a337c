"""One recorded action of a rollout: what was done, when, why, and the numbers it saw."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Action", "Decision", "Verdict"]

Action = Literal[
    "set_weight",
    "mirror",
    "pause",
    "analysis",
    "rollback",
    "hold",
    "resume",
    "promote",
    "supersede",
]
#: An analysis result, in Argo Rollouts' words.
Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Decision:
    """``action`` at simulated time ``t_s`` (seconds), during ``step`` of ``release``.

    ``weight`` is the candidate's traffic share (percent) after the action; ``numbers`` holds
    what the rule read (e.g. ``candidate.latency_ms.p99``, ``gate.p_value``).
    """

    t_s: float
    step: int
    action: Action
    reason: str
    weight: float
    numbers: dict[str, float] = field(default_factory=dict)
    release: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "t_s": round(self.t_s, 6),
            "release": self.release,
            "step": self.step,
            "action": self.action,
            "reason": self.reason,
            "weight": self.weight,
            "numbers": {k: _round(v) for k, v in self.numbers.items()},
        }


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)
