"""Helpers shared by the reliability tests: paths, small-run options, subprocess environment."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
MOVIELENS_REPLAY = ROOT / "scenarios" / "movielens_replay.toml"

#: The quick start shrunk to a couple of seconds of work.
SMALL = (
    "--set",
    "traffic.duration=20m",
    "--set",
    "traffic.users=3000",
    "--set",
    "traffic.items=600",
    "--set",
    "traffic.arrivals.mean_rate_per_s=20",
)


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: list[str]  # stderr lines


def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m rollout_lab.cli`` children: the checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


PYTHON = sys.executable
