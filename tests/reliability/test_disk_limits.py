"""Runs that cannot write: a full disk (ENOSPC), a file-size limit (EFBIG), a read-only file
system.  Each is one line on stderr (exit 4 for "computed but could not write", exit 2 when
refused before running), no traceback, no file that looks complete, and an earlier run
replaced with ``--force`` survives intact.

The full disk and the read-only file system are small tmpfs mounts made by the test (root
and mount rights needed, else the test is skipped with the reason); the size limit is
``RLIMIT_FSIZE`` (``ulimit -f``) in a child process.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_support import PYTHON, QUICKSTART, ROOT, Outcome, subprocess_env

from rollout_lab.outputs import MANIFEST, SUMMARY

TINY = (
    "--set", "traffic.duration=5m", "--set", "traffic.users=1000", "--set", "traffic.items=200",
    "--set", "traffic.arrivals.mean_rate_per_s=10",
)  # fmt: skip


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (a run with requests.parquet takes about 0.35 MB)."""
    where = tmp_path / "disk"
    _mount_tmpfs(where, "1m")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> None:
    """Fill the disk to the last byte with a file of the user's (unbuffered writes)."""
    fd = os.open(disk / "filler.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for block in (65_536, 4_096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                continue
    finally:
        os.close(fd)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_full_disk_keeps_the_earlier_run_and_says_so(
    small_disk: Path, cli: Callable[..., Outcome]
) -> None:
    """With --force on a full disk the earlier complete run was destroyed before the new one
    could be written."""
    out = small_disk / "run"
    first = cli("run", str(QUICKSTART), "--out", str(out), "--requests-parquet", "--quiet", *TINY)
    assert first.code == 0, first.err
    before = _snapshot(out)
    _fill(small_disk)
    result = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--seed", "3", *TINY)
    assert result.code == 4, result.err
    assert len(result.err) == 1, result.err
    assert result.err[0].startswith(f"rollout-lab: error: could not write into {out}: ")
    assert "No space left on device (ENOSPC)" in result.err[0]
    assert f"({out} is as it was)" in result.err[0]
    assert _snapshot(out) == before  # byte for byte, no temporary file left


def test_full_disk_on_a_new_folder_leaves_nothing(
    small_disk: Path, cli: Callable[..., Outcome]
) -> None:
    _fill(small_disk)
    out = small_disk / "new" / "run"
    result = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    assert result.code == 4, result.err
    assert len(result.err) == 1 and "ENOSPC" in result.err[0]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler.bin"]


def test_read_only_file_system_is_refused_before_running(
    small_disk: Path, cli: Callable[..., Outcome]
) -> None:
    done = subprocess.run(
        ["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    result = cli("run", str(QUICKSTART), "--out", str(small_disk / "run"), *TINY)
    assert result.code == 2
    assert result.err == [
        f"rollout-lab: error: --out {small_disk / 'run'}: {small_disk} is on a read-only file "
        "system (choose a writable folder)"
    ]


def _limited_run(out: Path, limit_bytes: int, *extra: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # in the child only
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [PYTHON, "-m", "rollout_lab.cli", "run", str(QUICKSTART), "--out", str(out), *TINY,
         *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**subprocess_env(), "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=limit,
        timeout=300,
        check=False,
    )  # fmt: skip


def test_file_size_limit_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """A file-size limit (EFBIG) crashed with a traceback."""
    out = tmp_path / "run"
    done = _limited_run(out, 100_000)  # report.html is about 250 kB
    assert done.returncode == 4, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "File too large (EFBIG)" in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()


def test_file_size_limit_keeps_the_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _limited_run(out, 10**9)
    assert first.returncode == 0, first.stderr
    before = _snapshot(out)
    assert MANIFEST in before and SUMMARY in before
    done = _limited_run(out, 100_000, "--force", "--seed", "5")
    assert done.returncode == 4, done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert _snapshot(out) == before
    assert os.stat(out).st_nlink >= 2
