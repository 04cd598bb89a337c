"""The resource guard: sizes, the memory limit, the estimate, and refusals through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_support import MOVIELENS_REPLAY, QUICKSTART, SMALL, Outcome

from lab.footprint import (
    BASE_BYTES,
    MEMORY_ENV,
    Estimate,
    MemoryLimit,
    Part,
    check_memory,
    estimate_run,
    expected_requests,
    format_size,
    memory_limit,
    parse_size,
)
from lab.scenario import load_scenario
from replay.errors import UserInputError
from replay.synthetic import ArrivalShape

# --- sizes and limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8GB", 8 * 10**9),
        ("8 gb", 8 * 10**9),
        ("512MB", 512 * 10**6),
        ("1.5GiB", int(1.5 * 2**30)),
        ("2T", 2 * 10**12),
        ("1000", 1000),
        (".5k", 500),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "8XB", "-1GB", "1e9", "0", "0.1", "nan", "8 G B"])
def test_parse_size_rejects_with_one_line(text: str) -> None:
    with pytest.raises(UserInputError, match=r"^--max-memory must be") as caught:
        parse_size(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(31.2e9, "31.2 GB"), (8e9, "8 GB"), (840e6, "840 MB"), (12_000, "12 kB"), (5, "5 B")],
)
def test_format_size(size: float, text: str) -> None:
    assert format_size(size) == text


def test_limit_comes_from_option_then_environment_then_ram() -> None:
    assert memory_limit("2GB", {MEMORY_ENV: "1GB"}) == MemoryLimit(2 * 10**9, "--max-memory")
    assert memory_limit(None, {MEMORY_ENV: "1GB"}) == MemoryLimit(10**9, MEMORY_ENV)
    default = memory_limit(None, {})
    assert default.origin == "75% of this machine's RAM"
    assert default.bytes > 0


def test_bad_environment_limit_names_the_variable() -> None:
    with pytest.raises(UserInputError, match=rf"^{MEMORY_ENV} must be a size"):
        memory_limit(None, {MEMORY_ENV: "lots"})


# --- the estimate --------------------------------------------------------------------------


def _arrivals(shape: ArrivalShape, duration_s: float, *, seed: int) -> float:
    """Mean requests of the real generator's rate (thinning), by Monte Carlo integration."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, duration_s, 400_000)
    return float(shape.rate(t).mean() * duration_s)


@pytest.mark.parametrize(
    "overrides",
    [
        ["traffic.duration=2h"],
        ["traffic.duration=30h"],
        ["traffic.duration=3h", 'traffic.flash_crowds=[{ at = "1h", factor = 4, length = "20m" }]'],
        ["traffic.duration=3h", 'traffic.ramps=[{ at = "30m", factor = 3, length = "1h" }]'],
        ["traffic.duration=400d"],
    ],
)
def test_expected_requests_is_the_integral_of_the_rate(overrides: list[str]) -> None:
    scenario = load_scenario(QUICKSTART, overrides)
    tr = scenario.traffic
    arrivals = tr.arrivals
    assert arrivals is not None and arrivals.kind == "diurnal" and tr.duration is not None
    shape = ArrivalShape(
        arrivals.mean_rate_per_s,
        arrivals.amplitude,
        arrivals.period,
        arrivals.peak_at,
        tuple((c.at, c.factor, c.length) for c in tr.flash_crowds),
        tuple((r.at, r.factor, r.length) for r in tr.ramps),
    )
    requests, candidates = expected_requests(scenario)
    assert requests == pytest.approx(_arrivals(shape, tr.duration, seed=1), rel=0.01)
    assert candidates >= requests / tr.session.mean_requests


def test_estimate_matches_a_real_run_within_reason(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """The request count the guard plans for is what the run then draws (within 5 %: the
    sessions cut off at the end and Poisson noise)."""
    result = cli("run", str(QUICKSTART), "--out", str(tmp_path / "run"), "--quiet", *SMALL)
    assert result.code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    overrides = [SMALL[i + 1] for i in range(0, len(SMALL), 2)]
    estimate = estimate_run(load_scenario(QUICKSTART, overrides))
    assert estimate.requests == pytest.approx(summary["requests"]["arrivals"], rel=0.05)
    assert BASE_BYTES < estimate.total_bytes < 1e9


def test_largest_part_and_its_knob() -> None:
    huge_users = estimate_run(load_scenario(QUICKSTART, ["traffic.users=100000000"]))
    assert huge_users.largest.what == "history events"
    assert "traffic.users" in huge_users.largest.knob
    huge_items = estimate_run(load_scenario(QUICKSTART, ["traffic.items=10000000"]))
    assert huge_items.largest.what == "model factors"
    assert "traffic.items" in huge_items.largest.knob
    long_run = estimate_run(load_scenario(QUICKSTART, ["traffic.duration=300d"]))
    assert long_run.largest.what == "request records"
    assert "traffic.duration" in long_run.largest.knob


def test_infinite_rate_is_refused_not_crashed() -> None:
    # The schema refuses non-finite numbers before any estimate is made.
    with pytest.raises(UserInputError, match="mean_rate_per_s must be > 0 and finite, got inf"):
        load_scenario(QUICKSTART, ["traffic.arrivals.mean_rate_per_s=inf"])


def test_check_memory_message_is_one_line_with_estimate_limit_and_knob() -> None:
    estimate = Estimate(
        (Part("the interpreter and its libraries", 2e8), Part("top-K tables", 3.1e10, "d", "k")),
        1.0,
        4.0,
    )
    check_memory(estimate, MemoryLimit(40 * 10**9, "test"), source="a.toml")
    with pytest.raises(UserInputError) as caught:
        check_memory(estimate, MemoryLimit(8 * 10**9, "--max-memory"), source="a.toml")
    assert str(caught.value) == (
        "a.toml: the run needs about 31.2 GB but the limit is 8 GB (--max-memory); most of it "
        f"is top-K tables, about 31 GB (d); k, or pass --max-memory or set {MEMORY_ENV}"
    )


def test_log_estimate_grows_with_the_file(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    big = tmp_path / "big.csv"
    rows = "".join(f"{u % 50},{u % 97},{1_500_000_000 + u}\n" for u in range(2000))
    small.write_text("user,item,timestamp\n" + rows, encoding="utf-8")
    big.write_text("user,item,timestamp\n" + rows * 10, encoding="utf-8")
    estimates = [
        estimate_run(
            load_scenario(MOVIELENS_REPLAY, [f'traffic.log.path="{path}"']), source="m.toml"
        )
        for path in (small, big)
    ]
    logs = [next(p for p in e.parts if p.what == "the replayed log") for e in estimates]
    assert logs[1].bytes == pytest.approx(10 * logs[0].bytes, rel=0.05)
    assert "about 2,001 rows in small.csv" in logs[0].detail


def test_external_versions_count_what_they_keep_and_what_reading_them_needs(
    tmp_path: Path,
) -> None:
    """A top-K table adds its read beyond the request records it precedes; embeddings add
    their placed float32 copy (d + 2 columns); neither counts as trained factors."""
    import polars as pl

    users, k = 4000, 50
    table = tmp_path / "lists.parquet"
    pl.DataFrame(
        {
            "user": np.repeat(np.arange(users), k),
            "item": np.tile(np.arange(k), users),
            "rank": np.tile(np.arange(1, k + 1), users),
        }
    ).write_parquet(table)
    np.savez(
        tmp_path / "factors.npz",
        user_factors=np.zeros((users, 30), np.float32),
        item_factors=np.zeros((500, 30), np.float32),
    )
    size = [f"traffic.users={users}", "traffic.items=500", "traffic.duration=1m"]
    lab = estimate_run(load_scenario(QUICKSTART, size))
    from_table = estimate_run(
        load_scenario(QUICKSTART, [*size, f'models.candidate={{topk={{path="{table}"}}}}'])
    )
    parts = {p.what: p.bytes for p in from_table.parts}
    requests = parts["request records"]
    assert parts["reading versions from files"] == pytest.approx(users * k * 20 - requests)
    lab_factors = next(p.bytes for p in lab.parts if p.what == "model factors")
    assert parts["model factors"] < lab_factors  # the table's version trains nothing
    embedded = estimate_run(
        load_scenario(
            QUICKSTART,
            [*size, f'models.candidate={{embeddings={{path="{tmp_path / "factors.npz"}"}}}}'],
        )
    )
    kept = next(p for p in embedded.parts if p.what == "candidate's embeddings")
    assert kept.bytes == (users + 500) * 32 * 4
    # Traffic long enough for its records to outgrow the read: the read adds nothing.
    long = load_scenario(
        QUICKSTART,
        [*size[:2], "traffic.duration=2h", f'models.candidate={{topk={{path="{table}"}}}}'],
    )
    assert "reading versions from files" not in {p.what for p in estimate_run(long).parts}


def test_unreadable_log_is_left_to_the_reader() -> None:
    scenario = load_scenario(MOVIELENS_REPLAY, ['traffic.log.path="/no/such/ratings.csv"'])
    estimate = estimate_run(scenario)
    # the log is left to the reader; what does not depend on it is still counted
    assert [p.what for p in estimate.parts] == [
        "the interpreter and its libraries",
        "model training",
    ]


# --- through the CLI -----------------------------------------------------------------------


def test_huge_world_is_refused_before_anything_runs(
    cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli(
        "run", str(QUICKSTART), "--out", str(out), "--set", "traffic.users=500000000",
        "--max-memory", "8GB",
    )  # fmt: skip
    assert result.code == 2
    assert result.err == [
        "rollout-lab: error: quickstart.toml: the run needs about 867 GB but the limit is 8 GB "
        "(--max-memory); most of it is history events, about 480 GB (about 10,000,000,000: "
        "traffic.users x traffic.history_events_per_user); lower traffic.users or "
        "traffic.history_events_per_user, or pass --max-memory or set ROLLOUT_LAB_MAX_MEMORY"
    ]
    assert not out.exists()


def test_limit_from_the_environment(
    cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MEMORY_ENV, "100MB")
    result = cli("run", str(QUICKSTART), "--out", str(tmp_path / "out"), *SMALL)
    assert result.code == 2
    assert len(result.err) == 1
    assert f"but the limit is 100 MB ({MEMORY_ENV})" in result.err[0]
    assert "use a machine with more memory, or pass --max-memory" in result.err[0]


def test_check_refuses_each_oversized_scenario(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    result = cli(
        "check", str(QUICKSTART), "--out", str(tmp_path), "--set", "traffic.duration=300d",
        "--max-memory", "4GB",
    )  # fmt: skip
    assert result.code == 2
    assert len(result.err) == 1
    assert "error: quickstart.toml: the run needs about" in result.err[0]
    assert "lower traffic.duration or the traffic.arrivals rate" in result.err[0]
    assert list(tmp_path.iterdir()) == []


def test_bad_max_memory_option_is_one_line(cli: Callable[..., Outcome], tmp_path: Path) -> None:
    result = cli("run", str(QUICKSTART), "--out", str(tmp_path / "o"), "--max-memory", "lots")
    assert result.code == 2
    assert result.err == [
        "rollout-lab: error: --max-memory must be a size such as 8GB, 512MB or 1.5GiB, got 'lots'"
    ]


def test_absurd_sizes_stay_readable() -> None:
    assert format_size(2.5e15) == "2,500 TB"
    assert format_size(2.8e300) == "2.8e+288 TB"
    assert format_size(float("inf")) == "an unbounded amount"
