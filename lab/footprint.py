"""How much memory a run will need, and the limit it must fit in.

Before anything is built, the scenario's memory need is estimated from its sizes
(:func:`estimate_run`) and refused, with the knob to turn, when it exceeds the limit
(:func:`check_memory`; :func:`memory_limit`: ``--max-memory``, else the
``ROLLOUT_LAB_MAX_MEMORY`` environment variable, else 75 % of the machine's RAM).

Sizes are decimal: ``1 GB`` = 10^9 bytes (``GiB`` = 2^30 is accepted on input).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from replay.errors import UserInputError, shown

if TYPE_CHECKING:
    from lab.scenario import Scenario

__all__ = [
    "MEMORY_ENV",
    "Estimate",
    "MemoryLimit",
    "Part",
    "check_log_run",
    "check_memory",
    "estimate_models",
    "estimate_run",
    "expected_requests",
    "format_size",
    "memory_guard",
    "memory_limit",
    "parse_size",
]

MEMORY_ENV = "ROLLOUT_LAB_MAX_MEMORY"
#: Share of the machine's RAM a run may plan to use when no limit is given.
RAM_SHARE = 0.75
#: Limit used when neither an option, the environment nor the machine says anything.
FALLBACK_LIMIT_BYTES = 8 * 10**9


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
# ASCII only: Python's \d and float() also take other scripts' digits ("٨GB").
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$", re.ASCII)


def parse_size(text: str, *, source: str = "--max-memory") -> int:
    """Bytes from ``"8GB"``, ``"512 MB"``, ``"1.5GiB"`` or a plain number of bytes."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UserInputError(
            f"{source} must be a size such as 8GB, 512MB or 1.5GiB, got {shown(text)}"
        )
    size = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise UserInputError(f"{source} must be at least 1 byte, got {shown(text)}")
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

# Bytes per unit, fitted to the peak resident memory of whole runs of the scaling table
# (bench/scale_bench.py: 10k x 2k to 1M x 100k; the estimate stays within 30 % of the peak):
#: interpreter, numpy, polars, scipy, implicit, matplotlib and the report; the history
#: sampler's blocks (at most 65,536 pool slots or 4 M scores at a time) fit in it too
BASE_BYTES = 250e6
#: one history event: its user, item and time, the train / update / all CSR matrices and
#: the user and item arrays the run keeps
BYTES_PER_HISTORY_EVENT = 48
#: one request: the stream, routing buckets, records, the monitor and the per-request frame
#: (about 250 B, kept), plus the summary's per-request columns while it is built (450 B)
BYTES_PER_REQUEST = 700
#: one candidate session drawn at the peak rate before thinning (start, uniform, accept)
BYTES_PER_CANDIDATE_SESSION = 24
#: per table (each version, the noise floor) and user x list slot: items int32, true
#: relevance and scores float32, the stored list int32
BYTES_PER_TABLE_CELL = 16
#: per table and user: predicted click, readiness, the popular list's truth (amortised)
BYTES_PER_TABLE_ROW = 10
#: per model, (users + items) x factors float32, and the world's own per user and item
BYTES_PER_FACTOR = 4
BYTES_PER_WORLD_ROW = 72
#: per model, factors x factors: the Gram matrix of the factors (float32) and the copy its
#: solve works on, whatever the number of users and items
BYTES_PER_GRAM_CELL = 8
#: one row of a replayed log: raw text columns, normalized columns, the canonical table,
#: training matrices, replayed requests and their records
BYTES_PER_LOG_ROW = 400
#: bytes per row of a Parquet log when its row count cannot be read from its footer
PARQUET_BYTES_PER_ROW = 8
#: uncompressed / compressed size assumed for a gzip log over 4 GiB (its trailer wraps)
GZIP_RATIO = 10
#: simulation events per request, at most: the arrival, a server request, its service
#: timeout and its deadline timer
EVENTS_PER_REQUEST = 4
#: one row of an external top-K table while it is read (``replay.list_tables``): polars'
#: columns, their numpy views and masks, the lists placed (bench/list_table_bench.py:
#: 0.38 GB above the interpreter for 20 M rows)
BYTES_PER_LIST_TABLE_ROW = 20
#: raw embedding arrays are resident twice while they are placed (the file's arrays and the
#: rows selected from them), beside the placed float32 copy the run keeps
EMBEDDING_READ_COPIES = 2


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


def _simpson(rate: Callable[[float], float], start: float, end: float, cells: int) -> float:
    """Composite Simpson rule of ``rate`` over ``[start, end]`` (``cells`` rounded up to even).

    Plain floats, not numpy: at most 20,000 points per segment, and ``validate`` and every
    refusal then answer without loading numpy."""
    if end <= start:
        return 0.0
    cells += cells % 2
    step = (end - start) / cells
    total = rate(start) + rate(end)
    for i in range(1, cells):
        total += (4.0 if i % 2 else 2.0) * rate(start + i * step)
    return (end - start) / (3 * cells) * total


def expected_requests(scenario: Scenario) -> tuple[float, float]:
    """Expected requests of synthetic traffic and the candidate sessions drawn before thinning.

    Requests = the integral of the request rate (diurnal shape times flash crowds and ramps,
    see ``replay.synthetic.ArrivalShape``) over ``[0, traffic.duration]``, by Simpson's rule
    between the rate's breakpoints; sessions cut off at the end of the run are not
    subtracted.  Candidate sessions = peak rate / mean requests per session x duration.
    """
    traffic = scenario.traffic
    arrivals, duration = traffic.arrivals, traffic.duration
    fitted = traffic.fitted
    if fitted is not None and duration is not None:
        # Users' lives spread over the fitted span: the run sees its share of their requests.
        share = min(duration / fitted.span, 1.0) * traffic.users
        requests = share * sum(fitted.activity) / len(fitted.activity)
        return requests, share * sum(fitted.sessions) / len(fitted.sessions)
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

        def rate(t: float, wave: float = wave) -> float:
            # Float arithmetic overflows to inf quietly (absurd rates: inf, then refused).
            out = mean * (1.0 + wave * math.cos(2.0 * math.pi * (t - peak_at) / period))
            for at, factor, length in crowds:
                if at <= t < at + length:
                    out *= factor
            for at, factor, length in ramps:
                out *= 1.0 + (factor - 1.0) * min(max((t - at) / length, 0.0), 1.0)
            return out

        total += _simpson(rate, start, end, min(20_000, max(64, int(cycles * 64))))
    boost = math.prod(max(factor, 1.0) for _at, factor, _length in (*crowds, *ramps))
    peak = mean * (1.0 + amplitude) * boost
    candidates = peak / traffic.session.mean_requests * duration
    return total, candidates


def _log_rows(path: Path) -> float | None:
    """Rows of a log file, estimated from its size and its first 64 kB (None if unreadable or
    not a regular file: a pipe must not be consumed by this first look)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None
        size = info.st_size
        with path.open("rb") as handle:
            head = handle.read(65_536)
            if head[:2] == b"\x1f\x8b" and size >= 18:
                # gzip: the trailer holds the uncompressed size modulo 2^32
                handle.seek(-4, os.SEEK_END)
                stored = int.from_bytes(handle.read(4), "little")
                size = stored if stored >= size else size * GZIP_RATIO
                head = zlib.decompressobj(wbits=31).decompress(head, 65_536)
    except (OSError, zlib.error):
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
    from lab.paths import resolve_input_path

    log = scenario.traffic.log
    if log is None:
        return None
    try:
        text = resolve_input_path(
            log.path, source=source, field="traffic.log.path", base_dir=base_dir
        )
    except UserInputError:
        return None  # the run reports the unset variable itself
    return Path(text)


def estimate_run(
    scenario: Scenario, *, base_dir: Path | None = None, source: str = "scenario"
) -> Estimate:
    """Planned peak memory of one run, by part, from the scenario's sizes alone.

    Synthetic traffic (U users, I items, K list size, F factors per model, V models, H
    history events ~ U x min(history_events_per_user, I), R expected requests, C candidate
    sessions)::

        base                                   BASE_BYTES
        history events      H x BYTES_PER_HISTORY_EVENT
        model factors       (U + I) x (sum over trained models F x BYTES_PER_FACTOR
                                        + BYTES_PER_WORLD_ROW)
        top-K tables        T x U x (K x BYTES_PER_TABLE_CELL + BYTES_PER_TABLE_ROW)
        requests            R x BYTES_PER_REQUEST + C x BYTES_PER_CANDIDATE_SESSION
        external versions   see ``_external_parts`` (tables, embeddings, plugins)

    The noise floor (``metrics.noise_floor``) is one more trained model and one more table
    (T = versions + 1 with it).  Nothing scales with users x items: the history sampler and
    the top-K search work in blocks of bounded size.

    Replayed logs: rows (file size / mean line length of the first 64 kB, or the Parquet
    row count) x BYTES_PER_LOG_ROW.  Requests of a log are at most its rows.
    """
    tr = scenario.traffic
    parts = [Part("the interpreter and its libraries", BASE_BYTES)]
    floor = scenario.metrics.noise_floor
    n_tables = len(scenario.models) + int(floor)
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
        parts.append(_training_part(scenario))
    else:
        users, items = tr.users, tr.items
        history = users * min(tr.history_events_per_user, items)
        requests, candidates = expected_requests(scenario)
        models = scenario.models.values()
        factors = sum(
            m.factors
            for m in models
            if m.source in ("lab", "registry") and (m.update != "copy" or m.parent is None)
        )
        if floor:
            factors += scenario.models[scenario.rollout.baseline].factors
        parts.append(_training_part(scenario))
        parts += [
            Part(
                "history events",
                history * BYTES_PER_HISTORY_EVENT,
                f"about {history:,.0f}: traffic.users x traffic.history_events_per_user",
                "lower traffic.users or traffic.history_events_per_user",
            ),
            Part(
                "model factors",
                (users + items) * (factors * BYTES_PER_FACTOR + BYTES_PER_WORLD_ROW),
                "(traffic.users + traffic.items) x factors, per trained model",
                "lower traffic.users, traffic.items or models.NAME.factors",
            ),
            Part(
                "top-K tables",
                n_tables * users * (k * BYTES_PER_TABLE_CELL + BYTES_PER_TABLE_ROW),
                f"traffic.users x users.list_size, {n_tables} tables",
                "lower traffic.users or users.list_size",
            ),
            Part(
                "request records",
                requests * BYTES_PER_REQUEST + candidates * BYTES_PER_CANDIDATE_SESSION,
                f"{_count(requests)} requests: the arrival rate over traffic.duration",
                "lower traffic.duration or the traffic.arrivals rate",
            ),
        ]
        parts += _external_parts(
            scenario, users, items, parts[-1].bytes, base_dir=base_dir, source=source
        )
    return Estimate(tuple(parts), requests, requests * EVENTS_PER_REQUEST)


def _external_path(text: str, field: str, base_dir: Path | None, source: str) -> Path | None:
    from lab.paths import resolve_input_path

    try:
        return Path(resolve_input_path(text, source=source, field=field, base_dir=base_dir))
    except UserInputError:
        return None  # the run reports it itself


def _external_parts(
    scenario: Scenario,
    users: int,
    items: int,
    request_bytes: float,
    *,
    base_dir: Path | None,
    source: str,
) -> list[Part]:
    """Versions from outside the run (synthetic worlds): what they keep, and what reading
    them needs for a moment.

    Kept: embeddings placed in the lab's ids, (U + I) x (d + 2) x 4 bytes (factors and the
    two bias columns, float32); a table's click probabilities, U x K x 4 bytes.  A plugin's
    lists count as a top-K table; its own objects are the plugin's and are not counted.

    Reading: a top-K table of r rows needs r x BYTES_PER_LIST_TABLE_ROW while it is read,
    embeddings EMBEDDING_READ_COPIES x their file's arrays.  Files are read one after the
    other before any request exists, so the largest read counts only where it exceeds the
    request records that later take its place: max(0, largest read - request records).
    """
    k = scenario.users.list_size
    kept: list[Part] = []
    reads: list[tuple[float, str]] = []
    for name, model in scenario.models.items():
        if model.topk is not None:
            path = _external_path(model.topk.path, f"models.{name}.topk.path", base_dir, source)
            rows = _log_rows(path) if path is not None and path.is_file() else None
            if rows is not None:
                reads.append(
                    (rows * BYTES_PER_LIST_TABLE_ROW, f"{rows:,.0f} rows of {name}'s table")
                )
            if model.topk.p_click is not None:
                kept.append(
                    Part(
                        f"{name}'s click probabilities",
                        users * k * BYTES_PER_FACTOR,
                        "traffic.users x users.list_size, float32",
                        "lower traffic.users or users.list_size",
                    )
                )
        elif model.embeddings is not None:
            # numpy reads the arrays' headers: loaded only for a scenario with embeddings, so
            # validate stays free of it otherwise (tests/e2e/test_cli_imports.py).
            from replay.array_files import declared_arrays

            field = f"models.{name}.embeddings.path"
            path = _external_path(model.embeddings.path, field, base_dir, source)
            arrays = declared_arrays(path) if path is not None else {}
            width = arrays.get("user_factors", ((0, 0), 4))[0]
            d = width[1] if len(width) == 2 else 0
            raw = sum(math.prod(shape) * size for shape, size in arrays.values())
            kept.append(
                Part(
                    f"{name}'s embeddings",
                    (users + items) * (d + 2) * BYTES_PER_FACTOR,
                    f"(traffic.users + traffic.items) x {d + 2} float32 (factors and biases)",
                    "use fewer embedding dimensions",
                )
            )
            reads.append((EMBEDDING_READ_COPIES * raw, f"{name}'s embeddings file"))
    if reads:
        largest, what = max(reads)
        if largest > request_bytes:
            kept.append(
                Part(
                    "reading versions from files",
                    largest - request_bytes,
                    f"{what} while it is read, beyond what the request records take later",
                    "write the table for the traffic's users only, or a smaller users.list_size",
                )
            )
    return kept


def _training_part(scenario: Scenario) -> Part:
    squares = sum(m.factors**2 for m in scenario.models.values() if m.source == "lab")
    return Part(
        "model training",
        squares * BYTES_PER_GRAM_CELL,
        "models.NAME.factors squared, per model (the factors' Gram matrix)",
        "lower models.NAME.factors",
    )


def estimate_models(scenario: Scenario, users: int, items: int, rows: int) -> Estimate:
    """A replayed log's run once the log is read and its users and items are known:
    the rows, the model factors and the top-K tables (as :func:`estimate_run` counts them
    for synthetic worlds)."""
    factors = sum(model.factors for model in scenario.models.values())
    tables = len(scenario.models) + 1
    k = scenario.users.list_size
    parts = (
        Part("the interpreter and its libraries", BASE_BYTES),
        Part(
            "the replayed log",
            rows * BYTES_PER_LOG_ROW,
            f"{rows:,} rows",
            "replay a shorter log (cut it to the time span you need)",
        ),
        _training_part(scenario),
        Part(
            "model factors",
            (users + items) * factors * BYTES_PER_FACTOR,
            f"({users:,} users + {items:,} items in the log) x factors, per model",
            "replay a log with fewer users and items, or lower models.NAME.factors",
        ),
        Part(
            "top-K tables",
            tables * users * k * BYTES_PER_TABLE_CELL,
            f"{users:,} users x users.list_size, {tables} tables",
            "replay a log with fewer users, or lower users.list_size",
        ),
    )
    return Estimate(parts, float(rows), float(rows) * EVENTS_PER_REQUEST)


#: The limit of the run being prepared in this context (``memory_guard``), for the checks
#: that can only be made once a replayed log is read.
_ACTIVE_LIMIT: ContextVar[MemoryLimit | None] = ContextVar("rollout_lab_memory_limit", default=None)


@contextmanager
def memory_guard(limit: MemoryLimit) -> Iterator[None]:
    """Make ``limit`` the one :func:`check_log_run` enforces while the block runs."""
    token = _ACTIVE_LIMIT.set(limit)
    try:
        yield
    finally:
        _ACTIVE_LIMIT.reset(token)


def check_log_run(scenario: Scenario, users: int, items: int, rows: int, *, source: str) -> None:
    """Refuse, before any model is built, a replayed log whose users and items make the models
    too big for the active limit (no limit active: nothing to check)."""
    limit = _ACTIVE_LIMIT.get()
    if limit is not None:
        check_memory(estimate_models(scenario, users, items, rows), limit, source=source)


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
