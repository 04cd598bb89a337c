"""rollout-lab: rehearse recommender-model rollouts offline.

The composition root: the ``rollout-lab`` command line (``rollout_lab.cli``) and the public
Python surface, declared here so that a notebook starts with ``import rollout_lab``::

    import rollout_lab

    result = rollout_lab.run("scenarios/quickstart.toml", set={"traffic.duration": "30m"})
    result                               # in a notebook: the report, inline
    result.summary()["decision"]         # summary.json as a dict
    result.decisions, result.windows     # polars DataFrames
    result.requests                      # polars DataFrame, one row per request

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
    from lab.pipeline import Prepared, prepare, simulate_prepared
    from lab.scenario import Scenario, load_scenario, parse_scenario
    from replay.errors import UserInputError
    from rollout_lab.results import RunResult, run

# Where each public name lives.  Loaded on first use, so that ``rollout-lab --help`` and the
# cheap refusals never pay for numpy, polars, implicit and matplotlib.
_PUBLIC = {
    "Prepared": "lab.pipeline",
    "ReplicationOutcome": "lab.operating",
    "RunResult": "rollout_lab.results",
    "Scenario": "lab.scenario",
    "UserInputError": "replay.errors",
    "load_scenario": "lab.scenario",
    "open_store": "lab.artifacts",
    "operating_characteristics": "lab.operating",
    "parse_scenario": "lab.scenario",
    "prepare": "lab.pipeline",
    "replicate": "lab.operating",
    "run": "rollout_lab.results",
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
