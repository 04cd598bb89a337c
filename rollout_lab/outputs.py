"""Output safety: a run writes only inside its output folder, and only when it is complete.

A relative ``--out`` may not climb out of the current folder; the folder may not be the
filesystem root, the home folder, the current folder or one of its parents, nor a folder
holding other files; an earlier complete run is replaced only with ``--force``.  Nothing is
written until the run has finished computing; every file is written beside its target and
renamed into place; ``summary.json`` is written last, so a folder holds a complete run
exactly when it holds ``summary.json``.  While the files are being written the folder holds
an ``INCOMPLETE`` marker, left behind if the writing is interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from replay.errors import UserInputError
from rollout_lab.signals import deferred_signals

__all__ = [
    "INCOMPLETE",
    "OUTPUT_FILES",
    "SUMMARY",
    "Payload",
    "check_out_dir",
    "check_out_file",
    "commit_run",
    "write_atomic",
]

SUMMARY = "summary.json"
INCOMPLETE = "INCOMPLETE"
#: Every file a run may write into its folder; summary.json is always the last one.
OUTPUT_FILES = ("report.html", "junit.xml", "requests.parquet", SUMMARY)


def _climbs_out(path: Path) -> bool:
    """A relative path that leaves the current folder once ``..`` are applied (lexically)."""
    if path.is_absolute():
        return False
    normal = os.path.normpath(path)
    return normal == os.pardir or normal.startswith(os.pardir + os.sep)


def _writable_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above ``path``."""
    node = path
    while not node.exists() and node != node.parent:
        node = node.parent
    return node


def check_out_dir(
    out: Path, *, option: str = "--out", force: bool = False, base: bool = False
) -> Path:
    """Check an output folder before a run; returns it unchanged.

    Refused: a relative path that climbs out of the current folder with ``..``; the root,
    the home folder, the current folder or any of its parents; an existing file; a folder
    that cannot be written; and (unless ``base``, a folder of run folders such as ``check
    --out``) a folder holding files that are not a rollout-lab run, or a complete earlier
    run without ``force``.  An interrupted earlier run (``INCOMPLETE``, no ``summary.json``)
    may be reused without ``force``.
    """
    shown = f"{option} {out}"
    if _climbs_out(out):
        raise UserInputError(
            f"{shown}: a relative output folder must stay inside the current folder, got one "
            "that climbs out with '..' (give an absolute path to write elsewhere)"
        )
    resolved = out.resolve()
    here = Path.cwd().resolve()
    try:
        home: Path | None = Path.home().resolve()
    except (RuntimeError, KeyError):
        home = None
    if resolved == resolved.parent or resolved == home:
        raise UserInputError(
            f"{shown}: the output folder must be a dedicated folder, got {resolved} "
            "(choose e.g. runs/NAME)"
        )
    if here == resolved or here.is_relative_to(resolved):
        raise UserInputError(
            f"{shown}: the output folder must not be the current folder or one of its parents, "
            f"got {resolved} (choose e.g. runs/NAME)"
        )
    if resolved.exists() and not resolved.is_dir():
        raise UserInputError(f"{shown}: exists and is not a folder (choose another path)")
    existing = _writable_ancestor(resolved)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(
            f"{shown}: cannot write into {existing} (permission denied; choose another folder)"
        )
    if base or not resolved.is_dir():
        return out
    names = {entry.name for entry in resolved.iterdir()}
    ours = set(OUTPUT_FILES) | {INCOMPLETE}
    others = sorted(
        n for n in names if n not in ours and not (n.startswith(".") and n.endswith(".tmp"))
    )
    if others and SUMMARY not in names and INCOMPLETE not in names:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UserInputError(
            f"{shown}: the folder holds files that are not a rollout-lab run ({listed}); "
            "choose a new or empty folder"
        )
    if SUMMARY in names and not force:
        raise UserInputError(f"{shown}: holds an earlier run (pass --force to overwrite it)")
    return out


def check_out_file(path: Path, *, option: str) -> Path:
    """Check a single output file (e.g. ``--junit``): no ``..`` escape, not a folder."""
    if _climbs_out(path):
        raise UserInputError(
            f"{option} {path}: a relative output file must stay inside the current folder, got "
            "one that climbs out with '..' (give an absolute path to write elsewhere)"
        )
    if path.is_dir():
        raise UserInputError(f"{option} {path}: is a folder, expected a file path")
    return path


Payload = str | bytes | Callable[[Path], None]


def write_atomic(path: Path, data: Payload) -> None:
    """Write beside the target, flush it to disk, then rename: a reader never sees half a file.

    ``data`` is text (UTF-8), bytes, or a function that writes the file at the path it is
    given (e.g. a polars ``write_parquet``).  The temporary file is removed on any failure,
    including an interruption.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as handle:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a folder; the renames are still atomic
    finally:
        os.close(fd)


def commit_run(target: Path, files: dict[str, Payload], summary: str, *, note: str) -> None:
    """Write a finished run into ``target``: marker, outputs, ``summary.json``, no marker.

    Order: ``INCOMPLETE`` (with ``note``) is written first; an earlier run's summary.json is
    removed (the folder no longer claims a complete run), then its other outputs; each file
    of ``files`` is written atomically; summary.json is renamed into place and the marker
    removed without letting a signal in between.  Files other than the outputs are left.
    """
    unknown = set(files) - set(OUTPUT_FILES[:-1])
    if unknown:
        raise ValueError(f"not run outputs: {sorted(unknown)}")
    target.mkdir(parents=True, exist_ok=True)
    marker = target / INCOMPLETE
    write_atomic(marker, note)
    with deferred_signals():
        (target / SUMMARY).unlink(missing_ok=True)
    for name in OUTPUT_FILES[:-1]:
        if name not in files:
            (target / name).unlink(missing_ok=True)
    for name, data in files.items():
        write_atomic(target / name, data)
    with deferred_signals():
        write_atomic(target / SUMMARY, summary)
        marker.unlink()
        _fsync_dir(target)
