"""Rollout policies and the controller that runs their analyses and decisions."""

from sim.policies.controller import Decision, RolloutController

__all__ = ["Decision", "RolloutController"]
