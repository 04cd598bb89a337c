"""A one-line progress bar on the terminal, for the CLI only.

``ProgressBar`` is a ``progress(done, total)`` callback for ``lab.pipeline.run``: it redraws
one line on its stream (``\\r`` and clear-to-end-of-line), at most every ``min_interval_s``
seconds, and clears it when closed.  It writes nothing at all when the stream is not a
terminal (CI logs, pipes, files), so the CLI can always pass one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressBar", "render"]

_CLEAR = "\r\x1b[K"


def render(label: str, done: int, total: int, elapsed_s: float, width: int) -> str:
    """``label [#######.......]  48%  131,072/275,412 requests  3.1 s``, cut to ``width``.

    The bar takes what the label and the counts leave of ``width``, between 10 and 40 cells.
    """
    fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
    counts = f"{fraction:4.0%}  {done:,}/{total:,} requests  {elapsed_s:.1f} s"
    room = width - len(label) - len(counts) - 6
    cells = max(10, min(40, room))
    filled = round(fraction * cells)
    line = f"{label} [{'#' * filled}{'.' * (cells - filled)}]  {counts}"
    return line[: max(width - 1, 1)]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """Draws ``render(...)`` on ``stream`` when it is a terminal; silent otherwise.

    Use as ``progress=bar`` and close it (or use it as a context manager) so the line is
    cleared before anything else is printed.
    """

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.label = label
        self.enabled = _is_terminal(stream) if enabled is None else enabled
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._drawn = False

    def status(self, text: str) -> None:
        """Show a phase (e.g. "preparing world and models") until the bar takes over."""
        if self.enabled:
            elapsed = self._clock() - self._started
            self._write(f"{self.label}: {text}  {elapsed:.1f} s"[: self._width() - 1])

    def stage(self, text: str) -> None:
        """A part of the preparation starts (``lab.pipeline.prepare``'s ``stage``)."""
        self.status(f"preparing: {text}")

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self._clock()
        last = self._last_draw
        if last is not None and done < total and now - last < self.min_interval_s:
            return
        self._last_draw = now
        self._write(render(self.label, done, total, now - self._started, self._width()))

    def close(self) -> None:
        """Clear the line if anything was drawn."""
        if self._drawn:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _width(self) -> int:
        return shutil.get_terminal_size(fallback=(80, 24)).columns

    def _write(self, line: str) -> None:
        self.stream.write(_CLEAR + line)
        self.stream.flush()
        self._drawn = True
