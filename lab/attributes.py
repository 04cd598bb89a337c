"""A scenario's attribute tables, read against the run's items and users.

``[attributes.items]`` and ``[attributes.users]`` name a table each (``replay.attributes``).
Ids are the source's raw ids: a replayed log's own (``movieId``, a user id), or for
synthetic worlds the dense index itself (items 0 .. items − 1, users 0 .. users − 1), which
is what the example tables in ``scenarios/data/`` hold.

Targeting by attribute (``rollout.target = { country = ["DE"] }``) becomes one boolean per
user here, checked against the table (the column must be grouped by, the values must occur),
and the pipeline turns it into per-request eligibility before the run: the engine routes as
it always does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from lab.paths import resolve_input_path
from lab.scenario import Attributes, AttributeTableSettings
from lab.sources import Source
from replay.attributes import Attribute, AttributeSpec, AttributeTable, Kind, read_attributes
from replay.errors import UserInputError

__all__ = ["RunAttributes", "read_run_attributes", "target_users"]


@dataclass(frozen=True, slots=True)
class RunAttributes:
    """The run's attribute tables (``None`` where the scenario names none).

    ``provider`` is the item attribute provider fairness is measured on, if any.
    """

    items: AttributeTable | None = None
    users: AttributeTable | None = None
    provider: str | None = None

    @property
    def provider_attribute(self) -> Attribute | None:
        if self.items is None or self.provider is None:
            return None
        return self.items.attributes[self.provider]

    def summary(self) -> dict[str, object] | None:
        """``data.attributes`` of summary.json: each table's accounting and columns."""
        if self.items is None and self.users is None:
            return None
        return {
            "items": None if self.items is None else self.items.summary(),
            "users": None if self.users is None else self.users.summary(),
        }


def _ids(raw: pl.Series | None, n: int) -> pl.Series:
    return raw if raw is not None else pl.Series("id", np.arange(n, dtype=np.int64))


def _read(
    settings: AttributeTableSettings,
    kind: Kind,
    ids: pl.Series,
    *,
    source: str,
    base_dir: Path | None,
) -> AttributeTable:
    field = f"attributes.{kind}s"
    path = resolve_input_path(
        settings.path, source=source, field=f"{field}.path", base_dir=base_dir
    )
    spec = AttributeSpec(
        path=path,
        kind=kind,
        id_column=settings.id,
        multi_valued=dict(settings.multi_valued),
        categorical=settings.categorical,
        field=field,
    )
    # Named as the scenario writes it (summary.json is the same on every machine).
    return replace(read_attributes(spec, ids), path=settings.path)


def read_run_attributes(
    settings: Attributes, run_source: Source, *, source: str, base_dir: Path | None
) -> RunAttributes:
    """Read the scenario's attribute tables against ``run_source``'s users and items."""
    world = run_source.world
    items = users = None
    provider = None
    if settings.items is not None:
        items = _read(
            settings.items,
            "item",
            _ids(run_source.item_ids, world.n_items),
            source=source,
            base_dir=base_dir,
        )
        provider = settings.items.provider
        if provider is not None and provider not in items.attributes:
            why = items.ignored.get(provider, "not a column of the table")
            raise UserInputError(
                f"{items.path}: attributes.items.provider must name a categorical column, got "
                f"{provider!r} ({why}; grouped by: {', '.join(items.attributes) or 'none'})"
            )
    if settings.users is not None:
        users = _read(
            settings.users,
            "user",
            _ids(run_source.user_ids, world.n_users),
            source=source,
            base_dir=base_dir,
        )
    return RunAttributes(items=items, users=users, provider=provider)


def target_users(
    target: Mapping[str, Sequence[str]], users: AttributeTable | None, *, source: str
) -> npt.NDArray[np.bool_] | None:
    """bool [n_users]: the users ``rollout.target`` lets see the candidate (``None``: all).

    Every column must hold one of its listed values (users without a row hold none).
    """
    if not target:
        return None
    if users is None:
        raise UserInputError(f"{source}: rollout.target needs [attributes.users] (a user table)")
    wanted = np.ones(users.n_ids, dtype=np.bool_)
    for column, values in target.items():
        attribute = users.attributes.get(column)
        if attribute is None:
            why = users.ignored.get(column, "not a column of the table")
            raise UserInputError(
                f"{source}: rollout.target.{column} must name a categorical column of "
                f"{users.path} ({', '.join(users.attributes) or 'none'}), got {column!r} ({why})"
            )
        unknown = [v for v in values if v not in attribute.levels]
        if unknown:
            shown = ", ".join(attribute.levels[:12]) + (", ..." if attribute.n_levels > 12 else "")
            raise UserInputError(
                f"{source}: rollout.target.{column} must list values of column {column!r} in "
                f"{users.path} ({shown}), got {unknown[0]!r}"
            )
        wanted &= attribute.has(values)
    if not wanted.any():
        raise UserInputError(
            f"{source}: rollout.target {dict(target)} matches no user of the run (the values "
            "exist, but no user has all of them); widen the target"
        )
    return wanted
