"""Rollout policies (one module each, behind ``Policy``), the analysis that judges a window,
and the controller that runs a policy and records every decision.

Names load on first use: the scenario schema imports ``sim.policies.settings``, and
validating a scenario must not pay for the statistics the analysis and controller need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.policies.analysis import AnalysisResult, Analyst, Arms, ArmTotals, Evidence
    from sim.policies.base import Control, PlanStep, Policy
    from sim.policies.controller import RolloutController
    from sim.policies.decisions import Decision
    from sim.policies.registry import POLICIES, policy_for

_HOME = {
    "POLICIES": "registry",
    "AnalysisResult": "analysis",
    "Analyst": "analysis",
    "ArmTotals": "analysis",
    "Arms": "analysis",
    "Control": "base",
    "Decision": "decisions",
    "Evidence": "analysis",
    "PlanStep": "base",
    "Policy": "base",
    "RolloutController": "controller",
    "policy_for": "registry",
}

__all__ = [
    "POLICIES",
    "AnalysisResult",
    "Analyst",
    "ArmTotals",
    "Arms",
    "Control",
    "Decision",
    "Evidence",
    "PlanStep",
    "Policy",
    "RolloutController",
    "policy_for",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'sim.policies' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sim.policies.{module}"), name)
