"""The hostile corpus (``tests/reliability/hostile.py``) through pytest: one case in 24 by
default (each is a process of a few seconds), every case with ``-m slow``.  ``make hostile``
runs all of them and prints a total."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import all_cases, run_case

CASES = all_cases()


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) >= 150
    assert len(set(ids)) == len(ids)
    kinds = {case.id.split("/")[0] for case in CASES}
    assert kinds == {"scenario", "set", "option", "log", "artifact", "out", "special"}


@pytest.mark.parametrize("case", CASES[::24], ids=lambda case: case.id)
def test_hostile_sample(case: object, tmp_path: Path) -> None:
    result = run_case(case, tmp_path)  # type: ignore[arg-type]
    assert result.passed, f"{result.detail} (exit {result.code}, stderr {result.stderr[-3:]})"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_every_case(case: object, tmp_path: Path) -> None:
    result = run_case(case, tmp_path)  # type: ignore[arg-type]
    assert result.passed, f"{result.detail} (exit {result.code}, stderr {result.stderr[-3:]})"
