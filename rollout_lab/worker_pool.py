"""Local worker processes for the commands that run in parallel (``sweep``, ``check --jobs``).

Both start their workers the same way and end them the same way when stopped; the process
pool (multiprocessing, pickle) loads only when a command actually starts one, so ``--help``
and ``validate`` never pay for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["spawn_pool", "stop_workers"]


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes (a clean interpreter each, nothing inherited), with one
    BLAS thread and Ctrl-C left to the parent (``lab.sweep.worker_setup``)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from lab.sweep import worker_setup

    # Workers read this at start-up, before any library creates its thread pool.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=worker_setup
    )


def stop_workers(executor: ProcessPoolExecutor, *, kill: bool) -> None:
    """End the pool's live workers now: SIGKILL with ``kill``, else SIGTERM (a worker that
    turns SIGTERM into a clean stop then cleans up its own files first).

    This must come before ``shutdown``: ``shutdown`` forgets the processes, and running calls
    would otherwise finish first.  The executor has no public way to do this before Python
    3.14 (``kill_workers`` / ``terminate_workers``).
    """
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            if kill:
                process.kill()
            else:
                process.terminate()
