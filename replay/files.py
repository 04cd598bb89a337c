"""Input files the lab reads: regular files only, of a bounded size where one is set.

A FIFO, a pipe (``--log <(cat file)``), a character device (``/dev/zero``, ``/dev/urandom``)
or a socket given where a file is expected would make a reader block forever, read without
end, or be half-consumed by a first look before the real read; a folder cannot be read at
all.  :func:`check_regular_file` refuses all of them in one line before anything opens the
path, and :func:`read_regular_bytes` reads a file with the check repeated on the open
handle (the path could be swapped between the two) and a size limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from replay.errors import UserInputError

__all__ = ["check_regular_file", "describe_mode", "read_regular_bytes"]


def describe_mode(mode: int) -> str:
    """What a non-regular file is, in a few words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(label: str, what: str, mode: int) -> UserInputError:
    return UserInputError(
        f"{label}: {what} must be a regular file, got {describe_mode(mode)} (save the data to a "
        "file first and pass that file)"
    )


def check_regular_file(path: Path | str, *, label: str, what: str = "the file") -> int:
    """Refuse anything but an existing, readable regular file; returns its size in bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserInputError(
            f"{label}: {what} must exist, got no such file (check the path)"
        ) from None
    except OSError as error:
        raise UserInputError(
            f"{label}: {what} must be readable, got {type(error).__name__}: {error.strerror}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(label, what, info.st_mode)
    return info.st_size


def read_regular_bytes(
    path: Path | str, *, label: str, what: str = "the file", max_bytes: int | None = None
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, or one ``UserInputError`` line.

    Opened non-blocking (a FIFO swapped in after the check cannot block the open) and checked
    again on the handle; never more than ``max_bytes + 1`` bytes are read.
    """
    size = check_regular_file(path, label=label, what=what)
    if max_bytes is not None and size > max_bytes:
        raise UserInputError(
            f"{label}: {what} must be at most {max_bytes:,} bytes, got {size:,} (is this the "
            "right file?)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise UserInputError(
            f"{label}: {what} must be readable, got {type(error).__name__}: {error.strerror}"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(label, what, mode)
        limit = -1 if max_bytes is None else max_bytes + 1
        data = handle.read(limit)
    if max_bytes is not None and len(data) > max_bytes:
        raise UserInputError(
            f"{label}: {what} must be at most {max_bytes:,} bytes, got more (is this the right "
            "file?)"
        )
    return data
