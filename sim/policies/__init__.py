"""Rollout policies (one module each, behind ``Policy``), the analysis that judges a window,
and the controller that runs a policy and records every decision."""

from sim.policies.analysis import AnalysisResult, Analyst, Arms, ArmTotals, Evidence
from sim.policies.base import Control, PlanStep, Policy
from sim.policies.controller import RolloutController
from sim.policies.decisions import Decision
from sim.policies.registry import POLICIES, policy_for

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
