"""What the command line loads before it answers: ``--help``, ``validate`` and a refused
``run`` must not pay for the simulator's libraries (they answer within half a second)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.toml")
HEAVY = ("numpy", "polars", "scipy", "matplotlib", "simpy", "implicit", "multiprocessing")
PROBE = """
import json, sys
from rollout_lab.cli import main
code = main(sys.argv[1:], exiting=False)
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"code": code, "loaded": heavy}}))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["validate", QUICKSTART], 0),
        (["run", QUICKSTART, "--out", "/"], 2),
    ],
)
def test_answers_without_the_simulators_libraries(argv: list[str], code: int) -> None:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": code, "loaded": []}, done.stderr
