"""Guards around one run: resource estimates, output-folder safety and clean stops.

Three things keep a run from hurting the machine it runs on or the results it leaves:

* **Resource estimate** (:func:`estimate_run`, :func:`check_memory`): before anything is
  built, the scenario's memory need is estimated from its sizes and refused, with the knob
  to turn, when it exceeds the limit (:func:`memory_limit`: ``--max-memory``, else the
  ``ROLLOUT_LAB_MAX_MEMORY`` environment variable, else 75 % of the machine's RAM).
* **Output safety** (:func:`check_out_dir`, :func:`commit_run`): a run writes only inside
  its output folder; a relative ``--out`` may not climb out of the current folder, the
  folder may not be the filesystem root, the home folder, the current folder or one of its
  parents, nor a folder holding other files; an earlier complete run is replaced only with
  ``--force``.  Nothing is written until the run has finished computing; every file is
  written beside its target and renamed into place; ``summary.json`` is written last, so a
  folder holds a complete run exactly when it holds ``summary.json``.  While the files are
  being written the folder holds an ``INCOMPLETE`` marker, left behind if the writing is
  interrupted.
* **Clean stops** (:func:`stop_on_signals`): SIGINT and SIGTERM raise :class:`RunInterrupted`
  in the main thread (the CLI maps it to exit codes 130 and 143); a few critical steps (the
  rename of ``summary.json`` together with the marker's removal) hold the signal until they
  are done (:func:`deferred_signals`).

Sizes are decimal: ``1 GB`` = 10^9 bytes (``GiB`` = 2^30 is accepted on input).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from replay.errors import UserInputError

if TYPE_CHECKING:
    from sim.scenario import Scenario

__all__ = [
    "INCOMPLETE",
    "MEMORY_ENV",
    "OUTPUT_FILES",
    "SUMMARY",
    "Estimate",
    "MemoryLimit",
    "Part",
    "Payload",
    "RunInterrupted",
    "check_memory",
    "check_out_dir",
    "check_out_file",
    "commit_run",
    "deferred_signals",
    "estimate_run",
    "expected_requests",
    "format_size",
    "memory_limit",
    "parse_size",
    "raise_if_stopped",
    "stop_on_signals",
    "write_atomic",
]

MEMORY_ENV = "ROLLOUT_LAB_MAX_MEMORY"
#: Share of the machine's RAM a run may plan to use when no limit is given.
RAM_SHARE = 0.75
#: Limit used when neither an option, the environment nor the machine says anything.
FALLBACK_LIMIT_BYTES = 8 * 10**9

SUMMARY = "summary.json"
INCOMPLETE = "INCOMPLETE"
#: Every file a run may write into its folder; summary.json is always the last one.
OUTPUT_FILES = ("report.html", "junit.xml", "requests.parquet", SUMMARY)


# --- sizes -------------------------------------------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, source: str = "--max-memory") -> int:
    """Bytes from ``"8GB"``, ``"512 MB"``, ``"1.5GiB"`` or a plain number of bytes."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UserInputError(f"{source} must be a size such as 8GB, 512MB or 1.5GiB, got {text!r}")
    size = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise UserInputError(f"{source} must be at least 1 byte, got {text!r}")
    return int(size)


def format_size(size: float) -> str:
    """``31.2 GB``, ``840 MB``, ``12 kB``: three significant digits, decimal units."""
    if not math.isfinite(size):
        return "an unbounded amount"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            if value < 1000:
                return f"{value:.3g} {unit}"
            return f"{value:,.0f} {unit}" if value < 1e6 else f"{value:.3g} {unit}"
    return f"{size:.0f} B"


@dataclass(frozen=True, slots=True)
class MemoryLimit:
    """How many bytes a run may plan to use, and where that number came from."""

    bytes: int
    origin: str  # "--max-memory", "ROLLOUT_LAB_MAX_MEMORY", "75% of this machine's RAM", ...


def machine_memory_bytes() -> int | None:
    """Physical RAM of this machine, or None when the platform does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def memory_limit(option: str | None = None, environ: dict[str, str] | None = None) -> MemoryLimit:
    """The limit from ``--max-memory``, else ``ROLLOUT_LAB_MAX_MEMORY``, else 75 % of RAM."""
    if option is not None:
        return MemoryLimit(parse_size(option), "--max-memory")
    env = os.environ if environ is None else environ
    text = env.get(MEMORY_ENV)
    if text:
        return MemoryLimit(parse_size(text, source=MEMORY_ENV), MEMORY_ENV)
    ram = machine_memory_bytes()
    if ram is None:
        return MemoryLimit(FALLBACK_LIMIT_BYTES, "the default")
    return MemoryLimit(int(ram * RAM_SHARE), f"{RAM_SHARE:.0%} of this machine's RAM")


# --- resource estimate -------------------------------------------------------------------

# Bytes per unit, measured as peak resident memory of whole runs (see tests/reliability):
#: interpreter, numpy, polars, scipy, implicit, matplotlib and the report
BASE_BYTES = 250e6
#: one history block scores min(users, 2,048) users against every item: float32 logits,
#: float64 Gumbel noise and its float32 copy, or the int64 argpartition of the logits
BLOCK_USERS = 2048
BYTES_PER_BLOCK_CELL = 16
#: one history event: sampled ids, the polars event table, sorted copies, three CSR matrices
BYTES_PER_HISTORY_EVENT = 80
#: one request: the stream, routing buckets, records, the monitor, the per-request frame,
#: the summary's columns and the report's aggregates
BYTES_PER_REQUEST = 350
#: one candidate session drawn at the peak rate before thinning (start, uniform, accept)
BYTES_PER_CANDIDATE_SESSION = 24
#: per version and user x list slot: items int32, true relevance and scores float32, plus
#: the scoring pass's own items and scores
BYTES_PER_TABLE_CELL = 20
#: per model, (users + items) x factors float32: the factors, their update copies
BYTES_PER_FACTOR = 12
#: one row of a replayed log: raw text columns, normalized columns, the canonical table,
#: training matrices, replayed requests and their records
BYTES_PER_LOG_ROW = 400
#: bytes per row of a Parquet log when its row count cannot be read from its footer
PARQUET_BYTES_PER_ROW = 8
#: simulation events per request, at most: the arrival, a server request, its service
#: timeout and its deadline timer
EVENTS_PER_REQUEST = 4


@dataclass(frozen=True, slots=True)
class Part:
    """One share of a run's memory: what it is, how big, and what makes it smaller.

    what    short name ("request records")
    bytes   planned peak bytes
    detail  how it was counted ("about 77,760,000 requests: the arrival rate ...")
    knob    what to do about it ("lower traffic.duration or the traffic.arrivals rate")
    """

    what: str
    bytes: float
    detail: str = ""
    knob: str = ""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A run's planned memory (``parts``), its requests and its simulation events."""

    parts: tuple[Part, ...]
    requests: float
    events: float

    @property
    def total_bytes(self) -> float:
        return sum(part.bytes for part in self.parts)

    @property
    def largest(self) -> Part:
        return max(self.parts, key=lambda part: part.bytes)


def _simpson(
    rate: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    start: float,
    end: float,
    cells: int,
) -> float:
    """Composite Simpson rule of ``rate`` over ``[start, end]`` (``cells`` rounded up to even)."""
    if end <= start:
        return 0.0
    cells += cells % 2
    t = np.linspace(start, end, cells + 1)
    weights = np.ones(cells + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return float((end - start) / (3 * cells) * float(weights @ rate(t)))


def expected_requests(scenario: Scenario) -> tuple[float, float]:
    """Expected requests of synthetic traffic and the candidate sessions drawn before thinning.

    Requests = the integral of the request rate (diurnal shape times flash crowds and ramps,
    see ``replay.synthetic.ArrivalShape``) over ``[0, traffic.duration]``, by Simpson's rule
    between the rate's breakpoints; sessions cut off at the end of the run are not
    subtracted.  Candidate sessions = peak rate / mean requests per session x duration.
    """
    traffic = scenario.traffic
    arrivals, duration = traffic.arrivals, traffic.duration
    if arrivals is None or duration is None:
        return 0.0, 0.0
    if arrivals.kind == "poisson":
        mean, amplitude, period, peak_at = arrivals.rate_per_s, 0.0, 86400.0, 0.0
    else:
        mean, amplitude = arrivals.mean_rate_per_s, arrivals.amplitude
        period, peak_at = arrivals.period, arrivals.peak_at
    crowds = [(c.at, c.factor, c.length) for c in traffic.flash_crowds]
    ramps = [(r.at, r.factor, r.length) for r in traffic.ramps]
    edges = {0.0, duration}
    for at, _factor, length in (*crowds, *ramps):
        edges.update(min(max(x, 0.0), duration) for x in (at, at + length))
    cuts = sorted(edges)
    total = 0.0
    for start, end in itertools.pairwise(cuts):
        # A segment many periods long averages the daily cycle out: sampling it would alias.
        cycles = (end - start) / period
        wave = amplitude if cycles <= 200 else 0.0

        def rate(t: npt.NDArray[np.float64], wave: float = wave) -> npt.NDArray[np.float64]:
            out = mean * (1.0 + wave * np.cos(2.0 * np.pi * (t - peak_at) / period))
            for at, factor, length in crowds:
                out = np.where((t >= at) & (t < at + length), out * factor, out)
            for at, factor, length in ramps:
                out = out * (1.0 + (factor - 1.0) * np.clip((t - at) / length, 0.0, 1.0))
            return np.asarray(out, dtype=np.float64)

        total += _simpson(rate, start, end, min(20_000, max(64, int(cycles * 64))))
    boost = math.prod(max(factor, 1.0) for _at, factor, _length in (*crowds, *ramps))
    peak = mean * (1.0 + amplitude) * boost
    candidates = peak / traffic.session.mean_requests * duration
    return total, candidates


def _log_rows(path: Path) -> float | None:
    """Rows of a log file, estimated from its size and its first 64 kB (None if unreadable)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(65_536)
    except OSError:
        return None
    if head[:4] == b"PAR1":
        try:
            import polars as pl

            return float(pl.scan_parquet(path).select(pl.len()).collect().item())
        except Exception:
            # Unreadable footers are reported by the log reader itself, with a better message.
            return size / PARQUET_BYTES_PER_ROW
    lines = head.count(b"\n")
    if lines == 0:
        return 1.0
    return size / (len(head) / lines)


def _log_path(scenario: Scenario, base_dir: Path | None, source: str) -> Path | None:
    from sim.sources import expand_path

    log = scenario.traffic.log
    if log is None:
        return None
    try:
        text = expand_path(log.path, source=source, field="traffic.log.path")
    except UserInputError:
        return None  # the run reports the unset variable itself
    path = Path(text)
    # Relative log paths are relative to the scenario file when not found from here.
    if base_dir is not None and not path.is_absolute() and not path.exists():
        path = base_dir / path
    return path


def estimate_run(
    scenario: Scenario, *, base_dir: Path | None = None, source: str = "scenario"
) -> Estimate:
    """Planned peak memory of one run, by part, from the scenario's sizes alone.

    Synthetic traffic (U users, I items, K list size, F factors per model, V models, H
    history events ~ U x min(history_events_per_user, I), R expected requests, C candidate
    sessions)::

        base                                       BASE_BYTES
        history sampling block  min(U, 2048) x I x BYTES_PER_BLOCK_CELL
        history events          H x BYTES_PER_HISTORY_EVENT
        model factors           sum over models (U + I) x F x BYTES_PER_FACTOR
        top-K tables            (V + 1) x U x K x BYTES_PER_TABLE_CELL
        requests                R x BYTES_PER_REQUEST + C x BYTES_PER_CANDIDATE_SESSION

    Replayed logs: rows (file size / mean line length of the first 64 kB, or the Parquet
    row count) x BYTES_PER_LOG_ROW.  Requests of a log are at most its rows.
    """
    tr = scenario.traffic
    parts = [Part("the interpreter and its libraries", BASE_BYTES)]
    n_models = len(scenario.models)
    k = scenario.users.list_size
    if tr.source == "log":
        path = _log_path(scenario, base_dir, source)
        rows = _log_rows(path) if path is not None else None
        requests = rows or 0.0
        if path is not None and rows is not None:
            parts.append(
                Part(
                    "the replayed log",
                    rows * BYTES_PER_LOG_ROW,
                    f"about {rows:,.0f} rows in {path.name}, from its size",
                    "replay a shorter log (cut it to the time span you need)",
                )
            )
    else:
        users, items = tr.users, tr.items
        history = users * min(tr.history_events_per_user, items)
        requests, candidates = expected_requests(scenario)
        factors = sum(model.factors for model in scenario.models.values())
        parts += [
            Part(
                "history sampling",
                min(users, BLOCK_USERS) * items * BYTES_PER_BLOCK_CELL,
                f"min(traffic.users, {BLOCK_USERS:,}) x traffic.items scores at a time",
                "lower traffic.items",
            ),
            Part(
                "history events",
                history * BYTES_PER_HISTORY_EVENT,
                f"about {history:,.0f}: traffic.users x traffic.history_events_per_user",
                "lower traffic.users or traffic.history_events_per_user",
            ),
            Part(
                "model factors",
                (users + items) * factors * BYTES_PER_FACTOR,
                "(traffic.users + traffic.items) x factors, per model",
                "lower traffic.users or models.NAME.factors",
            ),
            Part(
                "top-K tables",
                (n_models + 1) * users * k * BYTES_PER_TABLE_CELL,
                f"traffic.users x users.list_size, {n_models + 1} tables",
                "lower traffic.users or users.list_size",
            ),
            Part(
                "request records",
                requests * BYTES_PER_REQUEST + candidates * BYTES_PER_CANDIDATE_SESSION,
                f"{_count(requests)} requests: the arrival rate over traffic.duration",
                "lower traffic.duration or the traffic.arrivals rate",
            ),
        ]
    return Estimate(tuple(parts), requests, requests * EVENTS_PER_REQUEST)


def check_memory(estimate: Estimate, limit: MemoryLimit, *, source: str) -> None:
    """Refuse a run whose estimate exceeds ``limit``: one line with the estimate and the knob."""
    total = estimate.total_bytes
    if total <= limit.bytes:  # NaN never passes
        return
    part = estimate.largest
    detail = f" ({part.detail})" if part.detail else ""
    knob = part.knob or "use a machine with more memory"
    raise UserInputError(
        f"{source}: the run needs {_about(total)} but the limit is "
        f"{format_size(limit.bytes)} ({limit.origin}); most of it is {part.what}, "
        f"{_about(part.bytes)}{detail}; {knob}, or pass --max-memory or set {MEMORY_ENV}"
    )


def _count(value: float) -> str:
    if not math.isfinite(value):
        return "unbounded"
    return f"about {value:,.0f}" if value < 1e15 else f"about {value:.3g}"


def _about(size: float) -> str:
    return f"about {format_size(size)}" if math.isfinite(size) else "an unbounded amount"


# --- output safety -----------------------------------------------------------------------


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


# --- signals -----------------------------------------------------------------------------


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
        self.out: Path | None = None

    def __str__(self) -> str:
        return f"interrupted by {self.name}"


@dataclass(slots=True)
class _StopState:
    signum: int | None = None
    deferred: int = 0


_STATE: _StopState | None = None


def _handle(signum: int, _frame: FrameType | None) -> None:
    state = _STATE
    if state is None:
        raise RunInterrupted(signum)
    if state.signum is None:
        state.signum = signum
    if state.deferred == 0:
        raise RunInterrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`RunInterrupted` while the block runs.

    Only in the main thread (elsewhere Python cannot install handlers and nothing changes);
    the previous handlers are restored on exit.
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
            signal.signal(sig, handler)
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
    if state is not None and state.signum is not None and state.deferred == 0:
        raise RunInterrupted(state.signum)
