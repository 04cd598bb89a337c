"""Output safety: where a run may write, what it may replace, and in which order.

Rules (README, "Safety and limits"): a relative ``--out`` stays inside the current folder;
the root, the home folder, the current folder and its parents, files, dangling links,
virtual and read-only file systems and over-long names are refused; a folder is an earlier
run only when it holds the lab's manifest, and ``--force`` replaces exactly the files listed
there that are unchanged; without ``--force`` nothing the run would write may exist.  Nothing
is written until the run is computed; files are staged under exclusive temporary names and
renamed into place; ``summary.json`` comes last.
"""

from __future__ import annotations

import hashlib
import json
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
from rollout_lab.outputs import (
    INCOMPLETE,
    MANIFEST,
    SUMMARY,
    OutputWriteError,
    check_out_dir,
    commit_run,
    write_atomic,
)
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
        assert check_out_dir(Path(out)).replace == frozenset()
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
    _refused(result, "holds files rollout-lab did not write (thesis.tex)")
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


def test_complete_run_needs_force_and_force_replaces_only_its_own_files(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = cli("run", str(QUICKSTART), "--out", str(out), "--requests-parquet", "--quiet", *TINY)
    assert first.code == 0, first.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [MANIFEST, "junit.xml", "report.html", "requests.parquet", SUMMARY]
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["kind"] == "rollout-lab run" and manifest["state"] == "complete"
    assert sorted(manifest["files"]) == ["junit.xml", "report.html", "requests.parquet", SUMMARY]
    for name, record in manifest["files"].items():
        data = (out / name).read_bytes()
        assert record == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not any(p.stat().st_mode & 0o111 for p in out.iterdir())  # never executable
    report = (out / "report.html").read_bytes()
    (out / "notes.txt").write_text("mine", encoding="utf-8")

    again = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    _refused(again, "holds an earlier run (pass --force to replace it)")
    assert (out / "report.html").read_bytes() == report

    forced = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *TINY)
    assert forced.code == 0, forced.err
    # A stale requests.parquet from the earlier run must not pass for this run's.
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        "junit.xml",
        "notes.txt",
        "report.html",
        SUMMARY,
    ]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


# --- regressions: data loss (issue 22) -----------------------------------------------------


def test_force_never_touches_a_foreign_run(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    """--force on a folder holding a summary.json the lab did not write deleted the user's
    requests.parquet and overwrote their summary.json."""
    out = tmp_path / "theirs"
    out.mkdir()
    (out / SUMMARY).write_text('{"mine": true}', encoding="utf-8")
    (out / "requests.parquet").write_bytes(b"my data")
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", *TINY)
    _refused(result, "holds files rollout-lab did not write (requests.parquet, summary.json)")
    assert (out / SUMMARY).read_text(encoding="utf-8") == '{"mine": true}'
    assert (out / "requests.parquet").read_bytes() == b"my data"


@pytest.mark.parametrize("name", ["report.html", "junit.xml"])
def test_users_own_output_names_are_never_overwritten(
    name: str, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """Without --force a user's own report.html or junit.xml in --out was overwritten."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("my own file", encoding="utf-8")
    result = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    _refused(result, f"holds {name}, which this run would write")
    assert [p.name for p in out.iterdir()] == [name]
    assert (out / name).read_text(encoding="utf-8") == "my own file"


def test_force_refuses_a_listed_file_changed_since(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert cli("run", str(QUICKSTART), "--out", str(out), "--quiet", *TINY).code == 0
    (out / "report.html").write_text("annotated by hand", encoding="utf-8")
    summary = (out / SUMMARY).read_bytes()
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", *TINY)
    _refused(result, "report.html is a file changed since the earlier run")
    assert (out / "report.html").read_text(encoding="utf-8") == "annotated by hand"
    assert (out / SUMMARY).read_bytes() == summary


def test_changed_file_the_new_run_does_not_write_is_left_and_reported(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert cli("run", str(QUICKSTART), "--out", str(out), "--requests-parquet", *TINY).code == 0
    (out / "requests.parquet").write_bytes(b"edited")
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *TINY)
    assert result.code == 0, result.err
    assert (out / "requests.parquet").read_bytes() == b"edited"
    assert len(result.err) == 1 and result.err[0].startswith("rollout-lab: note: ")
    assert "requests.parquet is from an earlier run but was changed since" in result.err[0]
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert "requests.parquet" not in manifest["files"]


def test_a_planted_temporary_link_is_never_followed(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """A pre-planted .report.html.tmp symlink made a run overwrite a file outside --out."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious", encoding="utf-8")
    out = tmp_path / "run"
    assert cli("run", str(QUICKSTART), "--out", str(out), "--quiet", *TINY).code == 0
    for name in ("report.html", "junit.xml", SUMMARY, MANIFEST, INCOMPLETE):
        (out / f".{name}.tmp").symlink_to(outside)
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *TINY)
    assert result.code == 0, result.err
    assert outside.read_text(encoding="utf-8") == "precious"
    for name in ("report.html", "junit.xml", SUMMARY, MANIFEST, INCOMPLETE):
        assert os.readlink(out / f".{name}.tmp") == str(outside)
    assert "</html>" in (out / "report.html").read_text(encoding="utf-8")[-200:]


def test_check_keeps_scenarios_with_the_same_file_name_apart(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """Two scenarios called quickstart.toml in two folders overwrote each other's results."""
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        text = QUICKSTART.read_text(encoding="utf-8").replace("seed = 7", f"seed = {seed}")
        (tmp_path / folder / "quickstart.toml").write_text(text, encoding="utf-8")
    base = tmp_path / "out"
    result = cli(
        "check", str(tmp_path / "a" / "quickstart.toml"), str(tmp_path / "b" / "quickstart.toml"),
        "--out", str(base), *TINY,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert sorted(p.name for p in base.iterdir()) == ["a-quickstart", "b-quickstart"]
    seeds = {
        json.loads((base / name / SUMMARY).read_text(encoding="utf-8"))["scenario"]["seed"]
        for name in ("a-quickstart", "b-quickstart")
    }
    assert seeds == {1, 2}


def test_check_follows_the_same_rules_as_run(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    """check (which forced) deleted requests.parquet from a folder that was not a run."""
    base = tmp_path / "out"
    (base / "quickstart").mkdir(parents=True)
    (base / "quickstart" / "requests.parquet").write_bytes(b"not a run")
    result = cli("check", str(QUICKSTART), "--out", str(base), "--force", *TINY)
    assert result.code == 2
    assert [line for line in result.err if "holds files rollout-lab did not write" in line]
    assert (base / "quickstart" / "requests.parquet").read_bytes() == b"not a run"
    first = cli("check", str(QUICKSTART), "--out", str(tmp_path / "fresh"), *TINY)
    assert first.code == 0, first.err
    again = cli("check", str(QUICKSTART), "--out", str(tmp_path / "fresh"), *TINY)
    assert again.code == 2
    assert any("holds an earlier run (pass --force" in line for line in again.err)
    forced = cli("check", str(QUICKSTART), "--out", str(tmp_path / "fresh"), "--force", *TINY)
    assert forced.code == 0, forced.err


# --- regressions: output paths that crashed (issue 22) ------------------------------------


def _path_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    folder_named_output = tmp_path / "holds-folder"
    (folder_named_output / "report.html").mkdir(parents=True)
    return {
        "proc": (Path("/proc/rollout-lab-out"), "is on a virtual file system"),
        "sys": (Path("/sys/rollout-lab-out/x"), "is on a virtual file system"),
        "long name": (tmp_path / ("n" * 300), "longer than the file system allows"),
        "long path": (tmp_path / "/".join(["d" * 200] * 25), "longer than the file system"),
        "parent is a file": (afile / "run", "is a file, not a folder"),
        "dangling link": (tmp_path / "dangling", "which does not exist"),
        "a folder named report.html": (folder_named_output, "holds report.html"),
    }


@pytest.mark.parametrize(
    "case",
    ["proc", "sys", "long name", "long path", "parent is a file", "dangling link",
     "a folder named report.html"],
)  # fmt: skip
def test_output_paths_that_crashed_are_one_line(
    case: str, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out, fragment = _path_cases(tmp_path)[case]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    _refused(result, fragment)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_a_folder_named_like_an_output_is_refused_with_force_too(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert cli("run", str(QUICKSTART), "--out", str(out), "--quiet", *TINY).code == 0
    (out / "requests.parquet").mkdir()
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--requests-parquet", *TINY)
    _refused(result, "requests.parquet is a folder not written by it")
    assert (out / "requests.parquet").is_dir()


# --- in which order ------------------------------------------------------------------------


def test_commit_interrupted_while_writing_leaves_the_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    commit_run(out, {"report.html": "<p>old</p>"}, '{"old": true}', note="n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def stopped(_handle: object) -> None:
        raise RunInterrupted(signal.SIGTERM)

    with pytest.raises(RunInterrupted) as caught:
        commit_run(
            out,
            {"report.html": "<p>new</p>", "requests.parquet": stopped},
            '{"done": true}',
            note="unfinished",
            force=True,
        )
    assert caught.value.folder == "unchanged"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_commit_signal_during_the_renames_finishes_them_first(tmp_path: Path) -> None:
    """A SIGTERM while summary.json was being written let the run finish, then claimed the
    folder was as it was: the stop now says the folder holds the complete new run."""
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted) as caught, stop_on_signals():
        import rollout_lab.outputs as outputs

        real = outputs._Staged.rename

        def rename_then_signal(self: outputs._Staged, staged_as: str, final: str | None = None):
            real(self, staged_as, final)
            if staged_as == SUMMARY:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass

        outputs._Staged.rename = rename_then_signal  # type: ignore[method-assign]
        try:
            commit_run(out, {"report.html": "r"}, '{"new": 1}', note="n")
        finally:
            outputs._Staged.rename = real  # type: ignore[method-assign]
    assert caught.value.folder == "complete" and caught.value.out == out
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "report.html", SUMMARY]
    from rollout_lab.cli import _stopped

    assert _stopped(caught.value) == (
        f"stopped by SIGTERM after writing {out}: it holds the complete new run"
    )


def test_commit_writes_summary_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rollout_lab.outputs as outputs

    order: list[str] = []
    real = outputs._Staged.rename

    def spy(self: outputs._Staged, staged_as: str, final: str | None = None) -> None:
        order.append(final or staged_as)
        real(self, staged_as, final)

    monkeypatch.setattr(outputs._Staged, "rename", spy)
    out = tmp_path / "run"
    commit_run(out, {"report.html": "r", "junit.xml": "j"}, "{}", note="n")
    assert order == [MANIFEST, INCOMPLETE, "report.html", "junit.xml", SUMMARY, MANIFEST]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "junit.xml", "report.html", SUMMARY]


def test_write_atomic_never_leaves_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")

    def half(handle: object) -> None:
        assert hasattr(handle, "write")
        handle.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputWriteError, match=r"No space left on device \(ENOSPC\)"):
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
