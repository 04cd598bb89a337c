"""Sticky assignment of traffic to versions by a stable hash into 10,000 buckets.

A unit (user or session) lands in bucket ``h(unit, salt) mod 10_000`` where ``h`` is the
SplitMix64 finaliser — stable across processes and Python versions, unlike ``hash()``.  The
candidate owns buckets ``[0, weight * 100)``: raising the weight only adds buckets, so a unit
that saw the candidate keeps seeing it until a rollback sets the weight to zero.  Shadow
(mirror) traffic uses an independent salt so mirroring is not correlated with assignment.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BUCKETS", "stable_buckets", "threshold_for"]

BUCKETS = 10_000

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def stable_buckets(units: npt.ArrayLike, *, salt: int) -> npt.NDArray[np.int32]:
    """Bucket in ``[0, 10_000)`` of each unit id, a pure function of ``(unit, salt)``."""
    z = np.asarray(units, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(salt & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(BUCKETS)).astype(np.int32)


def threshold_for(weight_percent: float) -> int:
    """Buckets below this index see the candidate: ``round(weight * 100)`` of 10,000."""
    return round(min(max(weight_percent, 0.0), 100.0) * BUCKETS / 100.0)
