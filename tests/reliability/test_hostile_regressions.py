"""Regression tests for the hostile-user findings (special and oversized inputs, settings
accepted that ``run`` refused or crashed on, damaged logs, errors in the lab's own words,
CI outputs).  Each failed before its fix; the hostile corpus covers the same ground through
separate processes, these pin the exact behaviour."""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hostile import PARQUET_ROWS, write_parquet_log
from reliability_support import MOVIELENS_REPLAY, QUICKSTART, Outcome

from lab.footprint import MemoryLimit, estimate_run, memory_guard, parse_size
from lab.overrides import parse_override
from lab.scenario import load_scenario
from replay.errors import UserInputError
from replay.logs import LogSpec, read_log
from reports.summary_paths import check_summary_path, summary_versions

TINY = (
    "--set", "traffic.duration=5m", "--set", "traffic.users=1000", "--set", "traffic.items=200",
    "--set", "traffic.arrivals.mean_rate_per_s=10", "--set", "metrics.noise_floor=false",
)  # fmt: skip
RATINGS = QUICKSTART.parent / "data" / "ratings_sample.csv"


def _one_line(result: Outcome, fragment: str, code: int = 2) -> str:
    assert result.code == code, result.err
    assert len(result.err) == 1, result.err
    assert fragment in result.err[0], result.err[0]
    return result.err[0]


# --- special and oversized inputs ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom"])
def test_special_files_as_scenarios_are_refused_at_once(
    kind: str, cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """A FIFO hung, /dev/zero grew past 6 GiB, /dev/urandom hung."""
    path = tmp_path / "s.toml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path(kind)
    line = _one_line(cli("validate", str(path)), "a scenario must be a regular file, got a")
    assert "save the data to a file first" in line


def test_a_log_that_is_a_pipe_is_refused_before_the_estimate_reads_it(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """--log <(cat file) was half-consumed by the memory estimate before it was read."""
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)
    result = cli("run", str(MOVIELENS_REPLAY), "--out", str(tmp_path / "o"), "--log", str(fifo))
    _one_line(result, "log file must be a regular file, got a pipe (FIFO)")
    assert not (tmp_path / "o").exists()


def test_huge_scenario_file_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(QUICKSTART.read_text(encoding="utf-8") + "#" * 5_000_000, encoding="utf-8")
    with pytest.raises(UserInputError, match="a scenario must be at most 4,194,304 bytes"):
        load_scenario(path)


def test_echoed_values_are_cut(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    """A 2 MB string in a scenario produced a 2 MB error line."""
    text = QUICKSTART.read_text(encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text(text.replace('policy = "canary"', f'policy = "{"x" * 2_000_000}"'))
    line = _one_line(cli("validate", str(path)), "rollout.policy must be one of")
    assert len(line) < 400 and line.endswith("…")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + QUICKSTART.read_bytes())
    assert load_scenario(path).name == "quickstart"


def test_control_characters_never_reach_the_terminal(
    cli: Callable[..., Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    """A raw ESC byte printed on a terminal from a --set value."""
    result = cli("validate", str(QUICKSTART), "--set", "name=\x1b[31mred\x1b[0m")
    assert result.code == 0
    assert "\x1b" not in result.out and "\\x1b[31mred" in result.out
    refused = cli("validate", str(QUICKSTART), "--set", "rollout.policy=\x1b[2Jx")
    assert "\x1b" not in refused.err[0] and "\\x1b[2Jx" in refused.err[0]


# --- settings that were accepted or crashed -----------------------------------------------


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ('rollout.guardrails=[{ metric = "latency_ms.p99", min = 200, max = 100 }]',
         "rollout.guardrails[0].min must be at most max (100), got 200.0"),
        ('faults=[{ kind = "replica_crash", version = "candidate", at = "1m", length = "1m", '
         "replicas = 9 }]", "faults[0].replicas must be at most the replicas candidate has (4)"),
        ('expect."versions.candidate.ctr"="=< 0.5"', "must start with one of < <= > >= == !="),
        ('expect."versions.candidat.ctr"="> 0"', "names no metric: "),
        ("traffic.users=400000000", "the run needs about"),
        ("traffic.arrivals.mean_rate_per_s=1e12", "the run needs about"),
        ("traffic.arrivals.mean_rate_per_s=1e308", "the run needs"),
        ("models.baseline.factors=100000", "most of it is model training"),
    ],
)  # fmt: skip
def test_validate_refuses_what_run_refuses(
    override: str, fragment: str, cli: Callable[..., Outcome]
) -> None:
    _one_line(cli("validate", str(QUICKSTART), "--set", override, "--max-memory", "16GB"), fragment)


def test_quoted_set_key_holding_equals_is_refused() -> None:
    with pytest.raises(UserInputError, match="has a key holding '='"):
        parse_override('expect."a=b"=< 3')
    assert parse_override('expect."a.b"=1') == (["expect", "a.b"], 1)


@pytest.mark.parametrize("text", ["٨GB", "８GB", "1٥00MB"])
def test_max_memory_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(UserInputError, match="must be a size such as 8GB"):
        parse_size(text)


def test_check_errors_go_to_stderr(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    """check --max-memory 1kB exited 2 with nothing on stderr."""
    result = cli("check", str(QUICKSTART), "--out", str(tmp_path / "o"), "--max-memory", "1kB")
    assert result.code == 2
    assert len(result.err) == 1 and "the run needs about" in result.err[0]
    assert result.out.splitlines()[-1].startswith("0 passed, 0 failed, 1 invalid of 1 scenario")


def test_a_run_with_no_requests_is_one_plain_line(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """A zero-request run (traffic.duration = 1s) crashed the report."""
    result = cli(
        "run", str(QUICKSTART), "--out", str(tmp_path / "o"), *TINY,
        "--set", "traffic.duration=1s", "--set", "traffic.arrivals.mean_rate_per_s=0.0001",
    )  # fmt: skip
    line = _one_line(result, "the run drew no requests, so there is nothing to judge")
    assert "population_stability_index" not in line and not (tmp_path / "o").exists()


def test_a_run_too_short_for_segments_still_reports(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """A few-second run failed with "worst_segment_delta: segment must be shared..."."""
    out = tmp_path / "o"
    result = cli(
        "run", str(QUICKSTART), "--out", str(out), "--quiet", *TINY,
        "--set", "traffic.duration=20s", "--set", "traffic.arrivals.mean_rate_per_s=0.5",
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["requests"]["arrivals"] > 0


def test_sweep_with_a_bad_scheduler_leaves_no_folder(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    result = cli(
        "sweep", str(QUICKSTART), "--seeds", "1", "--out", str(out), "--scheduler", "not a url"
    )
    _one_line(result, "--scheduler not a url: cannot connect")
    assert not out.exists()


# --- expectation paths against the summary ------------------------------------------------


def _scalar_paths(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        out: list[str] = []
        for key, value in node.items():
            out += _scalar_paths(value, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


def test_every_path_a_summary_holds_is_accepted_and_misspellings_are_not(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    assert cli("run", str(QUICKSTART), "--out", str(out), "--quiet", *TINY).code in (0, 1)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    versions = set(summary["versions"])
    paths = _scalar_paths(summary)
    assert len(paths) > 300
    refused = {p: check_summary_path(p, versions) for p in paths}
    # a block that is null in this run (off_policy, a missing comparison) is still a group
    refused = {p: why for p, why in refused.items() if why and "is a group" not in why}
    assert refused == {}
    for wrong in ("versions.candidate.latency_ms.p999", "requests.droped", "outcom",
                  "versions.ghost.ctr", "segments.by_segmnt"):  # fmt: skip
        assert check_summary_path(wrong, versions) is not None, wrong
    assert "is a group" in (check_summary_path("versions.candidate", versions) or "")


def test_release_train_versions_are_known() -> None:
    names = summary_versions(["baseline", "candidate"], "candidate", 3)
    assert names == {"baseline", "candidate", "candidate-2", "candidate-3"}
    assert check_summary_path("rollout.releases.candidate-3.outcome", names) is None
    assert check_summary_path("versions.candidate-3.ctr", names) is None


# --- damaged or odd logs ------------------------------------------------------------------


def _ratings(tmp_path: Path, tail: str) -> Path:
    lines = RATINGS.read_text(encoding="utf-8").splitlines()[:800]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    return path


@pytest.mark.parametrize("tail", ["578,1303,3.5,151", "578,1303,3.5,86400\n"])
def test_a_truncated_or_outlier_timestamp_is_counted_not_trusted(tail: str, tmp_path: Path) -> None:
    """A last line cut mid-timestamp was read as a 1970 event and stretched the windows."""
    table = read_log(LogSpec(_ratings(tmp_path, tail)))
    assert table.accounting["skipped.outlier_timestamp"] == 1
    first = table.events["ts"][0]
    assert first.year == 2017


def test_overlapping_windows_are_leakage(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    result = cli(
        "run", str(MOVIELENS_REPLAY), "--out", str(tmp_path / "o"),
        "--set", "traffic.log.train={ end = 0.9 }",
    )  # fmt: skip
    line = _one_line(result, "overlap: events of one would also be in the other (leakage)")
    assert "traffic.log.train [" in line and "traffic.log.allow_overlap = true" in line


def test_gzip_log_is_detected_and_read(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(gzip.compress(RATINGS.read_bytes()))
    table = read_log(LogSpec(path))
    assert table.accounting["input_rows"] == len(RATINGS.read_text().splitlines()) - 1


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [("crc", "CRC checksum verification failed"), ("statistics", "where the file records")],
)
def test_damaged_parquet_is_refused(damage: str, fragment: str, tmp_path: Path) -> None:
    """A Parquet file with 50 bytes zeroed in the middle was read as valid."""
    path = tmp_path / "log.parquet"
    write_parquet_log(path)
    assert read_log(LogSpec(path)).accounting["kept"] == PARQUET_ROWS
    write_parquet_log(path, damage)
    with pytest.raises(UserInputError, match=fragment):
        read_log(LogSpec(path))


def test_a_log_with_many_users_is_checked_once_read(tmp_path: Path) -> None:
    """The guard ignored model matrices of a log (1.0 GB planned, 3.6 GB at peak)."""
    n = 1_000_000
    rng = np.random.default_rng(0)
    path = tmp_path / "wide.csv"
    pl.DataFrame(
        {"user": np.arange(n), "item": np.arange(n), "ts": np.sort(rng.integers(1e9, 2e9, n))}
    ).write_csv(path)
    scenario = load_scenario(MOVIELENS_REPLAY, [f'traffic.log.path="{path}"'])
    before_reading = estimate_run(scenario).total_bytes
    limit = MemoryLimit(int(before_reading * 1.2), "--max-memory")
    from lab.pipeline import prepare

    refused = pytest.raises(UserInputError, match=r"most of it is (model factors|top-K tables)")
    with memory_guard(limit), refused:
        prepare(scenario, source_name="m.toml")


def test_npz_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    from artifacts import register, tiny_model  # type: ignore[import-not-found]

    from replay.registry import FACTORS_FILE, Registry

    registry, version = register(tmp_path / "registry", tiny_model())
    path = registry.path(version) / FACTORS_FILE
    path.unlink()
    header = bytearray()

    class Sink:
        def write(self, data: bytes) -> None:
            header.extend(data)

    np.lib.format.write_array_header_1_0(
        Sink(), {"descr": "<f4", "fortran_order": False, "shape": (250_000_000,)}
    )
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("user_factors.npy", "w", force_zip64=True) as member,
    ):
        member.write(bytes(header))
        for _ in range(15):
            member.write(bytes(64 * 1024 * 1024))
    assert path.stat().st_size < 2_000_000
    with pytest.raises(UserInputError, match="would inflate from"):
        Registry(tmp_path / "registry").load(version)


# --- CI outputs ---------------------------------------------------------------------------


def test_check_reports_invalid_scenarios_in_junit_and_counts(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "good.toml").write_bytes(QUICKSTART.read_bytes())
    (folder / "bad.toml").write_text("not toml {", encoding="utf-8")
    junit = tmp_path / "junit.xml"
    markdown = tmp_path / "summary.md"
    result = cli(
        "check", str(folder), "--out", str(tmp_path / "o"), "--junit", str(junit),
        "--markdown", str(markdown), *TINY,
    )  # fmt: skip
    assert result.code == 2
    assert result.err == ["rollout-lab: error: bad.toml: not valid TOML: Expected '=' after a "
                          "key in a key/value pair (at line 1, column 5)"]  # fmt: skip
    last = result.out.splitlines()[-1]
    assert last.startswith("1 passed, 0 failed, 1 invalid of 2 scenarios in ")
    text = junit.read_text(encoding="utf-8")
    assert 'name="bad" tests="1" failures="0" errors="1"' in text
    assert "## rollout-lab: ❌ not all passed" in markdown.read_text(encoding="utf-8")
    again = cli("check", str(folder), "--out", str(tmp_path / "o2"), "--junit", str(junit), *TINY)
    _one_line(again, f"--junit {junit}: exists (pass --force to replace it")


def test_validate_reports_every_invalid_file(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a_good.toml").write_bytes(QUICKSTART.read_bytes())
    (folder / "b_bad.toml").write_text("not toml {", encoding="utf-8")
    text = QUICKSTART.read_text(encoding="utf-8").replace("weight = 10", "weight = 999")
    (folder / "c_bad.toml").write_text(text, encoding="utf-8")
    result = cli("validate", str(folder))
    assert result.code == 2
    assert len(result.err) == 2
    assert result.err[0].startswith("rollout-lab: error: b_bad.toml: not valid TOML")
    assert "c_bad.toml: rollout.weight must be" in result.err[1]
    assert result.out.splitlines()[-1] == "1 valid, 2 invalid of 3 scenario files"


def test_version_and_exit_codes_in_help(
    cli: Callable[..., Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    from lab.version import lab_version

    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"rollout-lab {lab_version()}"
    helped = cli("run", "--help")
    assert helped.code == 0
    assert "exit codes:" in helped.out and "4    the run was computed but" in helped.out


def test_bad_option_is_one_line(cli: Callable[..., Outcome]) -> None:
    result = cli("run", str(QUICKSTART), "--frobnicate")
    _one_line(result, "unrecognized arguments: --frobnicate (see rollout-lab --help)")


def test_iterations_are_bounded() -> None:
    """iterations = 10000000000 was accepted and the run trained for ever."""
    with pytest.raises(UserInputError, match=r"models.baseline.iterations must be in \[1, 1000\]"):
        load_scenario(QUICKSTART, ["models.baseline.iterations=10000000000"])


def test_a_scenario_file_name_that_is_not_utf8_is_written_escaped(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """A file name with undecodable bytes crashed the commit (exit 3)."""
    path = Path(os.fsdecode(bytes(tmp_path) + b"/s\xff.toml"))
    path.write_bytes(QUICKSTART.read_bytes())
    out = tmp_path / "o"
    result = cli("run", str(path), "--out", str(out), "--quiet", *TINY)
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["scenario"]["name"] == "quickstart"
