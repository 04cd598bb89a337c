"""Sweep logic without an engine: grid parsing, seeds, chunking, records, aggregates.

Replications run in this process (``SerialRunner``) on ``good_candidate_promoted.toml`` at
a small scale (20 simulated minutes, 2,000 users), about half a second each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from lab.pipeline import Prepared, RunResult, run, simulate_prepared
from lab.scenario import load_scenario
from lab.sweep import (
    RECORD_SCHEMA,
    PartStore,
    ReplicationRecord,
    SerialRunner,
    SweepPlan,
    Task,
    TaskResult,
    auto_chunk,
    describe,
    one_line,
    parse_grid,
    plan_sweep,
    point_seed,
    records_frame,
    run_sweep,
    run_task,
    sweep_summary,
)
from replay.errors import UserInputError
from reports.summary import build_summary

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "scenarios" / "good_candidate_promoted.toml"
SMALL = ["traffic.duration=20m", "traffic.users=2000", "traffic.items=400"]


# --------------------------------------------------------------------------- the grid


def test_grid_values_are_toml_typed() -> None:
    axes = parse_grid(
        [
            "rollout.weight=5,10",
            "serving.timeout_ms=100,150.5",
            'traffic.duration="20m", 1h',
            "cache.enabled=true,false",
            'serving.fallback=["baseline", "popular"],["popular"]',
        ]
    )
    assert [(a.key, a.kind) for a in axes] == [
        ("rollout.weight", "int"),
        ("serving.timeout_ms", "float"),
        ("traffic.duration", "str"),
        ("cache.enabled", "bool"),
        ("serving.fallback", "json"),
    ]
    assert axes[0].values == (5, 10)
    assert axes[1].values == (100, 150.5)
    assert axes[1].column_value(0) == 100.0 and isinstance(axes[1].column_value(0), float)
    assert axes[2].values == ("20m", "1h")
    assert axes[3].values == (True, False)
    assert axes[4].values == (["baseline", "popular"], ["popular"])
    assert axes[4].column_value(1) == '["popular"]'
    assert parse_grid([]) == ()


INVALID_GRIDS = [
    (["rollout.weight"], "--grid expects dotted.path=v1,v2,..., got 'rollout.weight'"),
    (["=5,10"], "--grid expects dotted.path=v1,v2,..., got '=5,10'"),
    (["rollout..weight=5"], "--grid path must look like section.key or list[0].key"),
    (["rollout.weight="], "--grid rollout.weight: needs at least one value, e.g."),
    (["rollout.weight=5,,10"], "--grid rollout.weight: value 2 is empty, got '5,,10'"),
    (["rollout.weight=5,10,5"], "--grid rollout.weight: value 5 appears twice"),
    (["rollout.weight=5", "rollout.weight=10"], "--grid rollout.weight: given twice"),
    (["seed=1,2"], "--grid seed: the seed is not a grid setting"),
]


@pytest.mark.parametrize(("specs", "message"), INVALID_GRIDS)
def test_grid_mistakes_are_one_line(specs: list[str], message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_grid(specs)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_a_grid_value_the_scenario_rejects_names_the_grid_point() -> None:
    axes = parse_grid(["rollout.weight=5,150"])
    with pytest.raises(UserInputError) as caught:
        plan_sweep(SCENARIO, SMALL, axes, 2)
    assert str(caught.value) == (
        "good_candidate_promoted.toml: rollout.weight must be in [0, 100], got 150 "
        "(grid point 1: rollout.weight=150)"
    )


def test_bad_counts_are_user_errors() -> None:
    with pytest.raises(UserInputError, match="--seeds must be at least 1, got 0"):
        plan_sweep(SCENARIO, SMALL, (), 0)
    plan = plan_sweep(SCENARIO, SMALL, (), 2)
    with pytest.raises(UserInputError, match="--workers must be at least 1, got 0"):
        plan.chunked(slots=0)
    with pytest.raises(UserInputError, match="--chunk-size must be at least 1, got 0"):
        plan.chunked(slots=1, chunk_size=0)


# --------------------------------------------------------------------------- seeds, tasks


def test_point_seed_is_the_documented_seed_sequence_word() -> None:
    expected = np.random.SeedSequence(11, spawn_key=(3,)).generate_state(1)[0]
    assert point_seed(11, 3) == int(expected)
    seeds = [point_seed(11, g) for g in range(50)]
    assert len(set(seeds)) == 50
    assert point_seed(12, 0) != point_seed(11, 0)


def test_grid_points_get_their_seeds_and_settings_in_product_order() -> None:
    axes = parse_grid(["rollout.weight=5,10", 'rollout.on_failure="rollback","hold"'])
    plan = plan_sweep(SCENARIO, SMALL, axes, 3)
    assert [p.label for p in plan.points] == [
        'rollout.weight=5, rollout.on_failure="rollback"',
        'rollout.weight=5, rollout.on_failure="hold"',
        'rollout.weight=10, rollout.on_failure="rollback"',
        'rollout.weight=10, rollout.on_failure="hold"',
    ]
    assert [p.scenario.rollout.weight for p in plan.points] == [5, 5, 10, 10]
    assert [p.scenario.rollout.on_failure for p in plan.points] == ["rollback", "hold"] * 2
    assert [p.seed for p in plan.points] == [p.scenario.seed for p in plan.points]
    assert [p.seed for p in plan.points] == [point_seed(11, g) for g in range(4)]
    assert plan.base.seed == 11 and plan.planned == 12
    assert len({p.key for p in plan.points}) == 4


@pytest.mark.parametrize(
    ("points", "replications", "slots", "chunk"),
    [
        (2, 8, 1, 8),  # one task per point is already two per slot
        (1, 16, 1, 8),
        (1, 16, 2, 4),  # four tasks: two per worker, each worker trains once
        (2, 8, 2, 4),
        (8, 10, 2, 10),
        (1, 3, 8, 1),
    ],
)
def test_auto_chunk_aims_at_two_tasks_per_slot(
    points: int, replications: int, slots: int, chunk: int
) -> None:
    assert auto_chunk(points, replications, slots) == chunk


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, None])
def test_tasks_cover_every_replication_once(chunk: int | None) -> None:
    plan = plan_sweep(SCENARIO, SMALL, parse_grid(["rollout.weight=5,10"]), 5)
    plan = plan.chunked(slots=3, chunk_size=chunk)
    pairs = [(t.point.index, r) for t in plan.tasks for r in t.replications]
    assert pairs == [(g, r) for g in range(2) for r in range(5)]
    assert all(len(t.replications) <= plan.chunk_size for t in plan.tasks)


# --------------------------------------------------------------------------- statistics


def test_describe_is_a_student_t_interval() -> None:
    values = [1.0, 2.0, 4.0, 7.0]
    block = describe(values)
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = stats.t.ppf(0.975, 3) * sd / math.sqrt(4)
    assert block["n"] == 4 and block["mean"] == 3.5 and block["median"] == 3.0
    assert block["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-6)
    assert (block["min"], block["max"]) == (1.0, 7.0)
    assert describe([2.5])["ci95"] == [None, None]
    assert describe([])["mean"] is None


def test_one_line_errors() -> None:
    assert one_line(ValueError("bad\nthings")) == "ValueError: bad"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 1000))) == 300


def test_record_columns_match_the_schema() -> None:
    assert list(RECORD_SCHEMA) == [f.name for f in dataclasses.fields(ReplicationRecord)]
    plan = plan_sweep(SCENARIO, SMALL, parse_grid(["rollout.weight=5,10"]), 1)
    frame = records_frame(plan, [ReplicationRecord(1, 0, 7, "failed", error="boom")])
    assert frame.columns[:3] == ["point", "rollout.weight", "replication"]
    assert frame.row(0, named=True)["rollout.weight"] == 10
    assert records_frame(plan, []).schema == frame.schema


# --------------------------------------------------------------------------- running


def _plan(chunk: int | None = None) -> SweepPlan:
    plan = plan_sweep(SCENARIO, SMALL, parse_grid(["rollout.weight=10,50"]), 2)
    return plan.chunked(slots=1, chunk_size=chunk)


def _deterministic(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("wall_s")


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    plan = _plan()
    store = PartStore(tmp_path_factory.mktemp("serial"), plan)
    store.reset()
    outcome = run_sweep(plan, SerialRunner(), store)
    assert not outcome.interrupted and outcome.tasks_done == len(plan.tasks) == 2
    return store.table()


def test_records_are_sorted_and_complete(serial_sweep: pl.DataFrame) -> None:
    assert serial_sweep.select("point", "rollout.weight", "replication").rows() == [
        (0, 10, 0),
        (0, 10, 1),
        (1, 50, 0),
        (1, 50, 1),
    ]
    assert serial_sweep["status"].to_list() == ["ok"] * 4
    assert serial_sweep["error"].null_count() == 4
    # Weight 50 exposes more users than weight 10, replication by replication.
    exposed = serial_sweep["users_exposed"].to_list()
    assert exposed[2] > exposed[0] and exposed[3] > exposed[1]
    assert serial_sweep["max_candidate_weight"].to_list()[:2] == [10.0, 10.0]


class _Reversed:
    """Runs tasks last first, one replication per task: a different order and chunking."""

    slots = 1

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]:
        for task in reversed(tasks):
            yield run_task(task)


def test_chunking_and_order_do_not_change_a_record(
    serial_sweep: pl.DataFrame, tmp_path: Path
) -> None:
    plan = _plan(chunk=1)
    assert len(plan.tasks) == 4
    store = PartStore(tmp_path, plan)
    store.reset()
    run_sweep(plan, _Reversed(), store)
    assert _deterministic(store.table()).equals(_deterministic(serial_sweep))


def test_replication_zero_is_the_single_run_with_the_point_seed(
    serial_sweep: pl.DataFrame,
) -> None:
    row = serial_sweep.row(2, named=True)  # point 1, replication 0
    scenario = load_scenario(SCENARIO, [*SMALL, "rollout.weight=50", f"seed={row['seed']}"])
    summary = build_summary(run(scenario), reproducible=True)
    candidate, baseline = summary["versions"]["candidate"], summary["versions"]["baseline"]
    assert row["outcome"] == summary["outcome"]
    assert row["requests"] == summary["requests"]["arrivals"]
    assert row["fallback"] == summary["requests"]["fallback"]
    assert row["dropped"] == summary["requests"]["dropped"]
    assert row["users_exposed"] == candidate["users"]
    assert row["candidate_ctr"] == candidate["ctr"]
    assert row["baseline_ctr"] == baseline["ctr"]
    assert row["candidate_p99_ms"] == candidate["latency_ms"]["p99"]
    assert row["baseline_p99_ms"] == baseline["latency_ms"]["p99"]
    assert row["candidate_timeout_rate"] == candidate["timeout_rate"]
    assert row["max_candidate_weight"] == summary["rollout"]["max_candidate_weight"]
    assert row["time_to_promote_s"] == summary["rollout"]["time_to_promote_s"]


def _fails_on_replication_one(prepared: Prepared, replication: int) -> RunResult:
    if replication == 1:
        raise ValueError("injected fault\nsecond line")
    return simulate_prepared(prepared, replication)


def test_a_failing_replication_is_reported_and_the_rest_finish(
    serial_sweep: pl.DataFrame, tmp_path: Path
) -> None:
    plan = _plan()
    store = PartStore(tmp_path, plan)
    store.reset()
    run_sweep(plan, SerialRunner(replicate=_fails_on_replication_one), store)
    table = store.table()
    assert table["status"].to_list() == ["ok", "failed", "ok", "failed"]
    failed = table.filter(pl.col("status") == "failed")
    assert failed["error"].to_list() == ["ValueError: injected fault"] * 2
    assert failed["outcome"].null_count() == 2
    ok = _deterministic(table.filter(pl.col("status") == "ok"))
    assert ok.equals(_deterministic(serial_sweep.filter(pl.col("replication") == 0)))
    summary = sweep_summary(plan, table, interrupted=False, execution={})
    assert summary["complete"] is True
    assert summary["counts"] == {"planned": 4, "finished": 4, "ok": 2, "failed": 2, "missing": 0}
    assert summary["failures"][0] == {
        "point": 0,
        "grid": "rollout.weight=10",
        "replication": 1,
        "seed": plan.points[0].seed,
        "error": "ValueError: injected fault",
    }
    assert [b["replications"] for b in summary["points"]] == [1, 1]
    assert [b["failed"] for b in summary["points"]] == [1, 1]


def test_a_point_that_cannot_train_fails_all_its_replications() -> None:
    plan = _plan()
    broken = dataclasses.replace(plan.tasks[0], base_dir="/nonexistent", source_name="x")
    point = dataclasses.replace(
        broken.point, key="broken", scenario=broken.point.scenario.model_copy(update={"models": {}})
    )
    result = run_task(dataclasses.replace(broken, point=point))
    assert [r.status for r in result.records] == ["failed", "failed"]
    assert all(r.error is not None and r.error.startswith("prepare: ") for r in result.records)


class _Interrupted:
    """Finishes the first task, then the user presses Ctrl-C."""

    slots = 1
    closed = False

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]:
        try:
            yield run_task(tasks[0])
            raise KeyboardInterrupt
        finally:
            _Interrupted.closed = True


def test_an_interrupted_sweep_keeps_what_finished(
    serial_sweep: pl.DataFrame, tmp_path: Path
) -> None:
    plan = _plan()
    store = PartStore(tmp_path, plan)
    store.reset()
    outcome = run_sweep(plan, _Interrupted(), store)
    assert outcome.interrupted and outcome.tasks_done == 1 and _Interrupted.closed
    assert len(list((tmp_path / "parts").glob("*.parquet"))) == 1
    table = store.table()
    assert _deterministic(table).equals(_deterministic(serial_sweep.filter(pl.col("point") == 0)))
    summary = sweep_summary(plan, table, interrupted=True, execution={})
    assert summary["complete"] is False and summary["interrupted"] is True
    assert summary["counts"]["missing"] == 2
    assert [b["missing"] for b in summary["points"]] == [0, 2]
    assert table["wall_s"].to_list() != [0.0, 0.0]
    assert store.table(reproducible=True)["wall_s"].to_list() == [0.0, 0.0]
