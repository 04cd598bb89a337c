"""Work a run does not wait for, on a background thread: the stability noise floor.

The event simulation is pure Python and holds the GIL on one core; implicit's training and
numpy's scoring release it.  So a version that only the metrics read (the baseline trained
again with seed + 1) can be built beside the simulation on the other core instead of before
it, and the run waits for it only when its lists are read.

How many cores it gets is left to the kernel rather than guessed: work started with
``yielding=True`` runs at a low scheduling priority (nice 10, per thread on Linux, and
inherited by the threads it starts: implicit's OpenMP team, the top-K pool).  It can then
use every core, yet the simulation's thread keeps its own (a nice-10 thread weighs about a
tenth of a nice-0 one): the floor takes the other core while the simulation runs, and both
once it is over (a large catalogue, where training outlasts the simulation).  A fixed
"cores minus one" would leave a core idle then.  Nice 10 rather than 19 so that on a machine
busy with other work the floor is slowed, not starved.

The thread is a daemon: a run stopped by SIGINT / SIGTERM exits at once instead of waiting
for a training call it no longer needs.  Nothing here draws from a shared generator, so the
numbers are the same whichever thread computes them and whenever.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["YIELDING_NICE", "Pending", "in_background", "yield_this_thread"]

T = TypeVar("T")
R = TypeVar("R")


#: The niceness of yielding work (0 is the default, 19 the lowest priority).
YIELDING_NICE = 10


def yield_this_thread() -> bool:
    """Lower the calling thread's scheduling priority to :data:`YIELDING_NICE` (Linux only,
    where a thread has its own nice value); False where that cannot be done."""
    if not sys.platform.startswith("linux"):
        return False  # elsewhere PRIO_PROCESS would name the whole process
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), YIELDING_NICE)
    except OSError:
        return False
    return True


def in_background(work: Callable[[], T], *, name: str, yielding: bool = False) -> Future[T]:
    """Start ``work()`` on a new daemon thread; its future holds the result or the error.

    ``yielding``: at a low priority (:func:`yield_this_thread`), for work that may use every
    core but must not slow the thread the run waits on.
    """
    future: Future[T] = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        if yielding:
            yield_this_thread()
        try:
            result = work()
        except BaseException as error:  # re-raised in the thread that reads the result
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class Pending(Generic[T]):
    """A value built in the background, with more work on it queued behind (in order).

    ``then`` and ``result`` are for the one thread that owns the run; the work itself runs on
    background threads one after another, never two at once on the same value.
    """

    def __init__(self, build: Callable[[], T], *, name: str, yielding: bool = False) -> None:
        self.name = name
        self.yielding = yielding
        #: Wall seconds the background threads spent on this value (complete once
        #: ``result`` returned): its cost, whether or not anyone waited for it.
        self.work_s = 0.0
        self._future = in_background(lambda: self._timed(build), name=name, yielding=yielding)

    def then(self, work: Callable[[T], None]) -> None:
        """Run ``work(value)`` in the background once everything queued before it is done."""
        previous = self._future

        def after() -> T:
            value = previous.result()
            self._timed(lambda: work(value))
            return value

        self._future = in_background(after, name=self.name, yielding=self.yielding)

    def _timed(self, work: Callable[[], R]) -> R:
        """``work()``, its wall time added to ``work_s`` (only one runs at a time)."""
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.work_s += time.perf_counter() - started

    def result(self) -> T:
        """The value once all queued work on it is done (re-raises what failed there)."""
        return self._future.result()

    def done(self) -> bool:
        return self._future.done()
