"""The Open Bandit Dataset's file layout as a log (``format = "obd"``).

The Open Bandit Dataset (Saito et al. 2021, ZOZOTOWN) ships one CSV per logging policy and
campaign (``random/all/all.csv``, ``bts/men/men.csv``, ...), one row per item shown at one
position of a recommendation, with the columns

    (unnamed row index), timestamp, item_id, position, click, propensity_score,
    user_feature_0 .. user_feature_3, user-item_affinity_0 .. user-item_affinity_{n-1}

``timestamp`` is ISO-8601 with a zone (``2019-11-24 00:00:34.762830+00:00``), ``position``
1-based, ``click`` 0/1 and ``propensity_score`` the logging policy's probability of showing
that item at that position.

The roles, fixed by the format:

    user        none in the dataset: a user is one profile of the hashed user features,
                the values of every ``user_feature_*`` column joined by ``|``
                (:func:`user_expr`); rows with the same four features are one user.
    item        ``item_id``
    timestamp   ``timestamp``
    event       ``"click"`` where ``click`` is 1, else ``"impression"``
    position    ``position``
    reward      ``click``
    propensity  ``propensity_score``

The ``user-item_affinity_*`` columns and the unnamed index are not read.  A file missing a
required column is refused with one line naming it (:func:`obd_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from replay.errors import UserInputError

__all__ = [
    "OBD_REQUIRED",
    "USER_COLUMN",
    "USER_FEATURE_PREFIX",
    "ObdColumns",
    "looks_obd",
    "obd_columns",
    "obd_file_columns",
    "user_expr",
]

#: Columns every OBD file has besides its user features.
OBD_REQUIRED: Final[tuple[str, ...]] = (
    "timestamp",
    "item_id",
    "position",
    "click",
    "propensity_score",
)
USER_FEATURE_PREFIX: Final[str] = "user_feature_"
#: Name of the derived user column (the joined user features).
USER_COLUMN: Final[str] = "obd_user"


@dataclass(frozen=True, slots=True)
class ObdColumns:
    """The file's user feature columns, in their file order, and the fixed role names."""

    user_features: tuple[str, ...]
    item: str = "item_id"
    timestamp: str = "timestamp"
    position: str = "position"
    reward: str = "click"
    propensity: str = "propensity_score"

    def impression_roles(self) -> dict[str, str | None]:
        """Role -> column for reading the rows as logged impressions (the user is derived
        from ``user_features``)."""
        return {
            "item": self.item,
            "timestamp": self.timestamp,
            "propensity": self.propensity,
            "reward": self.reward,
            "position": self.position,
        }


def looks_obd(header: list[str]) -> bool:
    """Whether a header is the OBD layout (every required column and a user feature)."""
    return all(c in header for c in OBD_REQUIRED) and any(
        c.startswith(USER_FEATURE_PREFIX) for c in header
    )


def obd_columns(found: list[str], *, label: str) -> ObdColumns:
    """The roles of an OBD file with columns ``found``; a missing column raises one line."""
    missing = [c for c in OBD_REQUIRED if c not in found]
    features = tuple(c for c in found if c.startswith(USER_FEATURE_PREFIX))
    if not features:
        missing.append(f"{USER_FEATURE_PREFIX}*")
    if missing:
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
        raise UserInputError(
            f"{label}: an Open Bandit Dataset file must have the column(s) "
            f"{', '.join(repr(m) for m in missing)}, got {shown or 'no columns'} (point to an "
            'OBD all.csv / men.csv / women.csv, or set traffic.log.format = "csv" and map '
            "traffic.log.columns)"
        )
    return ObdColumns(user_features=features)


def obd_file_columns(path: str, *, label: str) -> ObdColumns:
    """:func:`obd_columns` of the file at ``path`` (its header only)."""
    try:
        found = pl.scan_csv(path, infer_schema=False).collect_schema().names()
    except (OSError, pl.exceptions.PolarsError) as error:
        raise UserInputError(
            f"{label}: an Open Bandit Dataset file must be comma-separated text with a header, "
            f"got a read error ({type(error).__name__}; check the file)"
        ) from None
    return obd_columns(found, label=label)


def user_expr(features: tuple[str, ...]) -> pl.Expr:
    """The user of each row: its user features' values joined by ``|`` (null if any is)."""
    return pl.concat_str(
        [pl.col(c).cast(pl.String).str.strip_chars() for c in features], separator="|"
    ).alias(USER_COLUMN)
