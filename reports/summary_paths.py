"""Which dotted paths ``summary.json`` can hold for a scenario: what an expectation may name.

``rollout-lab validate`` (and ``run``, before anything is computed) checks every ``[expect]``
key against this tree, so that a misspelt path is refused in one line before a long run
rather than after it.  The tree is derived from the summary's schema
(:func:`reports.summary_schema.summary_tree`), the same pydantic models every summary.json
the tests write is validated against, so the paths an expectation may name and the summary
the lab writes cannot drift apart.

Node kinds: a leaf (``LEAF``: a scalar, or a list, which an expectation cannot index), a
table of known keys (``dict``), a table keyed by the scenario's version names (``VERSIONS``),
and an open table (``OPEN``: anything below it is accepted, for blocks whose keys are data,
such as the resolved settings, segments or the row accounting's skip reasons).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from reports.summary_schema import LEAF, OPEN, VERSIONS, summary_tree

__all__ = ["LEAF", "OPEN", "SUMMARY_TREE", "check_summary_path", "summary_versions"]

SUMMARY_TREE: Final[dict[str, Any]] = summary_tree()


def summary_versions(models: Iterable[str], candidate: str, releases: int | None) -> set[str]:
    """Version names a summary can hold: the models, and a release train's ``CANDIDATE-k``."""
    names = set(models)
    if releases is not None:
        names |= {f"{candidate}-{k}" for k in range(2, releases + 1)}
    return names


def check_summary_path(path: str, versions: set[str]) -> str | None:
    """None when ``path`` can name a metric of the summary, else why not (for a message)."""
    node: Any = SUMMARY_TREE
    walked: list[str] = []
    parts = path.split(".")
    for part in parts:
        if node == OPEN:
            return None
        if node == LEAF:
            return f"{'.'.join(walked)} is a metric, it has no {part!r}"
        if part in node:
            node = node[part]
        elif VERSIONS in node and part in versions:
            node = node[VERSIONS]
        else:
            where = ".".join(walked) or "the summary"
            keys = sorted(k for k in node if k != VERSIONS)
            if VERSIONS in node:
                keys = sorted(versions) + keys
            shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            return f"{part[:40]!r} is not in {where} (known: {shown})"
        walked.append(part)
    if isinstance(node, dict):
        return f"{'.'.join(walked)} is a group, not a metric (pick one of its keys)"
    return None
