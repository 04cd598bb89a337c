"""rollout-lab: rehearse recommender-model rollouts offline.

The composition root: the ``rollout-lab`` command line (``rollout_lab.cli``) and the public
Python surface, declared here so that a notebook starts with ``import rollout_lab``::

    import rollout_lab

    scenario = rollout_lab.load_scenario("scenarios/quickstart.toml", ["traffic.duration=30m"])
    result = rollout_lab.run(scenario)
    result.requests                      # polars DataFrame, one row per request
    result.controller.decisions          # the decision trace

    prepared = rollout_lab.prepare(rollout_lab.load_scenario("scenarios/aa_test.toml"))
    outcomes = rollout_lab.replicate(prepared, range(200))
    rollout_lab.operating_characteristics(outcomes, "same")["false_rollback"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.artifacts import open_store
    from lab.operating import ReplicationOutcome, operating_characteristics, replicate
    from lab.pipeline import Prepared, RunResult, prepare, run, simulate_prepared
    from lab.scenario import Scenario, load_scenario, parse_scenario
    from replay.errors import UserInputError

# Where each public name lives.  Loaded on first use, so that ``rollout-lab --help`` and the
# cheap refusals never pay for numpy, polars, implicit and matplotlib.
_PUBLIC = {
    "Prepared": "lab.pipeline",
    "ReplicationOutcome": "lab.operating",
    "RunResult": "lab.pipeline",
    "Scenario": "lab.scenario",
    "UserInputError": "replay.errors",
    "load_scenario": "lab.scenario",
    "open_store": "lab.artifacts",
    "operating_characteristics": "lab.operating",
    "parse_scenario": "lab.scenario",
    "prepare": "lab.pipeline",
    "replicate": "lab.operating",
    "run": "lab.pipeline",
    "simulate_prepared": "lab.pipeline",
}

__all__ = [
    "Prepared",
    "ReplicationOutcome",
    "RunResult",
    "Scenario",
    "UserInputError",
    "load_scenario",
    "open_store",
    "operating_characteristics",
    "parse_scenario",
    "prepare",
    "replicate",
    "run",
    "simulate_prepared",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'rollout_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
