"""What the end-to-end tests check of a refused command."""

from __future__ import annotations

import pytest


def one_line_exit_2(capsys: pytest.CaptureFixture[str], code: int, *words: str) -> None:
    """The command exited 2 with one line on stderr holding every one of ``words``."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
