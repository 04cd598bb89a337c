"""The CLI's progress bar: drawn on a terminal, silent everywhere else."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import QUICKSTART, SMALL, Outcome

from rollout_lab.progress import ProgressBar, render


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_render_fits_the_width() -> None:
    line = render("quickstart", 131_072, 275_412, 3.14, 80)
    assert line == "quickstart [#############..............]   48%  131,072/275,412 requests  3.1 s"
    for width in (20, 40, 60, 120):
        assert len(render("a-rather-long-scenario-name", 5, 10, 1.0, width)) <= width - 1


@pytest.mark.parametrize(("done", "total", "cells"), [(0, 10, 0), (10, 10, 40), (3, 0, 40)])
def test_render_bounds(done: int, total: int, cells: int) -> None:
    line = render("x", done, total, 0.0, 200)
    assert line.count("#") == cells


def test_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressBar(stream, "run") as bar:
        bar.status("preparing")
        for done in range(0, 101, 10):
            bar(done, 100)
    assert stream.getvalue() == ""


def test_draws_throttles_and_clears_on_a_terminal() -> None:
    stream, clock = Terminal(), Clock()
    with ProgressBar(stream, "run", clock=clock, min_interval_s=0.5) as bar:
        bar.status("preparing world and models")
        bar(0, 100)
        clock.now = 0.1
        bar(50, 100)  # too soon: skipped
        clock.now = 0.7
        bar(60, 100)
        bar(100, 100)  # the last one is always drawn
    frames = stream.getvalue().split("\r\x1b[K")
    assert frames[0] == ""
    assert frames[1] == "run: preparing world and models  0.0 s"
    assert [f.split("]")[1].split()[0] for f in frames[2:-1]] == ["0%", "60%", "100%"]
    assert frames[-1] == ""  # cleared when closed


class ClosedTerminal(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def test_closed_stream_counts_as_no_terminal() -> None:
    bar = ProgressBar(ClosedTerminal(), "run")
    assert not bar.enabled
    bar(1, 2)


def test_cli_prints_no_bar_when_stderr_is_not_a_terminal(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    result = cli("run", str(QUICKSTART), "--out", str(tmp_path / "run"), *SMALL)
    assert result.code == 0
    assert result.err == []


def test_stages_show_on_the_status_line_with_the_time_so_far() -> None:
    stream, clock = Terminal(), Clock()
    with ProgressBar(stream, "run", clock=clock) as bar:
        clock.now = 2.5
        bar.stage("training candidate (2 of 2)")
    frames = stream.getvalue().split("\r\x1b[K")
    assert frames[1] == "run: preparing: training candidate (2 of 2)  2.5 s"


def test_preparation_tells_each_stage_as_it_starts() -> None:
    from lab.pipeline import prepare
    from lab.scenario import load_scenario

    root = Path(__file__).resolve().parents[2]
    small = ["traffic.users=300", "traffic.items=100", "traffic.duration=2m"]
    stages: list[str] = []
    prepare(load_scenario(root / "scenarios" / "quickstart.toml", small), stage=stages.append)
    assert stages == [
        "building the world",
        "training baseline (1 of 2)",
        "training candidate (2 of 2)",
        # Started first, so that it runs beside calibration, scoring and the simulation.
        "training the noise floor (baseline, seed + 1) in the background",
        "calibrating clicks and scoring top-K lists",
    ]
