"""The hostile corpus: inputs a careless or malicious user could give, run through the real CLI.

``python -m tests.reliability.hostile`` (or ``make hostile``) runs every case in its own
``python -m rollout_lab.cli`` process, in a fresh folder, two at a time, and prints one line
per failed case and a total.  ``-k TEXT`` keeps the cases whose id holds TEXT; ``--every N``
runs one case in N (the default test run takes such a sample, see
``test_hostile_corpus.py``).

Every case must either run correctly (exit 0 or 1) or be refused with exactly one line on
stderr (``rollout-lab: error: ...``, exit 2; exit 4 for a run computed but not writable),
never a traceback, never an exit code of 3 or a signal, within ``TIMEOUT_S`` seconds, and
nothing may be written, changed or deleted outside what the run owns (its output folder,
its ``--junit`` / ``--markdown`` files): the case's folder and a folder beside it that
links point into are compared byte for byte before and after.

Kinds of case: scenario files (TOML, encodings, sizes, every section's bad values and
contradictions, expectations), ``--set`` values, interaction logs (damaged, truncated,
compressed, special files), model artifacts (``models show`` on corrupt registries), output
paths, and special files (FIFOs, devices, folders, links) wherever a file is expected.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
MOVIELENS = ROOT / "scenarios" / "movielens_replay.toml"
RATINGS = ROOT / "scenarios" / "data" / "ratings_sample.csv"
TIMEOUT_S = 150.0
#: A few seconds of simulation: the cases that run, run this.
TINY = [
    "--set", "traffic.duration=5m", "--set", "traffic.users=1000", "--set", "traffic.items=200",
    "--set", "traffic.arrivals.mean_rate_per_s=10", "--set", "metrics.noise_floor=false",
]  # fmt: skip

OK, ERROR, WRITE_ERROR = "ok", "error", "write-error"


@dataclass(frozen=True)
class Case:
    """``build(folder)`` lays out the case's files in ``folder`` and returns the CLI args;
    ``owns`` are the paths (relative to the folder) the run may write."""

    id: str
    build: Callable[[Path], list[str]]
    expect: str = ERROR
    owns: tuple[str, ...] = ("out",)
    fragment: str = ""  # a piece the error line must hold


@dataclass
class Result:
    case: Case
    passed: bool
    detail: str = ""
    seconds: float = 0.0
    code: int | None = None
    stderr: list[str] = field(default_factory=list)


# --- building blocks -----------------------------------------------------------------------


def _scenario(folder: Path, text: str | bytes, name: str = "s.toml") -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _quickstart_with(replace: dict[str, str] | None = None, append: str = "") -> str:
    text = QUICKSTART.read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text + append


def _run(path: Path, *extra: str, out: str = "out") -> list[str]:
    return ["run", str(path), "--out", out, "--quiet", *TINY, *extra]


def scenario_case(
    case_id: str, text: str | bytes, expect: str = ERROR, fragment: str = "", *extra: str
) -> Case:
    def build(folder: Path) -> list[str]:
        return _run(_scenario(folder, text), *extra)

    return Case(f"scenario/{case_id}", build, expect, fragment=fragment)


def set_case(case_id: str, value: str, expect: str = ERROR, fragment: str = "", *more: str) -> Case:
    def build(folder: Path) -> list[str]:
        extra = [arg for other in more for arg in ("--set", other)]
        return ["run", str(QUICKSTART), "--out", "out", "--quiet", *TINY, "--set", value, *extra]

    return Case(f"set/{case_id}", build, expect, fragment=fragment)


def _log_args(log: Path, *extra: str) -> list[str]:
    return [
        "run", str(MOVIELENS), "--out", "out", "--quiet", "--log", str(log),
        "--set", "metrics.noise_floor=false", "--set", "users.list_size=5", *extra,
    ]  # fmt: skip


def log_case(
    case_id: str, make: Callable[[Path], Path], expect: str = ERROR, fragment: str = "",
    *extra: str,
) -> Case:  # fmt: skip
    def build(folder: Path) -> list[str]:
        return _log_args(make(folder), *extra)

    return Case(f"log/{case_id}", build, expect, fragment=fragment)


def _ratings_lines() -> list[str]:
    return RATINGS.read_text(encoding="utf-8").splitlines()


def _text_log(name: str, body: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(body.encode("utf-8") if isinstance(body, str) else body)
        return path

    return make


def _fifo(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        os.mkfifo(path)
        return path

    return make


def _link(name: str, target: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.symlink_to(target)
        return path

    return make


PARQUET_ROWS = 6_000


def write_parquet_log(path: Path, damage: str = "") -> None:
    """A small Parquet log, intact or damaged: ``crc`` (50 bytes zeroed in a file with page
    checksums), ``statistics`` (one stored value changed in an uncompressed file, so that
    its column no longer has the minimum its statistics record), ``truncated``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    values = np.sort(rng.integers(1_500_000_000, 1_505_000_000, PARQUET_ROWS))
    table = pa.table(
        {
            "user": rng.integers(0, 300, PARQUET_ROWS),
            "item": rng.integers(0, 400, PARQUET_ROWS),
            "timestamp": values,
        }
    )
    if damage == "statistics":
        pq.write_table(table, path, compression="none", use_dictionary=False)
    else:
        pq.write_table(table, path, write_page_checksum=True)
    data = bytearray(path.read_bytes())
    if damage == "crc":
        data[len(data) // 2 : len(data) // 2 + 50] = bytes(50)
    elif damage == "statistics":
        high = int(values.max()).to_bytes(8, "little")
        at = data.find(high)  # the value among the data, not in a header's statistics
        while not values.min() <= int.from_bytes(data[at - 8 : at], "little") <= values.max():
            at = data.find(high, at + 1)
        data[at : at + 8] = (7).to_bytes(8, "little")
    elif damage == "truncated":
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))


def _parquet_with(damage: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "log.parquet"
        write_parquet_log(path, damage)
        return path

    return make


# --- scenario files ------------------------------------------------------------------------


def _scenario_cases() -> list[Case]:
    qs = _quickstart_with
    big = "x" * 2_000_000
    cases = [
        scenario_case("empty", ""),
        scenario_case("only-bom", "\ufeff"),
        scenario_case("bom-then-scenario", b"\xef\xbb\xbf" + qs().encode(), OK),
        scenario_case("utf16", qs().encode("utf-16"), ERROR, "UnicodeDecodeError"),
        scenario_case(
            "latin1-name", qs({'name = "quickstart"': 'name = "caf\xe9"'}).encode("latin-1"), ERROR
        ),
        scenario_case("nul-bytes", b'name = "a\x00b"\n'),
        scenario_case("binary", bytes(range(256)) * 40),
        scenario_case("not-toml", "this is { not toml"),
        scenario_case("json", json.dumps({"name": "x"})),
        scenario_case("yaml", "name: x\ntraffic:\n  duration: 1h\n"),
        scenario_case("deep-nesting", "a = " + "[" * 5000 + "]" * 5000),
        scenario_case("huge-integer", "seed = " + "9" * 5000),
        scenario_case("2MB-string", qs({'description = "': f'description = "{big}'}), OK),
        scenario_case("2MB-bad-value", qs({'policy = "canary"': f'policy = "{big}"'}), ERROR, "…"),
        scenario_case("2MB-key", qs(append=f'\n[extra]\n"{big}" = 1\n')),
        scenario_case(
            "too-large-file", qs(append="\n# " + "y" * 5_000_000 + "\n"), ERROR, "must be at most"
        ),
        scenario_case(
            "control-chars-in-name",
            qs({'name = "quickstart"': 'name = "quick\\u0001\\u001b[31mstart\\u0007"'}),
            OK,
        ),
        scenario_case(
            "html-in-name", qs({'name = "quickstart"': 'name = "<script>alert(1)</script>"'}), OK
        ),
        scenario_case("rtl-override-name", qs({'name = "quickstart"': 'name = "a\\u202eb"'}), OK),
        scenario_case("name-only-spaces", qs({'name = "quickstart"': 'name = "   "'}), OK),
        scenario_case(
            "name-path-traversal", qs({'name = "quickstart"': 'name = "../../etc/passwd"'}), OK
        ),
        scenario_case("duplicate-key", qs(append="\nseed = 3\n")),
        scenario_case("seed-huge", qs({"seed = 7": "seed = 18446744073709551616"}), OK),
        scenario_case("seed-float", qs({"seed = 7": "seed = 7.5"})),
        scenario_case(
            "users-400M",
            qs(),
            ERROR,
            "the run needs about",
            "--set",
            "traffic.users=400000000",
        ),
        scenario_case(
            "items-1e9",
            qs(),
            ERROR,
            "the run needs about",
            "--set",
            "traffic.items=1000000000",
        ),
        scenario_case(
            "rate-1e12",
            qs(),
            ERROR,
            "the run needs about",
            "--set",
            "traffic.arrivals.mean_rate_per_s=1e12",
        ),
        scenario_case(
            "rate-1e308",
            qs(),
            ERROR,
            "the run needs",
            "--set",
            "traffic.arrivals.mean_rate_per_s=1e308",
        ),
        scenario_case("rate-inf", qs(), ERROR, "", "--set", "traffic.arrivals.mean_rate_per_s=inf"),
        scenario_case("rate-nan", qs(), ERROR, "", "--set", "traffic.arrivals.mean_rate_per_s=nan"),
        scenario_case(
            "rate-negative", qs(), ERROR, "", "--set", "traffic.arrivals.mean_rate_per_s=-1"
        ),
        scenario_case(
            "rate-tiny-no-requests",
            qs(),
            ERROR,
            "drew no requests",
            "--set",
            "traffic.arrivals.mean_rate_per_s=0.00001",
            "--set",
            "traffic.duration=1s",
        ),
        scenario_case("duration-1s", qs(), OK, "", "--set", "traffic.duration=1s"),
        scenario_case("duration-3s", qs(), OK, "", "--set", "traffic.duration=3s"),
        scenario_case("duration-1ms", qs(), ERROR, "", "--set", "traffic.duration=1ms"),
        scenario_case(
            "duration-1000y",
            qs(),
            ERROR,
            "the run needs about",
            "--set",
            "traffic.duration=365000d",
        ),
        scenario_case("duration-text", qs(), ERROR, "", "--set", "traffic.duration=two hours"),
        scenario_case(
            "factors-100000",
            qs(),
            ERROR,
            "model training",
            "--set",
            "models.baseline.factors=100000",
        ),
        scenario_case("factors-negative", qs(), ERROR, "", "--set", "models.baseline.factors=-1"),
        scenario_case(
            "iterations-huge", qs(), ERROR, "", "--set", "models.baseline.iterations=10000000000"
        ),
        scenario_case("list-size-above-items", qs(), ERROR, "", "--set", "users.list_size=999"),
        scenario_case("weight-150", qs({"weight = 10": "weight = 150"})),
        scenario_case("weight-nan", qs({"weight = 10": "weight = nan"})),
        scenario_case(
            "guardrail-min-above-max",
            qs({"max = 120 }": "min = 500, max = 120 }"}),
            ERROR,
            "must be at most max",
        ),
        scenario_case(
            "guardrail-unknown-metric",
            qs({'{ metric = "timeout_rate", max = 0.01 }': '{ metric = "nonsense", max = 0.01 }'}),
        ),
        scenario_case(
            "replica-crash-too-many",
            qs(
                append=(
                    '\n[[faults]]\nkind = "replica_crash"\nversion = "candidate"\nat = "1m"\n'
                    'length = "1m"\nreplicas = 40\n'
                )
            ),
            ERROR,
            "must be at most the replicas",
        ),
        scenario_case(
            "fault-unknown-version",
            qs(
                append=(
                    '\n[[faults]]\nkind = "error_burst"\nversion = "ghost"\nat = "1m"\n'
                    'length = "1m"\n'
                )
            ),
        ),
        scenario_case(
            "fault-negative-length",
            qs(
                append=(
                    '\n[[faults]]\nkind = "error_burst"\nversion = "candidate"\nat = "1m"\n'
                    'length = "-1m"\n'
                )
            ),
        ),
        scenario_case(
            "expect-unknown-operator",
            qs({'"requests.dropped" = "== 0"': '"requests.dropped" = "=< 0"'}),
            ERROR,
            "must start with one of",
        ),
        scenario_case(
            "expect-tilde-operator",
            qs({'"requests.dropped" = "== 0"': '"requests.dropped" = "~ 0"'}),
            ERROR,
            "must start with one of",
        ),
        scenario_case(
            "expect-misspelt-path",
            qs({'"requests.dropped" = "== 0"': '"requests.droped" = "== 0"'}),
            ERROR,
            "names no metric",
        ),
        scenario_case(
            "expect-group-path",
            qs({'"requests.dropped" = "== 0"': '"requests" = "== 0"'}),
            ERROR,
            "is a group",
        ),
        scenario_case(
            "expect-unknown-version",
            qs({'"requests.dropped" = "== 0"': '"versions.ghost.ctr" = "> 0"'}),
            ERROR,
            "names no metric",
        ),
        scenario_case("expect-key-with-equals", qs(append='"a=b" = 1\n'), ERROR, "names no metric"),
        scenario_case(
            "expect-words-after-less",
            qs({'"requests.dropped" = "== 0"': '"requests.dropped" = "< many"'}),
            ERROR,
            "must compare with a number",
        ),
        scenario_case("expect-table", qs(append="\n[expect.nested]\na = 1\n")),
        scenario_case(
            "expect-failing",
            qs({'"requests.dropped" = "== 0"': '"requests.dropped" = "> 1000000000"'}),
            OK,
        ),
        scenario_case(
            "models-empty", qs(append="").replace("[models.candidate]", "[models.other]")
        ),
        scenario_case("parent-self", qs({'parent = "baseline"': 'parent = "candidate"'})),
        scenario_case("unknown-section", qs(append="\n[mystery]\nx = 1\n")),
        scenario_case(
            "history-shorter-than-update", qs({'update_window = "2d"': 'update_window = "30d"'})
        ),
        scenario_case("log-source-without-log", qs({'source = "synthetic"': 'source = "log"'})),
        scenario_case("latency-p99-below-p50", qs({"p99_ms = 60": "p99_ms = 5"})),
        scenario_case("timeout-zero", qs({"timeout_ms = 150": "timeout_ms = 0"})),
        scenario_case(
            "flash-crowd-huge-factor",
            qs(append=""),
            ERROR,
            "the run needs",
            "--set",
            'traffic.flash_crowds=[{ at = "1m", factor = 1e9, length = "1m" }]',
        ),
    ]
    return cases


# --- --set values --------------------------------------------------------------------------


def _set_cases() -> list[Case]:
    return [
        set_case("no-equals", "traffic.users"),
        set_case("empty", ""),
        set_case("only-equals", "="),
        set_case("empty-value", "traffic.users="),
        set_case("escape-in-value", "name=\x1b[31mred\x1b[0m", OK),
        set_case("escape-in-bad-value", "rollout.policy=\x1b[2J\x1b[31mboom"),
        set_case("bell-and-nul-like", "rollout.policy=\x07\x08"),
        set_case("quoted-key-with-equals", '"traffic.users=5"=7', ERROR, "holding '='"),
        set_case("quoted-expect-key-with-equals", 'expect."x=y"=< 3', ERROR, "holding '='"),
        set_case("unclosed-quote-key", '"traffic.users=5'),
        set_case("index-out-of-range", "rollout.guardrails[99].max=1"),
        set_case("negative-index", "rollout.guardrails[-1].max=1"),
        set_case("index-on-table", "traffic[0]=1"),
        set_case("into-scalar", "seed.deeper=1"),
        set_case("unknown-top-key", "nonsense=1"),
        set_case("unknown-nested-key", "traffic.nonsense=1"),
        set_case("huge-value", "name=" + "z" * 100_000, ERROR, "…"),
        set_case("huge-description", "description=" + "z" * 100_000, OK),
        set_case("huge-bad-value", "rollout.policy=" + "z" * 100_000, ERROR, "…"),
        set_case("deep-array", "seed=" + "[" * 3000 + "]" * 3000),
        set_case("long-number", "seed=" + "1" * 5000),
        set_case("unicode-digits", "traffic.users=٣٠٠٠"),
        set_case("fullwidth-digits", "traffic.users=３０００"),
        set_case("bool-for-int", "traffic.users=true"),
        set_case("inline-table-bad", 'traffic.arrivals={ kind = "poisson" }'),
        set_case("inline-table-good", 'traffic.arrivals={ kind = "poisson", rate_per_s = 5 }', OK),
        set_case("seed-negative", "seed=-1"),
        set_case("path-with-spaces", "traffic . users=5"),
        set_case("path-dots-only", "...=5"),
        set_case("unused-log-path-to-dev-zero", 'traffic.log={ path = "/dev/zero" }', OK),
        set_case(
            "log-path-to-dev-zero",
            'traffic.log={ path = "/dev/zero" }',
            ERROR,
            "character device",
            'traffic.source="log"',
        ),
        set_case(
            "log-path-to-proc",
            'traffic.log={ path = "/proc/self/maps" }',
            ERROR,
            "",
            'traffic.source="log"',
        ),
        set_case("rtl-override", "name=a\u202eb", OK),
        set_case("newline-in-value", "rollout.policy=can\nary"),
        set_case("windows-overlap", "traffic.log.train={ end = 0.9 }"),
        set_case(
            "expect-misspelt",
            'expect."versions.candidate.latency_ms.p999"="< 1"',
            ERROR,
            "names no metric",
        ),
    ]


def _option_cases() -> list[Case]:
    def args(*extra: str) -> Callable[[Path], list[str]]:
        return lambda _folder: ["run", str(QUICKSTART), "--out", "out", *TINY, *extra]

    return [
        Case("option/max-memory-unicode-digits", args("--max-memory", "٨GB")),
        Case("option/max-memory-zero", args("--max-memory", "0")),
        Case("option/max-memory-1kB", args("--max-memory", "1kB"), ERROR, "the run needs"),
        Case("option/max-memory-negative", args("--max-memory", "-5GB")),
        Case("option/max-memory-huge", args("--max-memory", "9" * 400 + "TB")),
        Case("option/seed-text", args("--seed", "seven")),
        Case("option/unknown-option", args("--frobnicate")),
        Case("option/log-format-unknown", args("--log-format", "excel")),
        Case(
            "option/check-max-memory-1kB",
            lambda _f: ["check", str(QUICKSTART), "--out", "out", "--max-memory", "1kB"],
            ERROR,
            "the run needs",
        ),
        Case("option/validate-folder-with-bad-files", _validate_folder, ERROR, "invalid"),
        Case(
            "option/sweep-scheduler-not-a-url",
            lambda _f: [
                "sweep",
                str(QUICKSTART),
                "--seeds",
                "1",
                "--out",
                "out",
                "--scheduler",
                "not a url",
                *TINY,
            ],
        ),
        Case(
            "option/sweep-seeds-zero",
            lambda _f: ["sweep", str(QUICKSTART), "--seeds", "0", "--out", "out"],
        ),
        Case("option/version", lambda _f: ["--version"], OK),
        Case("option/no-command", lambda _f: []),
    ]


def _validate_folder(folder: Path) -> list[str]:
    scenarios = folder / "scenarios"
    scenarios.mkdir()
    shutil.copy(QUICKSTART, scenarios / "good.toml")
    (scenarios / "bad1.toml").write_text("not toml {", encoding="utf-8")
    (scenarios / "bad2.toml").write_text(_quickstart_with({"weight = 10": "weight = 999"}),
                                         encoding="utf-8")  # fmt: skip
    return ["validate", str(scenarios)]


# --- logs ----------------------------------------------------------------------------------


def _log_cases() -> list[Case]:
    lines = _ratings_lines()
    body = "\n".join(lines) + "\n"
    truncated = "\n".join(lines[:700]) + "\n" + lines[700].rsplit(",", 1)[0] + ",151"
    outlier = "\n".join([*lines[:700], "578,1303,3.5,86400"]) + "\n"

    def gz(name: str, data: bytes) -> Callable[[Path], Path]:
        return _text_log(name, gzip.compress(data))

    return [
        log_case("valid", _text_log("ratings.csv", body), OK),
        log_case("truncated-mid-timestamp", _text_log("ratings.csv", truncated), OK),
        log_case("outlier-1970", _text_log("ratings.csv", outlier), OK),
        log_case("gzip", gz("ratings.csv.gz", body.encode()), OK),
        log_case(
            "gzip-corrupt",
            _text_log("ratings.csv.gz", gzip.compress(body.encode())[:40] + bytes(200)),
        ),
        log_case("gzip-empty", gz("ratings.csv.gz", b"")),
        log_case("gzip-ndjson", gz("events.ndjson", b'{"user": 1, "item": 2, "ts": 1}\n')),
        log_case("empty", _text_log("ratings.csv", "")),
        log_case("header-only", _text_log("ratings.csv", lines[0] + "\n")),
        log_case("binary", _text_log("ratings.csv", bytes(range(256)) * 64)),
        log_case("nul-bytes", _text_log("ratings.csv", body.replace(",", "\x00", 30))),
        log_case("one-huge-line", _text_log("ratings.csv", lines[0] + "\n" + "9" * 3_000_000)),
        log_case(
            "escape-codes-header",
            _text_log(
                "ratings.csv", "\x1b[31muserId,movieId,rating,timestamp\n" + "\n".join(lines[1:])
            ),
        ),
        log_case(
            "windows-overlap",
            _text_log("ratings.csv", body),
            ERROR,
            "overlap",
            "--set",
            "traffic.log.train={ end = 0.9 }",
        ),
        log_case(
            "windows-overlap-allowed",
            _text_log("ratings.csv", body),
            OK,
            "",
            "--set",
            "traffic.log.train={ end = 0.9 }",
            "--set",
            "traffic.log.allow_overlap=true",
        ),
        log_case(
            "train-window-before-log",
            _text_log("ratings.csv", body),
            ERROR,
            "",
            "--set",
            'traffic.log.train={ start = "1990-01-01T00:00:00Z", end = "1991-01-01T00:00:00Z" }',
        ),
        log_case(
            "replay-window-after-log",
            _text_log("ratings.csv", body),
            ERROR,
            "",
            "--set",
            'traffic.log.replay={ start = "2030-01-01T00:00:00Z" }',
        ),
        log_case(
            "fraction-above-one",
            _text_log("ratings.csv", body),
            ERROR,
            "",
            "--set",
            "traffic.log.replay={ start = 1.5 }",
        ),
        log_case("fifo", _fifo("ratings.csv"), ERROR, "got a pipe"),
        log_case("dev-zero", lambda _f: Path("/dev/zero"), ERROR, "character device"),
        log_case("dev-urandom", lambda _f: Path("/dev/urandom"), ERROR, "character device"),
        log_case("folder", lambda f: f, ERROR),
        log_case("missing", lambda f: f / "nope.csv", ERROR, "must exist"),
        log_case("dangling-link", _link("ratings.csv", "/nonexistent/file.csv"), ERROR),
        log_case("link-loop", _link("ratings.csv", "ratings.csv"), ERROR),
        log_case("parquet-valid", _parquet_with(""), OK),
        log_case("parquet-page-crc-damaged", _parquet_with("crc"), ERROR, "CRC"),
        log_case(
            "parquet-statistics-damaged",
            _parquet_with("statistics"),
            ERROR,
            "read back as it was written",
        ),
        log_case("parquet-truncated", _parquet_with("truncated"), ERROR),
    ]


# --- artifacts -----------------------------------------------------------------------------


def _registry_case(case_id: str, damage: Callable[[Path], None], expect: str = ERROR) -> Case:
    def build(folder: Path) -> list[str]:
        import numpy as np

        from replay.registry import FACTORS_FILE, Provenance, Registry
        from replay.training import ModelSpec, TrainedModel

        rng = np.random.default_rng(0)
        model = TrainedModel(
            ModelSpec("als", factors=3, iterations=2, seed=0),
            rng.standard_normal((12, 3)).astype(np.float32),
            rng.standard_normal((9, 3)).astype(np.float32),
            rng.integers(0, 50, 9).astype(np.int64),
            0.5,
        )
        registry = Registry(folder / "registry")
        from datetime import UTC, datetime

        provenance = Provenance(
            name="baseline",
            created_at=datetime(2024, 5, 1, tzinfo=UTC),
            train_start="2024-04-01T00:00:00+00:00",
            train_end="2024-04-30T00:00:00+00:00",
            data_fingerprint="ab" * 32,
        )
        version = registry.save(model, provenance)
        damage(registry.path(version) / FACTORS_FILE)
        return ["models", "show", version, "--registry", str(folder / "registry")]

    return Case(f"artifact/{case_id}", build, expect, owns=("registry",))


def _zip_bomb(path: Path) -> None:
    import numpy as np

    header = {"descr": "<f4", "fortran_order": False, "shape": (750_000_000,)}
    buffer = bytearray()
    np.lib.format.write_array_header_1_0(_Sink(buffer), header)
    path.unlink()
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("user_factors.npy", "w", force_zip64=True) as member,
    ):
        member.write(bytes(buffer))
        block = bytes(64 * 1024 * 1024)
        for _ in range(45):  # 2.9 GB of zeros, about 3 MB compressed
            member.write(block)


class _Sink:
    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer

    def write(self, data: bytes) -> None:
        self.buffer += data


def _artifact_cases() -> list[Case]:
    return [
        _registry_case("intact", lambda _p: None, OK),
        _registry_case("truncated", lambda p: p.write_bytes(p.read_bytes()[:100])),
        _registry_case("not-a-zip", lambda p: p.write_bytes(b"hello")),
        _registry_case("empty", lambda p: p.write_bytes(b"")),
        _registry_case("flipped-bytes", lambda p: p.write_bytes(bytes(
            b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(p.read_bytes())))),
        _registry_case("fifo", lambda p: (p.unlink(), os.mkfifo(p))),
        _registry_case("folder", lambda p: (p.unlink(), p.mkdir())),
        _registry_case("dangling-link", lambda p: (p.unlink(), p.symlink_to("/nonexistent"))),
        _registry_case("zip-bomb", _zip_bomb),
    ]  # fmt: skip


# --- output paths --------------------------------------------------------------------------


def _out_case(case_id: str, out: str | Callable[[Path], str], *extra: str, expect: str = ERROR,
              fragment: str = "") -> Case:  # fmt: skip
    def build(folder: Path) -> list[str]:
        target = out(folder) if callable(out) else out
        return ["run", str(QUICKSTART), "--out", target, "--quiet", *TINY, *extra]

    owns = (out,) if isinstance(out, str) and out not in ("", ".", "..") else ("out",)
    return Case(f"out/{case_id}", build, expect, owns=owns, fragment=fragment)


def _planted(name: str, kind: str) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        out = folder / "out"
        out.mkdir()
        target = out / name
        if kind == "file":
            target.write_text("the user's own", encoding="utf-8")
        elif kind == "folder":
            target.mkdir()
        elif kind == "link":
            target.symlink_to(folder.parent / "outside" / "precious.txt")
        return str(out)

    return make


def _out_cases() -> list[Case]:
    def parent_is_file(folder: Path) -> str:
        (folder / "afile").write_text("x", encoding="utf-8")
        return str(folder / "afile" / "run")

    def dangling(folder: Path) -> str:
        (folder / "out").symlink_to(folder / "nowhere")
        return str(folder / "out")

    def file_out(folder: Path) -> str:
        (folder / "out").write_text("x", encoding="utf-8")
        return str(folder / "out")

    def markdown_user_file(folder: Path) -> str:
        (folder / "summary.md").write_text("mine", encoding="utf-8")
        return "out"

    return [
        _out_case("proc", "/proc/rollout-lab", fragment="virtual file system"),
        _out_case("sys", "/sys/kernel/rollout-lab", fragment="virtual file system"),
        _out_case("dev-null", "/dev/null"),
        _out_case("root", "/", fragment="dedicated folder"),
        _out_case("current-folder", ".", fragment="current folder"),
        _out_case("parent-folder", "..", fragment="climbs out"),
        _out_case("climbs-out", "a/../../b", fragment="climbs out"),
        _out_case("empty-string", ""),
        _out_case("name-300-bytes", "o" * 300, fragment="longer than the file system allows"),
        _out_case("path-5000-bytes", "/".join(["p" * 200] * 25), fragment="longer than"),
        _out_case("parent-is-a-file", parent_is_file, fragment="is a file, not a folder"),
        _out_case("dangling-link", dangling, fragment="which does not exist"),
        _out_case("is-a-file", file_out, fragment="exists and is not a folder"),
        _out_case("newline-in-name", "out\nrun", expect=OK),
        _out_case("escape-in-name", "out\x1b[31m", expect=OK),
        _out_case(
            "folder-named-report", _planted("report.html", "folder"), fragment="holds report.html"
        ),
        _out_case(
            "folder-named-parquet",
            _planted("requests.parquet", "folder"),
            "--requests-parquet",
            fragment="holds requests.parquet",
        ),
        _out_case("users-report", _planted("report.html", "file"), fragment="holds report.html"),
        _out_case("users-junit", _planted("junit.xml", "file"), fragment="holds junit.xml"),
        _out_case(
            "users-summary-force",
            _planted("summary.json", "file"),
            "--force",
            fragment="did not write",
        ),
        _out_case(
            "planted-manifest",
            _planted(".rollout-lab.json", "file"),
            "--force",
            fragment="not a rollout-lab run manifest",
        ),
        _out_case(
            "planted-temp-link",
            _planted(".report.html.tmp", "link"),
            "--force",
            fragment="did not write",
        ),
        _out_case(
            "report-link-outside",
            _planted("report.html", "link"),
            "--force",
            fragment="did not write",
        ),
        _out_case(
            "markdown-onto-user-file",
            markdown_user_file,
            "--markdown",
            "summary.md",
            fragment="--markdown summary.md: exists",
        ),
        _out_case(
            "markdown-to-proc",
            "out",
            "--markdown",
            "/proc/summary.md",
            fragment="virtual file system",
        ),
        _out_case("markdown-to-folder", "out", "--markdown", ".", fragment="is a folder"),
        Case(
            "out/junit-climbs-out",
            lambda _f: ["check", str(QUICKSTART), "--out", "out", "--junit", "../j.xml", *TINY],
            ERROR,
            fragment="climbs out",
        ),
        Case(
            "out/junit-to-dev-null",
            lambda _f: ["check", str(QUICKSTART), "--out", "out", "--junit", "/dev/null", *TINY],
            ERROR,
        ),
    ]


# --- special files as scenarios ------------------------------------------------------------


def _special_cases() -> list[Case]:
    def scenario(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda folder: ["run", str(make(folder)), "--out", "out", *TINY]

    def socket_file(folder: Path) -> Path:
        import socket

        path = folder / "s.toml"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
        return path

    def unreadable_name(folder: Path) -> Path:
        path = folder / "s\udcff.toml"
        path.write_bytes(QUICKSTART.read_bytes())
        return path

    return [
        Case("special/fifo-scenario", scenario(_fifo("s.toml")), ERROR, fragment="got a pipe"),
        Case("special/dev-zero", scenario(lambda _f: Path("/dev/zero")), ERROR, fragment="device"),
        Case("special/dev-urandom", scenario(lambda _f: Path("/dev/urandom")), ERROR),
        Case("special/dev-null", scenario(lambda _f: Path("/dev/null")), ERROR),
        Case("special/proc-file", scenario(lambda _f: Path("/proc/self/status")), ERROR),
        Case("special/folder", scenario(lambda f: f), ERROR, fragment="is a folder"),
        Case("special/socket", scenario(socket_file), ERROR, fragment="socket"),
        Case("special/link-loop", scenario(_link("s.toml", "s.toml")), ERROR),
        Case("special/dangling-link", scenario(_link("s.toml", "/nonexistent.toml")), ERROR),
        Case("special/undecodable-file-name", scenario(unreadable_name), OK),
        Case("special/validate-fifo", lambda f: ["validate", str(_fifo("v.toml")(f))], ERROR),
        Case(
            "special/check-fifo",
            lambda f: ["check", str(_fifo("c.toml")(f)), "--out", "out"],
            ERROR,
        ),
    ]


def all_cases() -> list[Case]:
    return [
        *_scenario_cases(),
        *_set_cases(),
        *_option_cases(),
        *_log_cases(),
        *_artifact_cases(),
        *_out_cases(),
        *_special_cases(),
    ]


# --- running -------------------------------------------------------------------------------


def _snapshot(root: Path, owned: tuple[Path, ...]) -> dict[str, tuple[str, bytes]]:
    seen: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in owned]
        for name in [*dirnames, *filenames]:
            path = here / name
            if path in owned:
                continue
            info = path.lstat()
            key = os.fsencode(path.relative_to(root)).hex()
            if stat.S_ISLNK(info.st_mode):
                seen[key] = ("link", os.fsencode(os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                seen[key] = ("file", path.read_bytes())
            else:
                seen[key] = (stat.filemode(info.st_mode)[0], b"")
    return seen


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("ROLLOUT_LAB_MAX_MEMORY", None)
    return env


def run_case(case: Case, base: Path) -> Result:
    top = Path(tempfile.mkdtemp(prefix="case-", dir=base))
    folder, outside = top / "work", top / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "precious.txt").write_text("outside every run", encoding="utf-8")
    (folder / "sentinel.txt").write_text("the user's", encoding="utf-8")
    try:
        args = case.build(folder)
    except Exception as exc:  # a case that cannot be built here (e.g. no mkfifo) is a failure
        return Result(case, False, f"could not build the case: {exc!r}")
    owned = tuple(folder / name for name in (*case.owns, "summary.md"))
    before = _snapshot(top, owned)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rollout_lab.cli", *args],
            cwd=folder,
            env=_environment(),
            capture_output=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Result(case, False, f"no answer within {TIMEOUT_S:.0f} s", TIMEOUT_S)
    seconds = time.perf_counter() - started
    stderr = done.stderr.decode("utf-8", errors="replace").splitlines()
    result = Result(case, True, "", seconds, done.returncode, stderr)
    problems = _judge(case, done.returncode, stderr)
    after = _snapshot(top, owned)
    if after != before:
        changed = sorted(set(after.items()) ^ set(before.items()))
        names = sorted({bytes.fromhex(k).decode(errors="replace") for k, _ in changed})
        problems.append(f"wrote or changed outside what the run owns: {names[:5]}")
    result.passed = not problems
    result.detail = "; ".join(problems)
    shutil.rmtree(top, ignore_errors=True)
    return result


def _judge(case: Case, code: int, stderr: list[str]) -> list[str]:
    problems: list[str] = []
    text = "\n".join(stderr)
    if "Traceback" in text:
        problems.append("printed a traceback")
    if code < 0 or code == 3:
        problems.append(f"exit code {code}")
    refused = code in (2, 4)
    if case.expect == OK and code not in (0, 1):
        problems.append(f"expected to run, exit code {code}: {stderr[-1:] or ''}")
    if case.expect in (ERROR, WRITE_ERROR):
        wanted = 2 if case.expect == ERROR else 4
        if code != wanted:
            problems.append(f"expected exit code {wanted}, got {code}")
    if refused:
        errors = [line for line in stderr if line.startswith("rollout-lab: error: ")]
        if case.id != "option/validate-folder-with-bad-files" and len(stderr) != 1:
            problems.append(f"{len(stderr)} lines on stderr, expected one")
        if not errors:
            problems.append("no 'rollout-lab: error:' line")
        if any(len(line) > 1_100 for line in stderr):
            problems.append("an error line longer than 1,100 characters")
        if any("\x1b" in line for line in stderr):
            problems.append("a raw ESC byte on stderr")
        if case.fragment and case.fragment not in text:
            problems.append(f"{case.fragment!r} not in {stderr[:1]}")
    return problems


def run_all(cases: list[Case], workers: int = 2, quiet: bool = False) -> list[Result]:
    with (
        tempfile.TemporaryDirectory(prefix="hostile-") as base,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        results = list(pool.map(lambda c: run_case(c, Path(base)), cases))
    if not quiet:
        for result in results:
            if not result.passed:
                print(f"FAILED {result.case.id}: {result.detail}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.hostile")
    parser.add_argument("-k", default="", help="run the cases whose id holds this text")
    parser.add_argument("--every", type=int, default=1, help="run one case in N")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the case ids and stop")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if args.k in c.id][:: max(args.every, 1)]
    if args.list:
        print("\n".join(c.id for c in cases))
        print(f"{len(cases)} cases")
        return 0
    started = time.perf_counter()
    results = run_all(cases, args.workers)
    passed = sum(r.passed for r in results)
    slowest = max(results, key=lambda r: r.seconds)
    print(
        f"hostile corpus: {len(results)} cases, {passed} passed, {len(results) - passed} failed "
        f"in {time.perf_counter() - started:.0f} s (slowest {slowest.case.id}, "
        f"{slowest.seconds:.1f} s)"
    )
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
