"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reliability_support import Outcome


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Call ``rollout_lab.cli.main`` in-process; returns its exit code, stdout and stderr lines."""
    from rollout_lab.cli import main

    def call(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err.splitlines())

    return call
