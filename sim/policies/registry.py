"""Every rollout policy by its scenario name (``rollout.policy``)."""

from __future__ import annotations

from sim.policies.adaptive import Adaptive
from sim.policies.argo_blue_green import ArgoBlueGreen
from sim.policies.argo_canary import ArgoCanary
from sim.policies.bandit import Bandit
from sim.policies.base import Policy
from sim.policies.big_bang import BigBang
from sim.policies.blue_green import BlueGreen
from sim.policies.canary import Canary
from sim.policies.flagger import Flagger
from sim.policies.settings import Rollout
from sim.policies.shadow_then_canary import ShadowThenCanary
from sim.policies.staged import Staged

__all__ = ["POLICIES", "policy_for"]

POLICIES: dict[str, type[Policy]] = {
    policy.name: policy
    for policy in (
        Canary,
        Staged,
        BigBang,
        BlueGreen,
        Adaptive,
        Bandit,
        ShadowThenCanary,
        ArgoCanary,
        ArgoBlueGreen,
        Flagger,
    )
}


def policy_for(config: Rollout) -> Policy:
    """A fresh policy object for ``config`` (one per release of a release train)."""
    return POLICIES[config.policy](config)
