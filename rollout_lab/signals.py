"""Clean stops: SIGINT and SIGTERM raise :class:`RunInterrupted` in the main thread.

The CLI maps it to exit codes 130 and 143; the renames that put a finished run into place
hold the signal until they are done (:func:`deferred_signals`).  A stop is raised once: a
second signal while the first is being handled (files cleaned up, the line printed) is
noted and ignored, so that the clean-up itself is never cut short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = ["RunInterrupted", "deferred_signals", "raise_if_stopped", "stop_on_signals"]


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop the run (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` in the lab swallows it)."""

    def __init__(self, signum: int) -> None:
        # args must be (signum,): SimPy re-creates an exception raised inside a process as
        # ``type(exc)(*exc.args)``.
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        #: The output folder the command was working on, and what it holds now:
        #: "unchanged" (as it was before the command), "complete" (the new run), or None.
        self.out: Path | None = None
        self.folder: str | None = None
        #: What the command had done when it stopped, in its own words (``check``).
        self.detail: str | None = None

    def __str__(self) -> str:
        return f"interrupted by {self.name}"


@dataclass(slots=True)
class _StopState:
    signum: int | None = None
    deferred: int = 0
    raised: bool = False


_STATE: _StopState | None = None


def _handle(signum: int, _frame: FrameType | None) -> None:
    state = _STATE
    if state is None:
        raise RunInterrupted(signum)
    if state.signum is None:
        state.signum = signum
    if state.deferred == 0 and not state.raised:
        state.raised = True
        raise RunInterrupted(state.signum)


@contextmanager
def stop_on_signals(*, then_ignore: bool = False) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`RunInterrupted` while the block runs.

    Only in the main thread (elsewhere Python cannot install handlers and nothing changes).
    On exit the previous handlers are restored, or with ``then_ignore`` (the ``rollout-lab``
    process itself, about to exit with the command's code) both signals are ignored, so that
    a signal after the command has finished cannot kill the process without a word.
    """
    global _STATE
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    outer = _STATE
    _STATE = _StopState()
    for sig in previous:
        signal.signal(sig, _handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if then_ignore else handler)
        _STATE = outer


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT / SIGTERM until the block ends, then raise :class:`RunInterrupted`."""
    state = _STATE
    if state is None:
        yield
        return
    state.deferred += 1
    try:
        yield
    finally:
        state.deferred -= 1
    raise_if_stopped()


def raise_if_stopped() -> None:
    """Raise :class:`RunInterrupted` if a signal arrived and is being held."""
    state = _STATE
    if state is not None and state.signum is not None and state.deferred == 0 and not state.raised:
        state.raised = True
        raise RunInterrupted(state.signum)
