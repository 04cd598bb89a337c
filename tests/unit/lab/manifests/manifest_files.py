"""A scenario beside a manifest in a test's folder: ``s.toml`` reading ``m.yaml``."""

from __future__ import annotations

from pathlib import Path

SCENARIO = """\
name = "manifest test"
[traffic]
duration = "10m"
arrivals = {{ kind = "poisson", rate_per_s = 5 }}
[models.baseline]
[models.candidate]
parent = "baseline"
[rollout]
manifest = "m.yaml"
{extra}
"""


def write_scenario(folder: Path, manifest: str | None, extra: str = "") -> Path:
    """Write ``m.yaml`` (unless None) and ``s.toml`` with ``extra`` in its [rollout] table."""
    if manifest is not None:
        (folder / "m.yaml").write_text(manifest, encoding="utf-8")
    scenario = folder / "s.toml"
    scenario.write_text(SCENARIO.format(extra=extra), encoding="utf-8")
    return scenario
