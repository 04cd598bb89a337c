"""A content-addressed store of prepared arrays, shared by runs, sweeps and their workers.

An entry is what one build step produced (a world, a trained model, top-K lists): named
arrays plus a small JSON document, stored as ONE uncompressed ``.npz`` file::

    ROOT/CACHEDIR.TAG              marks the folder as a cache (backup tools skip it)
    ROOT/KIND/KEY.npz              the entry: its arrays and ``__meta__`` (JSON bytes)
    ROOT/KIND/KEY.lock             held (flock) while one process builds KEY

``KEY`` is the sha256 of exactly the inputs that determine the entry (``entry_key``): the
caller names them, and the code that builds them is part of every key.

Concurrency: an entry is written to a temporary file beside its final name, flushed and
renamed into place, so a reader sees a whole entry or none (no torn reads); one file per
entry means eviction can never leave half of one.  ``fetch`` builds under an exclusive
lock on ``KEY.lock`` and looks again once it holds it, so two runs needing the same entry
build it once; a lock dies with its process.

Size: after each write, entries beyond ``max_bytes`` are evicted, least recently used first
(reads refresh an entry's time).  Only files this store names are ever read or removed,
and links are never followed.  A store that cannot be written (read-only folder, full disk)
degrades to building everything, never to a failed run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy loads with the first entry read or written
    import numpy.typing as npt

__all__ = ["DEFAULT_MAX_BYTES", "Artifact", "ArtifactStore", "entry_key"]

#: Bytes the store may hold before evicting (``ROLLOUT_LAB_CACHE_SIZE`` overrides it).
DEFAULT_MAX_BYTES = 10 * 10**9
#: Bumped when the entry layout changes: older entries then simply stop matching.
FORMAT = 1
_META = "__meta__"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by rollout-lab (prepared worlds, models\n"
    "# and top-K lists). See https://bford.info/cachedir/\n"
)


@dataclass(frozen=True, slots=True)
class Artifact:
    """What one build step produced: named arrays and a JSON-ready document."""

    arrays: dict[str, npt.NDArray[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


def entry_key(kind: str, inputs: Mapping[str, Any]) -> str:
    """sha256 (hex) of ``kind`` and ``inputs`` as canonical JSON (sorted keys, no spaces)."""
    document = {"format": FORMAT, "kind": kind, "inputs": inputs}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ArtifactStore:
    """Entries under ``root`` (created on first write), at most ``max_bytes`` of them."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        # A run builds its noise floor on a background thread (lab.background) while the
        # main thread fetches too: the counts stay exact.
        self._counting = threading.Lock()

    # --- paths -------------------------------------------------------------------------

    def path(self, kind: str, key: str) -> Path:
        if not _KIND.match(kind) or not _KEY.match(key):
            raise ValueError(f"artifact kind {kind!r} / key {key!r} are not store names")
        return self.root / kind / f"{key}.npz"

    def _folder(self, kind: str) -> Path | None:
        """``ROOT/KIND``, created if needed; None when it cannot be (or is not a folder)."""
        folder = self.root / kind
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tag = self.root / "CACHEDIR.TAG"
            if not os.path.lexists(tag):
                _write_small(tag, _TAG)
            folder.mkdir(exist_ok=True)
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return None
        except OSError:
            return None
        return folder

    # --- reading and writing -----------------------------------------------------------

    def load(self, kind: str, key: str) -> Artifact | None:
        """The entry, or None when absent or unreadable (an unreadable one is removed)."""
        import numpy as np

        path = self.path(kind, key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, MemoryError):
            _remove(path)
            return None
        meta_bytes = arrays.pop(_META, None)
        try:
            meta = json.loads(bytes(meta_bytes).decode("utf-8")) if meta_bytes is not None else None
        except (ValueError, UnicodeDecodeError):
            meta = None
        if not isinstance(meta, dict) or meta.get("key") != key:
            _remove(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path, follow_symlinks=False)  # least recently used goes first
        return Artifact(arrays, meta.get("meta", {}))

    def save(self, kind: str, key: str, artifact: Artifact) -> bool:
        """Write the entry atomically, then evict beyond ``max_bytes``; False if it could not."""
        import numpy as np

        folder = self._folder(kind)
        if folder is None:
            return False
        path = self.path(kind, key)
        document = json.dumps({"key": key, "kind": kind, "meta": artifact.meta}, sort_keys=True)
        arrays = dict(artifact.arrays)
        arrays[_META] = np.frombuffer(document.encode("utf-8"), dtype=np.uint8)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
        except OSError:
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)  # type: ignore[arg-type]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            _remove(Path(tmp))
            # A cache that cannot be written only costs a rebuild next time: the run goes on.
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES):
                return False
            raise
        self.evict(keep=path)
        return True

    @contextlib.contextmanager
    def building(self, kind: str, key: str) -> Iterator[None]:
        """Hold the build lock of ``kind/key`` (no lock when the folder cannot be written)."""
        folder = self._folder(kind)
        if folder is None:
            yield
            return
        try:
            fd = os.open(
                folder / f"{key}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def fetch(self, kind: str, key: str, build: Callable[[], Artifact]) -> Artifact:
        """The entry from the store, or built once (under its lock) and stored."""
        found = self.load(kind, key)
        if found is None:
            with self.building(kind, key):
                found = self.load(kind, key)  # built by another process meanwhile?
                if found is None:
                    with self._counting:
                        self.misses += 1
                    found = build()
                    self.save(kind, key, found)
                    return found
        with self._counting:
            self.hits += 1
        return found

    # --- eviction ----------------------------------------------------------------------

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every entry file, oldest first."""
        out: list[tuple[float, int, Path]] = []
        try:
            kinds = list(os.scandir(self.root))
        except OSError:
            return out
        for kind in kinds:
            if not _KIND.match(kind.name) or not kind.is_dir(follow_symlinks=False):
                continue
            try:
                files = list(os.scandir(kind.path))
            except OSError:
                continue
            for entry in files:
                name = entry.name
                if not (name.endswith(".npz") and _KEY.match(name[:-4])):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    out.append((info.st_mtime, info.st_size, Path(entry.path)))
        out.sort()
        return out

    def evict(self, *, keep: Path | None = None) -> int:
        """Remove least recently used entries until the store fits ``max_bytes``; bytes freed.

        One evictor at a time (a non-blocking lock on ``ROOT/.evict.lock``); removing an
        entry another process is reading is safe (its open file stays readable).
        """
        try:
            fd = os.open(
                self.root / ".evict.lock",
                os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                0o644,
            )
        except OSError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # another process is evicting
            entries = self.entries()
            total = sum(size for _, size, _ in entries)
            freed = 0
            for _, size, path in entries:
                if total - freed <= self.max_bytes:
                    break
                if path == keep:
                    continue
                if _remove(path):
                    freed += size
            return freed
        finally:
            os.close(fd)


def _remove(path: Path) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _write_small(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tag.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.replace(tmp, path)
