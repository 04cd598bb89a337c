"""Every check a scenario passes before anything is built: ``validate`` runs exactly these,
and ``run`` / ``check`` run them first, so that ``validate`` never passes what ``run`` then
refuses before training.

1. the file: a regular file of bounded size, UTF-8 (a byte-order mark is dropped), TOML, the
   schema and ``--set`` overrides (:func:`lab.scenario.load_scenario`);
2. the expectations: each operator exists and compares what it can, each path is one that
   ``summary.json`` can hold for this scenario (:mod:`reports.summary_paths`);
3. the files it names: the replayed log (and a genres file given by path), the attribute
   tables, versions' top-K tables and embeddings exist and are regular files, not a pipe or
   a device; registry ids name a registered version (a plugin is not imported: that would
   run its code);
4. the memory estimate against the limit (:mod:`lab.footprint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.footprint import Estimate, MemoryLimit, check_memory, estimate_run
from lab.paths import resolve_input_path
from lab.scenario import Scenario, load_scenario
from replay.errors import UserInputError, cut
from replay.files import check_regular_file
from reports.summary_paths import check_summary_path, summary_versions
from reports.verdict import parse_expectation

if TYPE_CHECKING:
    from reports.junit import Suite

__all__ = ["Checked", "check_expectation_paths", "check_input_files", "preflight", "suite_of"]


@dataclass(frozen=True, slots=True)
class Checked:
    """A scenario that passed every check, with the folder its relative paths start from."""

    scenario: Scenario
    base_dir: Path
    estimate: Estimate


def check_expectation_paths(scenario: Scenario, *, source: str) -> None:
    """Each ``[expect]`` entry: a known operator, and a path the summary can hold."""
    train = scenario.release_train
    versions = summary_versions(
        scenario.models, scenario.rollout.candidate, train.count if train else None
    )
    for metric, value in scenario.expect.items():
        parse_expectation(metric, value, source=source)
        why = check_summary_path(metric, versions)
        if why is not None:
            raise UserInputError(f"{source}: expect.{cut(metric)} names no metric: {why}")


def check_model_sources(scenario: Scenario, *, base_dir: Path, source: str) -> None:
    """Versions from outside the run: tables and embeddings exist, registry ids name one
    registered version.  A plugin is not imported here (that runs its code): ``run`` does."""
    for name, model in scenario.models.items():
        if model.topk is not None:
            field = f"models.{name}.topk.path"
            path = resolve_input_path(
                model.topk.path, source=source, field=field, base_dir=base_dir
            )
            check_regular_file(path, label=path, what=f"top-K table ({field})")
        if model.embeddings is not None:
            field = f"models.{name}.embeddings.path"
            path = resolve_input_path(
                model.embeddings.path, source=source, field=field, base_dir=base_dir
            )
            if not Path(path).is_dir():
                check_regular_file(path, label=path, what=f"embeddings .npz or folder ({field})")
        if model.registry is not None and scenario.registry is not None:
            from replay.registry import Registry

            root = resolve_input_path(
                scenario.registry, source=source, field="registry", base_dir=base_dir
            )
            Registry(Path(root)).resolve(model.registry)


def check_input_files(scenario: Scenario, *, base_dir: Path, source: str) -> None:
    """The files the scenario reads exist and are regular files."""
    for kind, table in (("items", scenario.attributes.items), ("users", scenario.attributes.users)):
        if table is not None:
            field = f"attributes.{kind}.path"
            path = resolve_input_path(table.path, source=source, field=field, base_dir=base_dir)
            check_regular_file(path, label=path, what=f"{field} (an attribute table)")
    check_model_sources(scenario, base_dir=base_dir, source=source)
    log = scenario.traffic.log
    if log is None or scenario.traffic.source != "log":
        return
    path = resolve_input_path(log.path, source=source, field="traffic.log.path", base_dir=base_dir)
    check_regular_file(path, label=path, what="log file")
    if log.genres not in (None, "auto"):
        genres = resolve_input_path(
            log.genres, source=source, field="traffic.log.genres", base_dir=base_dir
        )
        check_regular_file(genres, label=genres, what="genres file (traffic.log.genres)")


def preflight(path: Path, overrides: Any, *, limit: MemoryLimit) -> Checked:
    """Load ``path`` with ``overrides`` and run every check above; one error line on failure."""
    scenario = load_scenario(path, overrides)
    source = path.name
    base_dir = path.resolve().parent
    check_expectation_paths(scenario, source=source)
    check_input_files(scenario, base_dir=base_dir, source=source)
    estimate = estimate_run(scenario, base_dir=base_dir, source=source)
    check_memory(estimate, limit, source=source)
    return Checked(scenario, base_dir, estimate)


def suite_of(
    summary: dict[str, Any],
    path: Path,
    target: Path,
    *,
    time_s: float = 0.0,
    timestamp: str = "",
) -> Suite:
    """The JUnit / Markdown suite of one finished scenario (its summary holds the verdict)."""
    from reports.junit import Suite

    return Suite(
        name=summary["scenario"]["name"],
        file=str(path),
        cases=tuple(summary["verdict"]["expectations"]),
        seed=summary["scenario"]["seed"],
        outcome=summary["outcome"],
        report=str(target / "report.html"),
        time_s=time_s,
        timestamp=timestamp,
    )
