"""Output safety: where a run may write, what it may replace, and in which order.

Rules (README, "Safety and limits"): a relative ``--out`` stays inside the current folder;
the root, the home folder, the current folder and its parents are refused, as are files and
folders holding other things than a run; a complete run (``summary.json``) is replaced only
with ``--force``; an interrupted one (``INCOMPLETE``) may be reused.  Nothing is written until
the run is computed; files are renamed into place; ``summary.json`` comes last.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzzing import FAST
from hypothesis import given
from hypothesis import strategies as st
from reliability_support import QUICKSTART, Outcome

from replay.errors import UserInputError
from rollout_lab.commands.common import slug
from rollout_lab.outputs import INCOMPLETE, SUMMARY, check_out_dir, commit_run, write_atomic
from rollout_lab.signals import RunInterrupted, deferred_signals, stop_on_signals

TINY = (
    "--set",
    "traffic.duration=5m",
    "--set",
    "traffic.users=1000",
    "--set",
    "traffic.items=200",
    "--set",
    "traffic.arrivals.mean_rate_per_s=10",
)


def _refused(result: Outcome, fragment: str) -> None:
    assert result.code == 2
    assert len(result.err) == 1, result.err
    assert result.err[0].startswith("rollout-lab: error: --out ")
    assert fragment in result.err[0], result.err[0]


# --- where a run may write -----------------------------------------------------------------


@pytest.mark.parametrize("out", ["../escape", "a/../../escape", "..", "runs/../../x"])
def test_relative_out_may_not_climb_out(
    out: str, cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    result = cli("run", str(QUICKSTART), "--out", out, *TINY)
    _refused(result, "must stay inside the current folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_relative_out_inside_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for out in ("runs/a", "a/../b", "./c"):
        assert check_out_dir(Path(out)) == Path(out)
    assert list(tmp_path.iterdir()) == []  # checking writes nothing


def test_root_home_current_and_parent_folders_are_refused(
    cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    work = home / "project" / "work"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    _refused(cli("run", str(QUICKSTART), "--out", "/", *TINY), "must be a dedicated folder")
    _refused(cli("run", str(QUICKSTART), "--out", str(home), *TINY), "dedicated folder")
    _refused(cli("run", str(QUICKSTART), "--out", ".", *TINY), "not be the current folder")
    _refused(cli("run", str(QUICKSTART), "--out", str(work.parent), *TINY), "one of its parents")
    assert list(work.iterdir()) == []


def test_a_file_is_not_an_output_folder(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me", encoding="utf-8")
    _refused(cli("run", str(QUICKSTART), "--out", str(target), *TINY), "is not a folder")
    assert target.read_text(encoding="utf-8") == "keep me"


def test_a_folder_of_other_files_is_refused(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("keep me", encoding="utf-8")
    result = cli("run", str(QUICKSTART), "--out", str(tmp_path), "--force", *TINY)
    _refused(result, "holds files that are not a rollout-lab run (thesis.tex)")
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_check_refuses_escaping_out_and_junit(
    cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    result = cli("check", str(QUICKSTART), "--out", "../x", *TINY)
    _refused(result, "must stay inside the current folder")
    result = cli("check", str(QUICKSTART), "--out", "runs", "--junit", "../j.xml", *TINY)
    assert result.code == 2
    assert result.err[0].startswith("rollout-lab: error: --junit ../j.xml: a relative output file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


@FAST
@given(st.text(min_size=1, max_size=40))
def test_default_folder_from_any_name_stays_under_runs(name: str) -> None:
    target = Path("runs") / slug(name)
    assert target.parent == Path("runs")
    assert target.name not in ("", ".", "..")
    assert os.sep not in target.name


# --- what a run may replace ----------------------------------------------------------------


def test_interrupted_folder_reused_and_complete_run_needs_force(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / INCOMPLETE).write_text("interrupted", encoding="utf-8")
    (out / "report.html").write_text("half of an old report", encoding="utf-8")
    (out / "notes.txt").write_text("mine", encoding="utf-8")

    first = cli("run", str(QUICKSTART), "--out", str(out), "--requests-parquet", "--quiet", *TINY)
    assert first.code == 0, first.err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["junit.xml", "notes.txt", "report.html", "requests.parquet", SUMMARY]
    report = (out / "report.html").read_bytes()
    assert b"half of an old report" not in report

    again = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    _refused(again, "holds an earlier run (pass --force to overwrite it)")
    assert (out / "report.html").read_bytes() == report

    forced = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *TINY)
    assert forced.code == 0, forced.err
    # A stale requests.parquet from the earlier run must not pass for this run's.
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml",
        "notes.txt",
        "report.html",
        SUMMARY,
    ]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


# --- in which order ------------------------------------------------------------------------


def test_commit_interrupted_midway_leaves_a_marked_incomplete_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / SUMMARY).write_text("{}", encoding="utf-8")  # an earlier complete run

    def stopped(_path: Path) -> None:
        raise RunInterrupted(signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        commit_run(
            out,
            {"report.html": "<p>new</p>", "requests.parquet": stopped},
            '{"done": true}',
            note="unfinished",
        )
    assert sorted(p.name for p in out.iterdir()) == [INCOMPLETE, "report.html"]
    assert (out / INCOMPLETE).read_text(encoding="utf-8") == "unfinished"


def test_commit_writes_summary_last_and_removes_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rollout_lab.outputs as outputs

    order: list[str] = []
    real = outputs.write_atomic

    def spy(path: Path, data: outputs.Payload) -> None:
        order.append(path.name)
        real(path, data)

    monkeypatch.setattr(outputs, "write_atomic", spy)
    out = tmp_path / "run"
    commit_run(out, {"report.html": "r", "junit.xml": "j"}, "{}", note="n")
    assert order == [INCOMPLETE, "report.html", "junit.xml", SUMMARY]
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", SUMMARY]


def test_write_atomic_never_leaves_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")

    def half(path: Path) -> None:
        path.write_text("half of the new", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new"


def test_commit_rejects_names_that_are_not_outputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not run outputs"):
        commit_run(tmp_path / "x", {"../../etc/passwd": "x"}, "{}", note="n")
    assert not (tmp_path / "x").exists()


# --- signals -------------------------------------------------------------------------------


def test_signal_becomes_run_interrupted_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted) as caught, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_deferred_signal_is_raised_when_the_block_ends() -> None:
    done = []
    with pytest.raises(RunInterrupted) as caught, stop_on_signals():
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            done.append("critical step finished")
        done.append("not reached")
    assert done == ["critical step finished"]
    assert caught.value.exit_code == 130


def test_user_errors_stay_user_errors() -> None:
    with pytest.raises(UserInputError, match="exists and is not a folder"):
        check_out_dir(Path(__file__))


def test_run_interrupted_survives_being_recreated_from_its_args() -> None:
    """SimPy re-raises an exception from a process as ``type(exc)(*exc.args)``."""
    original = RunInterrupted(signal.SIGTERM)
    copy = type(original)(*original.args)
    assert (copy.signum, copy.exit_code, str(copy)) == (15, 143, "interrupted by SIGTERM")
