"""The lab in a notebook: ``rollout_lab.run`` and the ``RunResult`` it returns.

``lab.pipeline.RunResult`` holds everything a run computed; this subclass adds what a person
at a notebook wants from it, built by ``reports`` (which ``lab`` may not import):

* ``summary()`` — the ``summary.json`` document (with the verdict on the expectations);
* ``to_html()`` — the one-file report, and ``_repr_html_`` showing it inline (an iframe
  whose ``srcdoc`` holds the page, so the report's stylesheet never touches the notebook's);
* ``decisions`` and ``windows`` — the decision trace and the analysis windows as polars
  DataFrames.

The summary is computed once, on first use.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import polars as pl

from lab.pipeline import RunResult as PipelineResult
from lab.pipeline import run as run_pipeline
from lab.scenario import Scenario, load_scenario, parse_scenario

__all__ = ["RunResult", "run"]

#: Height of the inline report in a notebook, CSS pixels (the report scrolls inside it).
INLINE_HEIGHT_PX = 640


@dataclass(slots=True)
class RunResult(PipelineResult):
    """A run's result with its summary, report and tables (see the module docstring)."""

    #: The scenario file's name, as the CLI records it in ``summary["scenario"]["file"]``.
    scenario_file: str | None = None
    _summary: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, result: PipelineResult, scenario_file: str | None = None) -> RunResult:
        values = {f.name: getattr(result, f.name) for f in fields(PipelineResult)}
        return cls(**values, scenario_file=scenario_file)

    def summary(self) -> dict[str, Any]:
        """``summary.json`` of this run, as ``rollout-lab run`` writes it."""
        if self._summary is None:
            from reports.summary import build_summary
            from reports.verdict import check_expectations

            summary = build_summary(self, scenario_file=self.scenario_file)
            source = self.scenario_file or self.scenario.name
            summary["verdict"] = check_expectations(
                summary, dict(self.scenario.expect), source=source
            )
            self._summary = summary
        return self._summary

    def to_html(self) -> str:
        """The report, one self-contained HTML page (what ``report.html`` holds)."""
        from reports.html import render_report

        summary = self.summary()
        return render_report(summary, self.requests, summary["verdict"])

    def _repr_html_(self) -> str:
        page = html.escape(self.to_html(), quote=True)
        return (
            f'<iframe srcdoc="{page}" title="rollout-lab report" '
            f'style="width:100%;height:{INLINE_HEIGHT_PX}px;border:1px solid #dde2e8"></iframe>'
        )

    @property
    def decisions(self) -> pl.DataFrame:
        """One row per decision, numbered as in the report: ``number``, ``t_s``,
        ``release``, ``step``, ``action``, ``reason``, ``weight`` and ``numbers`` (a struct
        of what the rule read; null where a decision did not read a number)."""
        rows = [
            {"number": i + 1, **d, "numbers": d["numbers"] or None}
            for i, d in enumerate(self.summary()["decisions"])
        ]
        schema = {
            "number": pl.Int64,
            "t_s": pl.Float64,
            "release": pl.Int64,
            "step": pl.Int64,
            "action": pl.String,
            "reason": pl.String,
            "weight": pl.Float64,
        }
        if not rows:
            return pl.DataFrame(schema=schema)
        numbers = pl.DataFrame(
            [r.pop("numbers") or {} for r in rows], infer_schema_length=None
        ).cast(pl.Float64)
        frame = pl.DataFrame(rows, schema=schema)
        return frame.with_columns(numbers.to_struct("numbers")) if numbers.width else frame

    @property
    def windows(self) -> pl.DataFrame:
        """The analysis windows, one row per window and version: ``window`` (from 1),
        ``t_start_s``, ``t_end_s``, ``version``, ``requests``, ``latency_p99_ms``, ``ctr``,
        ``cache_hit_rate``, ``ece`` (null where a window had no requests)."""
        block = self.summary()["windows"]
        rows = []
        for name, series in (block.get("versions") or {}).items():
            for w, (start, end) in enumerate(
                zip(block["t_start_s"], block["t_end_s"], strict=True)
            ):
                rows.append(
                    {
                        "window": w + 1,
                        "t_start_s": start,
                        "t_end_s": end,
                        "version": name,
                        **{metric: values[w] for metric, values in series.items()},
                    }
                )
        return pl.DataFrame(rows, infer_schema_length=None).sort(["window", "version"])


def _overrides(values: Mapping[str, Any] | None, seed: int | None) -> list[str]:
    """``--set`` texts for ``set=`` values: strings as the command line reads them (a TOML
    value or a bare word), other values written as TOML."""
    out = [f"{key}={v if isinstance(v, str) else _toml(v)}" for key, v in (values or {}).items()]
    return [*out, f"seed={seed}"] if seed is not None else out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"set= values must be TOML-like (str, number, bool, list, dict), got {value!r}")


def run(
    scenario: str | Path | Scenario,
    *,
    set: Mapping[str, Any] | None = None,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run a scenario (a file path or a ``Scenario``) and return its result.

    ``set`` overrides settings as ``--set`` does (``{"traffic.duration": "30m"}``); ``seed``
    replaces the scenario's seed.  Relative data paths are read next to the scenario file.
    """
    overrides = _overrides(set, seed)
    if isinstance(scenario, Scenario):
        loaded = parse_scenario(scenario.model_dump(mode="json"), overrides=overrides)
        result = run_pipeline(loaded, progress=progress)
        return RunResult.of(result)
    path = Path(scenario)
    loaded = load_scenario(path, overrides)
    result = run_pipeline(
        loaded, source_name=path.name, base_dir=path.resolve().parent, progress=progress
    )
    return RunResult.of(result, scenario_file=path.name)
