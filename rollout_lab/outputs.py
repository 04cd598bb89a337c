"""Output safety: a run writes only inside its output folder, only files it can prove are its
own, and only when it is complete.

A folder is an earlier run only if it holds the lab's manifest, ``.rollout-lab.json``: the run
id, the scenario and every file the run wrote with its size and sha256.  The rules:

* a relative ``--out`` may not climb out of the current folder; the root, the home folder, the
  current folder and its parents, a file, a dangling link, a read-only or virtual file system
  and names longer than the file system allows are refused before anything runs;
* a folder without a manifest must be absent or empty;
* without ``--force`` a run refuses a folder holding an earlier run, or any file it would write;
* with ``--force`` a run replaces exactly the files the manifest lists whose content still
  matches; a file it would write that is not such a file (the user's own, one changed since,
  a link, a folder) is refused before anything runs; a listed file changed since that the new
  run does not write is left alone and reported; nothing else in the folder is touched.

Nothing is written until the run has been computed.  Then (:func:`commit_run`) every new file
is written beside its final name under a random temporary name created exclusively
(``O_CREAT | O_EXCL | O_NOFOLLOW``, never following or reusing anything already there),
flushed to disk, and only when all of them are written are they renamed into place, with
signals held: the earlier run stays complete until the new one is, so a full disk, a size
limit or a signal while writing leaves the folder exactly as it was.  ``summary.json`` is
renamed last, so a folder holds a complete run exactly when it holds ``summary.json``; during
the renames (a few milliseconds) the folder holds an ``INCOMPLETE`` marker, which stays only
if the process is killed outright (SIGKILL, power loss) in that instant.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from replay.errors import RolloutLabError, UserInputError
from rollout_lab.signals import RunInterrupted, deferred_signals

__all__ = [
    "INCOMPLETE",
    "MANIFEST",
    "OUTPUT_FILES",
    "SUMMARY",
    "Commit",
    "OutputWriteError",
    "Payload",
    "check_out_dir",
    "check_out_file",
    "commit_run",
    "file_marker_ok",
    "output_names",
    "write_atomic",
]

SUMMARY = "summary.json"
INCOMPLETE = "INCOMPLETE"
MANIFEST = ".rollout-lab.json"
#: Every output a run may write into its folder; summary.json is always the last one.
OUTPUT_FILES = ("report.html", "junit.xml", "requests.parquet", SUMMARY)
#: Names a manifest may list: anything else in a manifest is ignored, never removed.
_LISTABLE = frozenset((*OUTPUT_FILES, INCOMPLETE))
MANIFEST_KIND = "rollout-lab run"
MANIFEST_VERSION = 1
#: A manifest larger than this is not one of ours.
_MANIFEST_MAX_BYTES = 1_000_000
_CHUNK = 1 << 20

Payload = str | bytes | Callable[[IO[bytes]], None]
"""Text (UTF-8), bytes, or a function that writes the file into the binary handle it is given
(e.g. a polars ``DataFrame.write_parquet``)."""


class OutputWriteError(RolloutLabError):
    """The run was computed but its files could not be written (a full disk, a file-size
    limit, a read-only or vanished folder).  One line; the CLI exits with code 4."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# --- paths ---------------------------------------------------------------------------------


def _climbs_out(path: Path) -> bool:
    """A relative path that leaves the current folder once ``..`` are applied (lexically)."""
    if path.is_absolute():
        return False
    normal = os.path.normpath(path)
    return normal == os.pardir or normal.startswith(os.pardir + os.sep)


def _nearest_existing(path: Path) -> Path:
    """The nearest existing path at or above ``path`` (links not followed)."""
    node = path
    while not os.path.lexists(node) and node != node.parent:
        node = node.parent
    return node


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _errno_name(error: OSError) -> str:
    code = error.errno
    name = errno.errorcode.get(code, "") if code is not None else ""
    reason = error.strerror or type(error).__name__
    return f"{reason} ({name})" if name else reason


def _check_path(out: Path, shown: str, *, kind: str = "folder") -> Path:
    """Refusals that need only the path: escapes, long names, files and dangling links on the
    way, special places.  Returns the absolute path (links followed where they exist)."""
    if _climbs_out(out):
        raise UserInputError(
            f"{shown}: a relative output {kind} must stay inside the current folder, got one "
            "that climbs out with '..' (give an absolute path to write elsewhere)"
        )
    text = os.fsencode(out)
    if len(text) >= 4096:
        raise UserInputError(
            f"{shown[:80]}…: the path is {len(text)} bytes, longer than the file system allows "
            "(4,095; choose a shorter path)"
        )
    absolute = Path(os.path.abspath(out))
    existing = _nearest_existing(absolute)
    limit = _name_max(existing if existing.is_dir() else existing.parent)
    for part in absolute.parts[1:]:
        if len(os.fsencode(part)) > limit:
            raise UserInputError(
                f"{shown[:80]}…: the name {part[:40]!r}… is {len(os.fsencode(part))} bytes, longer "
                f"than the file system allows ({limit}; choose a shorter name)"
            )
    # Walk down from the root: every existing component must be a folder (or a link to one).
    node = Path(absolute.anchor)
    for part in absolute.parts[1:-1]:
        node = node / part
        if os.path.islink(node) and not node.exists():
            raise UserInputError(
                f"{shown}: {node} is a symbolic link to {os.readlink(node)}, which does not "
                "exist (create it or choose another path)"
            )
        if node.exists() and not node.is_dir():
            raise UserInputError(f"{shown}: {node} is a file, not a folder (choose another path)")
        if not node.exists():
            break
    if os.path.islink(absolute) and not absolute.exists():
        raise UserInputError(
            f"{shown}: is a symbolic link to {os.readlink(absolute)}, which does not exist "
            f"(create the {kind} it names or choose another path)"
        )
    return absolute.resolve() if absolute.exists() else absolute


def _check_writable(path: Path, shown: str) -> None:
    """The nearest existing folder at or above ``path`` can take new files."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        existing = existing.parent
    try:
        info = os.statvfs(existing)
    except OSError as error:
        raise UserInputError(f"{shown}: cannot inspect {existing} ({_errno_name(error)})") from None
    if info.f_flag & os.ST_RDONLY:
        raise UserInputError(
            f"{shown}: {existing} is on a read-only file system (choose a writable folder)"
        )
    if info.f_blocks == 0:
        raise UserInputError(
            f"{shown}: {existing} is on a virtual file system such as /proc or /sys, which "
            "cannot hold files (choose a folder on a disk)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(
            f"{shown}: cannot write into {existing} (permission denied; choose another folder)"
        )


# --- manifests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an earlier run wrote (see the module docstring): for each name, the contents the
    file may have (two while a run was replacing another: the earlier and the new one)."""

    run_id: str
    scenario: str
    files: dict[str, tuple[FileRecord, ...]]
    state: str = "complete"


#: Temporary names the lab gives files it is writing (see ``_temp_name``).
_TEMP = re.compile(
    r"^\.(report\.html|junit\.xml|requests\.parquet|summary\.json|INCOMPLETE|"
    r"(?:writing)?\.rollout-lab\.json)\.[0-9a-f]{16}\.tmp$"
)


def _records(raw: Any, into: dict[str, tuple[FileRecord, ...]], *, temporary: bool) -> None:
    if not isinstance(raw, dict):
        return
    for name, entry in raw.items():
        allowed = _TEMP.match(name) if temporary else name in _LISTABLE
        if not allowed or not isinstance(entry, dict):
            continue  # a manifest can never make the lab touch a file it does not write
        size, digest = entry.get("size"), entry.get("sha256")
        if isinstance(size, int) and not isinstance(size, bool) and isinstance(digest, str):
            into[name] = (*into.get(name, ()), FileRecord(size, digest))


def _open_in(dir_fd: int, name: str, flags: int = os.O_RDONLY) -> int:
    # 0o666: a new file gets the usual permissions (the umask applies), never executable.
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)


def _read_manifest(dir_fd: int, shown: str) -> Manifest | None:
    """The folder's manifest; None when there is none; refused when it is not one of ours."""
    try:
        info = os.stat(MANIFEST, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    bad = f"{shown}: holds {MANIFEST}, which is not a rollout-lab run manifest"
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MANIFEST_MAX_BYTES:
        raise UserInputError(f"{bad} (move it away or choose another folder)")
    fd = _open_in(dir_fd, MANIFEST)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(_MANIFEST_MAX_BYTES + 1)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise UserInputError(f"{bad} (move it away or choose another folder)")
    files: dict[str, tuple[FileRecord, ...]] = {}
    _records(data.get("files"), files, temporary=False)
    _records(data.get("earlier"), files, temporary=False)
    _records(data.get("temporary"), files, temporary=True)
    return Manifest(
        run_id=str(data.get("run_id", "")),
        scenario=str(data.get("scenario", "")),
        files=files,
        state=str(data.get("state", "complete")),
    )


def _sha256_fd(fd: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _matches(dir_fd: int, name: str, records: tuple[FileRecord, ...]) -> bool:
    """``name`` is a regular file (not a link) with exactly a recorded size and sha256."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size not in {r.size for r in records}:
        return False
    try:
        fd = _open_in(dir_fd, name)
    except OSError:
        return False
    try:
        return FileRecord(*_sha256_fd(fd)) in records
    finally:
        os.close(fd)


def _what_is(dir_fd: int, name: str) -> str | None:
    """None when ``name`` is absent, else a few words saying what it is."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    if not stat.S_ISREG(info.st_mode):
        return "a special file"
    return "a file"


@dataclass(frozen=True, slots=True)
class Plan:
    """What committing a run into a folder will do to the files already there.

    replace    earlier-run files (listed, unchanged) the new run removes or overwrites
    changed    listed files changed since the earlier run, which the new run leaves alone
    """

    replace: frozenset[str] = frozenset()
    changed: tuple[str, ...] = ()


def _listed(names: Iterable[str], limit: int = 3) -> str:
    shown = sorted(names)
    return ", ".join(shown[:limit]) + (", ..." if len(shown) > limit else "")


def _plan(dir_fd: int, shown: str, writes: frozenset[str], force: bool) -> Plan:
    """Inspect an existing output folder (see the module docstring for the rules)."""
    manifest = _read_manifest(dir_fd, shown)
    entries = set(os.listdir(dir_fd))
    if manifest is None:
        if not entries:
            return Plan()
        ours = sorted(entries & (_LISTABLE | {MANIFEST}))
        if ours and not force:
            raise UserInputError(
                f"{shown}: holds {ours[0]}, which this run would write (move it away or "
                "choose a new or empty folder)"
            )
        raise UserInputError(
            f"{shown}: holds files rollout-lab did not write ({_listed(entries)}): it only "
            "writes into a new or empty folder or over an earlier run of its own (no "
            f"{MANIFEST} here); choose a new or empty folder"
        )
    if not force:
        raise UserInputError(f"{shown}: holds an earlier run (pass --force to replace it)")
    replace: set[str] = set()
    changed: list[str] = []
    for name, records in sorted(manifest.files.items()):
        if _what_is(dir_fd, name) is None:
            continue
        if _matches(dir_fd, name, records):
            replace.add(name)
        elif not _TEMP.match(name):
            changed.append(name)
    for name in sorted(writes | {INCOMPLETE}):
        what = _what_is(dir_fd, name)
        if what is not None and name not in replace:
            why = "changed since the earlier run" if name in changed else "not written by it"
            raise UserInputError(
                f"{shown}: {name} is {what} {why}; --force replaces only the earlier run's "
                f"own unchanged files (move {name} away or choose another folder)"
            )
    return Plan(frozenset(replace), tuple(n for n in changed if n not in writes))


@contextmanager
def _folder_fd(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _inspect(resolved: Path, shown: str, writes: frozenset[str], force: bool) -> Plan:
    if not resolved.is_dir():
        return Plan()
    try:
        with _folder_fd(resolved) as dir_fd:
            return _plan(dir_fd, shown, writes, force)
    except OSError as error:
        raise UserInputError(f"{shown}: cannot read the folder ({_errno_name(error)})") from None


def output_names(expectations: bool, requests_parquet: bool) -> frozenset[str]:
    """The outputs a run writes: always report.html and summary.json; junit.xml when the
    scenario has expectations; requests.parquet when asked for."""
    names = {"report.html", SUMMARY}
    if expectations:
        names.add("junit.xml")
    if requests_parquet:
        names.add("requests.parquet")
    return frozenset(names)


def check_out_dir(
    out: Path,
    *,
    option: str = "--out",
    force: bool = False,
    base: bool = False,
    writes: Iterable[str] = OUTPUT_FILES,
) -> Plan:
    """Check an output folder before a run; returns what committing into it will replace.

    Refused: see the module docstring.  ``base`` checks a folder of run folders (``check
    --out``): only where it is, not what it holds.  ``writes`` are the outputs this run will
    write (summary.json and report.html always; junit.xml, requests.parquet when asked).
    """
    shown = f"{option} {out}"
    resolved = _check_path(out, shown)
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
    if os.path.lexists(resolved) and not resolved.is_dir():
        raise UserInputError(f"{shown}: exists and is not a folder (choose another path)")
    _check_writable(resolved, shown)
    if base:
        return Plan()
    return _inspect(resolved, shown, frozenset(writes), force)


def check_out_file(path: Path, *, option: str, force: bool = False, marker: bytes = b"") -> Path:
    """Check a single output file (``--junit``, ``--markdown``) before anything runs.

    Refused like a folder's path (escapes, long names, files on the way, dangling links,
    read-only places), plus: a folder or special file at the path; an existing file without
    ``force``; with ``force``, an existing file that does not carry the lab's ``marker`` near
    its start (a file the lab did not write is never replaced).
    """
    shown = f"{option} {path}"
    absolute = _check_path(path, shown, kind="file")
    if os.path.lexists(absolute):
        info = os.lstat(absolute)
        if stat.S_ISDIR(info.st_mode):
            raise UserInputError(f"{shown}: is a folder, expected a file path")
        if not stat.S_ISREG(info.st_mode):
            raise UserInputError(
                f"{shown}: is a symbolic link or special file (give the path of a new file)"
            )
        if not force:
            raise UserInputError(f"{shown}: exists (pass --force to replace it, or move it away)")
        if not file_marker_ok(absolute, marker):
            raise UserInputError(
                f"{shown}: exists and was not written by rollout-lab; --force replaces only its "
                "own files (move it away or choose another path)"
            )
    _check_writable(absolute.parent, shown)
    return path


def file_marker_ok(path: Path, marker: bytes) -> bool:
    """A regular file (not a link) whose first 4 kB hold ``marker``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        return bool(marker) and marker in handle.read(4096)


# --- writing -------------------------------------------------------------------------------


def _temp_name(final: str) -> str:
    return f".{final}.{secrets.token_hex(8)}.tmp"


@dataclass(slots=True)
class _Staged:
    """Files written under temporary names in one folder, not yet renamed into place."""

    dir_fd: int
    folder: Path
    temps: dict[str, str] = field(default_factory=dict)  # final name -> temporary name
    records: dict[str, FileRecord] = field(default_factory=dict)

    def write(self, final: str, data: Payload) -> None:
        """Create a fresh temporary file exclusively, write ``data``, flush it to disk."""
        for _attempt in range(16):
            temp = _temp_name(final)
            try:
                fd = _open_in(self.dir_fd, temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_TRUNC)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 16 collisions of 64 random bits
            raise FileExistsError(errno.EEXIST, "no free temporary name", final)
        self.temps[final] = temp
        with os.fdopen(fd, "w+b") as handle:
            if callable(data):
                data(handle)
            else:
                # A file name that is not valid UTF-8 (surrogate escapes) is written escaped.
                text = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
                handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            size, digest = _sha256_fd(handle.fileno())
        self.records[final] = FileRecord(size, digest)

    def discard(self) -> None:
        for temp in self.temps.values():
            with suppress(OSError):
                os.unlink(temp, dir_fd=self.dir_fd)
        self.temps.clear()

    def rename(self, staged_as: str, final: str | None = None) -> None:
        os.rename(
            self.temps.pop(staged_as),
            final or staged_as,
            src_dir_fd=self.dir_fd,
            dst_dir_fd=self.dir_fd,
        )


def _as_json(records: dict[str, FileRecord]) -> dict[str, dict[str, Any]]:
    return {name: {"size": r.size, "sha256": r.sha256} for name, r in sorted(records.items())}


def _manifest_text(
    run_id: str,
    scenario: str,
    files: dict[str, FileRecord],
    *,
    earlier: dict[str, FileRecord] | None = None,
    temporary: dict[str, FileRecord] | None = None,
) -> str:
    """The manifest; ``earlier`` and ``temporary`` only while a run is being renamed in."""
    document: dict[str, Any] = {
        "kind": MANIFEST_KIND,
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "scenario": scenario,
        "state": "complete" if earlier is None else "writing",
        "written_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": _as_json(files),
    }
    if earlier is not None:
        document["earlier"] = _as_json(earlier)
        document["temporary"] = _as_json(temporary or {})
    return json.dumps(document, indent=2) + "\n"


def _make_folders(target: Path) -> list[Path]:
    """Create ``target`` and missing parents; returns the folders created, deepest last."""
    missing: list[Path] = []
    node = target
    while not os.path.lexists(node) and node != node.parent:
        missing.append(node)
        node = node.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with suppress(OSError):
            folder.rmdir()


def _fsync_folder(dir_fd: int) -> None:
    with suppress(OSError):  # some file systems cannot sync a folder; renames are still atomic
        os.fsync(dir_fd)


@dataclass(frozen=True, slots=True)
class Commit:
    """What :func:`commit_run` did: the run id, files written, earlier files removed, and
    listed files changed since the earlier run that were left alone."""

    run_id: str
    written: tuple[str, ...]
    removed: tuple[str, ...]
    left_changed: tuple[str, ...]


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def commit_run(
    target: Path,
    files: dict[str, Payload],
    summary: str,
    *,
    note: str,
    force: bool = False,
    scenario: str = "",
    option: str = "--out",
) -> Commit:
    """Write a computed run into ``target`` (see the module docstring for the order).

    ``files`` are the outputs other than summary.json.  Raises :class:`UserInputError` when
    the folder changed since it was checked in a way the rules refuse, and
    :class:`OutputWriteError` when the files cannot be written; in both cases, and when a
    signal arrives before the renames, the folder is left as it was.  A signal during the
    renames is held until they are done (the run is then complete) and raised after, with
    ``RunInterrupted.folder`` saying which.
    """
    unknown = set(files) - set(OUTPUT_FILES[:-1])
    if unknown:
        raise ValueError(f"not run outputs: {sorted(unknown)}")
    writes = frozenset({*files, SUMMARY})
    try:
        created = _make_folders(target)
    except OSError as error:
        raise OutputWriteError(
            f"could not create the output folder {target}: {_errno_name(error)}; the run was "
            "computed but nothing was written"
        ) from None
    state = "unchanged"
    try:
        with _folder_fd(target) as dir_fd:
            staged = _Staged(dir_fd, target)
            try:
                plan = _plan(dir_fd, f"{option} {target}", writes, force)
                earlier = _earlier_records(dir_fd, plan)
                run_id = new_run_id()
                _stage(staged, files, summary, note, run_id, scenario, earlier)
                state = "renaming"
                removed = _swap(staged, files, plan, writes)
                state = "complete"
            finally:
                staged.discard()
    except OSError as error:
        if state == "renaming":
            raise OutputWriteError(
                f"could not finish writing {target}: {_errno_name(error)}; its files are not a "
                f"complete run (marked {INCOMPLETE}; run again with --force)"
            ) from None
        _remove_empty(created)
        raise OutputWriteError(
            f"could not write into {target}: {_errno_name(error)}; the run was computed but "
            f"nothing was written ({target} is as it was)"
        ) from None
    except RunInterrupted as stop:
        stop.out = target
        stop.folder = "complete" if state != "unchanged" else "unchanged"
        if state == "unchanged":
            _remove_empty(created)
        raise
    except BaseException:
        if state == "unchanged":
            _remove_empty(created)
        raise
    return Commit(run_id, tuple(sorted(writes)), removed, plan.changed)


def _earlier_records(dir_fd: int, plan: Plan) -> dict[str, FileRecord]:
    """The earlier run's records of the files about to be replaced (as they are on disk)."""
    manifest = _read_manifest(dir_fd, "")
    if manifest is None:
        return {}
    out: dict[str, FileRecord] = {}
    for name in plan.replace:
        if name in _LISTABLE:
            fd = _open_in(dir_fd, name)
            try:
                out[name] = FileRecord(*_sha256_fd(fd))
            finally:
                os.close(fd)
    return out


_WRITING = "writing" + MANIFEST  # the staged manifest that lists old and new files together


def _stage(
    staged: _Staged,
    files: dict[str, Payload],
    summary: str,
    note: str,
    run_id: str,
    scenario: str,
    earlier: dict[str, FileRecord],
) -> None:
    """Write every new file, and both manifests, under temporary names."""
    for name, data in (*files.items(), (SUMMARY, summary), (INCOMPLETE, note)):
        staged.write(name, data)
    new = {n: r for n, r in staged.records.items() if n != INCOMPLETE}
    staged.write(MANIFEST, _manifest_text(run_id, scenario, new))
    # While files are renamed the folder holds old and new ones, and temporary names: the
    # manifest in place meanwhile lists them all, so that whatever a kill leaves is known.
    temporary = {staged.temps[n]: r for n, r in staged.records.items()}
    listing = _manifest_text(
        run_id, scenario, dict(staged.records), earlier=earlier, temporary=temporary
    )
    staged.write(_WRITING, listing)


def _swap(
    staged: _Staged, files: dict[str, Payload], plan: Plan, writes: frozenset[str]
) -> tuple[str, ...]:
    """Rename the staged files into place, signals held: only renames and unlinks, which
    need no free space.  Returns the earlier files removed (not replaced)."""
    dir_fd = staged.dir_fd
    removed: list[str] = []
    with deferred_signals():
        staged.rename(_WRITING, MANIFEST)
        staged.rename(INCOMPLETE)
        if SUMMARY in plan.replace:
            os.unlink(SUMMARY, dir_fd=dir_fd)  # from here the folder claims no complete run
        for name in files:
            staged.rename(name)
        for name in sorted(plan.replace - writes - {INCOMPLETE}):
            os.unlink(name, dir_fd=dir_fd)
            removed.append(name)
        staged.rename(SUMMARY)
        staged.rename(MANIFEST)
        os.unlink(INCOMPLETE, dir_fd=dir_fd)
        _fsync_folder(dir_fd)
    return tuple(n for n in removed if not n.startswith("."))


def write_atomic(path: Path, data: Payload) -> None:
    """Write one file beside its target under a fresh exclusive temporary name, flush it to
    disk, then rename it into place: a reader never sees half a file, and nothing already
    at a temporary name is followed or reused.  The temporary file is removed on any
    failure, including an interruption; an ``OSError`` becomes :class:`OutputWriteError`."""
    folder = path.parent
    with _folder_fd(folder) as dir_fd:
        staged = _Staged(dir_fd, folder)
        try:
            staged.write(path.name, data)
            staged.rename(path.name)
            _fsync_folder(dir_fd)
        except OSError as error:
            staged.discard()
            raise OutputWriteError(f"could not write {path}: {_errno_name(error)}") from None
        except BaseException:
            staged.discard()
            raise
