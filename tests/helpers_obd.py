"""The Open Bandit Dataset's sample (uniform random logging policy, 80 items, 3 positions,
10,000 rows), read from the ``obp`` wheel on PyPI (``tests.helpers_wheels``: fetched once,
skipped with the reason when the registry cannot be reached, never committed)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers_wheels import file_from_wheel


def obd_sample() -> Path:
    """The sample's ``all.csv`` as a file in the tests' cache folder."""
    return file_from_wheel("obp==0.4.1", "obp/dataset/obd/random/all/all.csv", "obd-random-all.csv")
