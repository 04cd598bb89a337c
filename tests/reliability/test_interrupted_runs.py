"""Killing a run: ``python -m rollout_lab.cli run`` is stopped by SIGTERM (or SIGINT) after a random
delay (seeded), and what it leaves must never look complete unless it is.

The rule (README, "Safety and limits"): a run folder is complete exactly when it holds
``summary.json``; then it also holds ``report.html`` (and ``junit.xml`` when the scenario has
expectations), the manifest and no ``INCOMPLETE``.  A signal (as opposed to SIGKILL) can no
longer leave anything in between: before the renames the folder is as it was (absent here),
during them the signal waits until they are done.  No temporary file is ever left behind.
The exit code is 143 for SIGTERM and 130 for SIGINT, with one line on stderr that says
which of the two the folder holds.  A signal after the command has finished is ignored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_support import PYTHON, QUICKSTART, ROOT, SMALL, subprocess_env

from rollout_lab.commands.run import run_scenario
from rollout_lab.outputs import INCOMPLETE, MANIFEST, OUTPUT_FILES, SUMMARY
from rollout_lab.signals import RunInterrupted, stop_on_signals

#: Several seconds of work: world, training, ~200k requests, report.
ARGS = (
    "--set",
    "traffic.users=5000",
    "--set",
    "traffic.items=1000",
    "--set",
    "traffic.duration=2h",
    "--set",
    "traffic.arrivals.mean_rate_per_s=25",
)
STOP_WITHIN_S = 15.0


def check_folder(out: Path) -> str:
    """Assert the rule above; return "complete", "incomplete" or "absent"."""
    if not out.exists():
        return "absent"
    names = {path.name for path in out.iterdir()}
    assert not [n for n in names if n.endswith(".tmp")], f"temporary files left: {names}"
    assert names <= {*OUTPUT_FILES, INCOMPLETE, MANIFEST}, names
    if SUMMARY in names:
        assert INCOMPLETE not in names and MANIFEST in names, names
        assert {"report.html", "junit.xml"} <= names, names
        summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
        requests = summary["requests"]
        assert (
            requests["arrivals"] == requests["served"] + requests["fallback"] + requests["dropped"]
        )
        assert "</html>" in (out / "report.html").read_text(encoding="utf-8")[-200:]
        return "complete"
    assert not names or INCOMPLETE in names, f"outputs without summary.json or marker: {names}"
    return "incomplete" if names else "absent"


def kill_after(delay_s: float, out: Path, signum: int) -> tuple[int, list[str], str, float]:
    """Run, send ``signum`` after ``delay_s`` (unless it finished), wait; return the exit code,
    stderr lines, the folder's state and how long the stop took."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "rollout_lab.cli", "run", str(QUICKSTART), "--out", str(out), *ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
    )
    time.sleep(delay_s)
    sent = time.monotonic()
    signalled = proc.poll() is None
    if signalled:
        proc.send_signal(signum)
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the run did not stop within 120 s of signal {signum}")
    took = time.monotonic() - sent
    return proc.returncode, err.splitlines(), check_folder(out), took if signalled else 0.0


def _check_exit(code: int, err: list[str], state: str, signum: int) -> None:
    name = signal.Signals(signum).name
    if code in (0, 1):  # finished before the signal arrived
        assert state == "complete"
        return
    if code == -signum:
        # The default action: the signal came before the CLI installed its handlers (Python
        # still starting); after the command, signals are ignored.
        assert state == "absent"
        return
    assert code == 128 + signum, "\n".join([f"exit code {code}", *err])
    assert len(err) == 1 and err[0].startswith(f"rollout-lab: stopped by {name}"), err
    assert state in ("absent", "complete"), state
    if state == "complete":
        assert "it holds the complete new run" in err[0], err
    else:
        assert "before writing any output" in err[0], err


def _delays(seed: int, count: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(d) for d in rng.uniform(0.3, 7.0, count)]


@pytest.mark.parametrize("delay_s", _delays(2024, 3), ids=lambda d: f"{d:.2f}s")
def test_sigterm_at_a_random_point(delay_s: float, tmp_path: Path) -> None:
    code, err, state, took = kill_after(delay_s, tmp_path / "run", signal.SIGTERM)
    _check_exit(code, err, state, signal.SIGTERM)
    assert took < STOP_WITHIN_S


def test_sigint_stops_with_130(tmp_path: Path) -> None:
    code, err, state, took = kill_after(2.5, tmp_path / "run", signal.SIGINT)
    _check_exit(code, err, state, signal.SIGINT)
    assert took < STOP_WITHIN_S


def test_check_with_jobs_stops_every_worker_cleanly(tmp_path: Path) -> None:
    """SIGTERM to ``check --jobs 2``: exit 143 with one line, every scenario's folder absent or
    complete (the workers clean up their staged files), no worker left running."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("a.toml", "b.toml"):
        (folder / name).write_text(QUICKSTART.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [PYTHON, "-m", "rollout_lab.cli", "check", str(folder), "--out", str(out),
         "--jobs", "2", *ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=subprocess_env(), start_new_session=True,
    )  # fmt: skip
    time.sleep(6.0)  # past the workers' start-up, inside the runs
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("check --jobs 2 did not stop within 120 s of SIGTERM")
    lines = err.splitlines()
    if proc.returncode in (0, 1):  # both finished before the signal (a very fast machine)
        assert all(check_folder(out / n) == "complete" for n in ("a", "b"))
        return
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert lines and lines[-1].startswith("rollout-lab: stopped by SIGTERM"), err
    for name in ("a", "b"):
        assert check_folder(out / name) in ("absent", "complete")
    deadline = time.monotonic() + 10.0  # the workers (and multiprocessing's helper) exit
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    left = subprocess.run(
        ["ps", "-o", "pid,args", "--no-headers", "-s", str(proc.pid)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"processes left running 10 s after check stopped:\n{left}")


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", _delays(7, 12), ids=lambda d: f"{d:.2f}s")
def test_sigterm_at_many_random_points(delay_s: float, tmp_path: Path) -> None:
    code, err, state, took = kill_after(delay_s, tmp_path / "run", signal.SIGTERM)
    _check_exit(code, err, state, signal.SIGTERM)
    assert took < STOP_WITHIN_S


def test_the_rule_itself(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert check_folder(out) == "absent"
    out.mkdir()
    assert check_folder(out) == "absent"
    (out / "report.html").write_text("<html></html>", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"outputs without summary\.json or marker"):
        check_folder(out)
    (out / INCOMPLETE).write_text("unfinished", encoding="utf-8")
    assert check_folder(out) == "incomplete"
    (out / ".summary.json.tmp").write_text("{", encoding="utf-8")
    with pytest.raises(AssertionError, match="temporary files left"):
        check_folder(out)


def test_signal_inside_the_simulation_stops_the_run_in_process(tmp_path: Path) -> None:
    """A deterministic stop in the middle of the event loop (the signal arrives inside a
    SimPy process, which re-raises it): nothing is written, the stop carries the folder."""
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if done > 0:
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "run"
    overrides = [SMALL[i + 1] for i in range(0, len(SMALL), 2)]
    overrides += ["traffic.arrivals.mean_rate_per_s=120"]  # more than one block of arrivals
    with pytest.raises(RunInterrupted) as caught, stop_on_signals():
        run_scenario(QUICKSTART, out, overrides, progress=progress)
    assert caught.value.exit_code == 143
    assert caught.value.out == out
    assert calls[0] == 0 and calls[-1] > 0
    assert check_folder(out) == "absent"


def test_a_signal_after_the_command_has_finished_is_ignored(tmp_path: Path) -> None:
    """A SIGTERM just after the handlers were restored killed the process with no message;
    now the process exits with the command's own code."""
    script = (
        "import os, signal, sys\n"
        "from rollout_lab.cli import main\n"
        f"code = main(['validate', {str(QUICKSTART)!r}], exiting=True)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('still here', flush=True)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, cwd=ROOT, env=subprocess_env(),
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "still here"
    assert done.stderr == ""


def test_a_signal_while_printing_after_the_commit_says_the_run_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rollout_lab.commands.run as run_command
    from rollout_lab.cli import main

    def console(summary: dict[str, object], target: Path, **_options: object) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        return "not printed"

    monkeypatch.setattr(run_command, "_console", console)
    out = tmp_path / "run"
    code = main(["run", str(QUICKSTART), "--out", str(out), *SMALL])
    err = capsys.readouterr().err.splitlines()
    assert code == 143
    assert err == [
        f"rollout-lab: stopped by SIGTERM after writing {out}: it holds the complete new run"
    ]
    assert check_folder(out) == "complete"
