"""The installed rollout-lab version (``--version``; workers of a cluster must match it)."""

from __future__ import annotations

__all__ = ["lab_version"]


def lab_version() -> str:
    """The installed distribution's version, or ``"unknown"`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rollout-lab")
    except PackageNotFoundError:
        return "unknown"
