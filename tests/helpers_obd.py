"""The Open Bandit Dataset's sample (uniform random logging policy, 80 items, 3 positions,
10,000 rows), read from the ``obp`` wheel on PyPI: downloaded once into the tests' cache
folder (``ROLLOUT_LAB_TEST_CACHE``, default ``~/.cache/rollout-lab-tests``); tests skip with
the reason when the registry cannot be reached.  The dataset is never committed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEEL = "obp==0.4.1"
MEMBER = "obp/dataset/obd/random/all/all.csv"
CACHE = Path(os.environ.get("ROLLOUT_LAB_TEST_CACHE", Path.home() / ".cache" / "rollout-lab-tests"))


def obd_sample() -> Path:
    """The sample's ``all.csv`` as a file in the cache folder (extracted once)."""
    target = CACHE / "obd-random-all.csv"
    if target.is_file():
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("obp-*.whl"))
    if not found:
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    WHEEL,
                    "--no-deps",
                    "-q",
                    "-d",
                    str(wheels),
                ],
                capture_output=True,
                timeout=300,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as error:
            pytest.skip(f"cannot fetch {WHEEL} from the package registry: {error}")
        found = sorted(wheels.glob("obp-*.whl"))
        if done.returncode != 0 or not found:
            pytest.skip(f"cannot fetch {WHEEL} from the package registry: {done.stderr[-200:]!r}")
    with zipfile.ZipFile(found[-1]) as wheel:
        partial = target.with_suffix(".part")
        partial.write_bytes(wheel.read(MEMBER))
        partial.replace(target)
    return target
