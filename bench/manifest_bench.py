"""What speaking Argo Rollouts and Flagger costs: reading manifests, and measured analyses.

1. **Loading**: ``load_scenario`` of each manifest scenario of the library (YAML read with
   the safe loader, translation, validation) against ``scenarios/quickstart.toml`` (plain
   TOML) loaded in the same process: min / median / max milliseconds and the median ratio.
2. **Analysis**: one prepared world and its versions (``argo_background_analysis`` at the
   file's scale, 40 requests/s for an hour, about 144k requests) simulated under three
   policies with the same steps: ``staged`` with a fallback-rate guardrail (the reference),
   ``argo_canary`` with its background run measuring every 5 minutes (the manifest's), and
   ``staged`` judged by a Kayenta score (two metrics, one sample a minute per arm):
   min / median / max seconds of ``simulate_prepared`` and the ratio to the reference.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/manifest_bench.py [--runs 3]

Goal: a manifest loads in well under a second; measured analyses cost little beside the
simulation (ratio close to 1).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.pipeline import prepare, simulate_prepared
from lab.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = [
    "argo_canary_inline_analysis",
    "argo_background_analysis",
    "argo_blue_green_analysis",
    "flagger_canary_step_weights",
    "flagger_ab_testing",
    "flagger_mirroring",
]


def timed(call: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def spread(values: list[float], scale: float = 1.0) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:9.2f} {mid * scale:9.2f} {high * scale:9.2f}"


def with_rollout(scenario: Scenario, rollout: dict[str, Any]) -> Scenario:
    settings = scenario.rollout.model_dump(include={"baseline", "candidate"})
    data = scenario.model_dump(exclude={"rollout"})
    data["rollout"] = {**settings, **rollout}
    return Scenario.model_validate(data)


def loading(runs: int) -> None:
    print("== loading (ms): min / median / max, and the median against plain TOML")
    reference = timed(lambda: load_scenario(ROOT / "scenarios" / "quickstart.toml"), runs * 5)
    print(f"{'quickstart (plain TOML)':<32}{spread(reference, 1000)}")
    for name in LIBRARY:
        path = ROOT / "scenarios" / f"{name}.toml"
        times = timed(lambda path=path: load_scenario(path), runs * 5)  # type: ignore[misc]
        ratio = statistics.median(times) / statistics.median(reference)
        print(f"{name:<32}{spread(times, 1000)}   x{ratio:.1f}")


def analysis(runs: int) -> None:
    base = load_scenario(
        ROOT / "scenarios" / "argo_background_analysis.toml",
        ["traffic.arrivals.rate_per_s=40", "traffic.duration=1h"],
    )
    steps = [s.model_dump(exclude_none=True) for s in base.rollout.steps]
    policies = {
        "staged + guardrail (reference)": {
            "policy": "staged",
            "steps": steps,
            "analysis": {"interval": "5m", "failure_limit": 4, "min_requests": 50},
            "guardrails": [{"metric": "fallback_rate", "max": 0.05}],
        },
        "argo_canary (background run)": base.rollout.model_dump(
            exclude={"manifest", "manifest_notes", "metric_map", "baseline", "candidate"}
        ),
        "staged + Kayenta score": {
            "policy": "staged",
            "steps": steps,
            "analysis": {"interval": "5m", "failure_limit": 4, "min_requests": 50},
            "kayenta": {
                "step": "1m",
                "metrics": [
                    {"name": "p99", "measure": {"metric": "latency_ms.p99"}},
                    {"name": "fallbacks", "measure": {"metric": "fallback_rate"}},
                ],
            },
        },
    }
    prepared = prepare(
        base, source_name="argo_background_analysis.toml", base_dir=ROOT / "scenarios"
    )
    print(f"== analysis: simulate_prepared seconds over {runs} runs (min / median / max)")
    reference: list[float] | None = None
    for label, rollout in policies.items():
        scenario = with_rollout(base, rollout)
        variant = dataclasses.replace(prepared, scenario=scenario)
        times = []
        for r in range(runs):
            result = simulate_prepared(variant, replication=r)
            times.append(result.timing["simulate_s"])
        reference = reference or times
        ratios = [t / ref for t, ref in zip(times, reference, strict=True)]
        arrivals = len(result.requests)
        print(
            f"{label:<32}{spread(times)}   x{statistics.median(ratios):.2f} "
            f"({arrivals:,} requests, outcome {result.controller.outcome})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loading(args.runs)
    analysis(args.runs)


if __name__ == "__main__":
    main()
