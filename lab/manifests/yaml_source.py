"""Manifests read with PyYAML's safe loader, every value kept with its line.

``read_manifest`` composes each document of a (multi-document) file with ``SafeLoader`` —
plain data only: maps, lists, strings, numbers, booleans, null; no Python objects — and
turns the node graph into ``Node``s that know their line and their path in the document
(``spec.strategy.canary.steps[2].pause``), so that every mistake can be reported in one line
naming the file, the field and its line::

    rollout.yaml: spec.strategy.canary.steps[2].pauze (line 14) is not a step Argo Rollouts
    knows (known: analysis, experiment, pause, ...)

Aliases are followed, but a file may not unfold into more than ``MAX_NODES`` values (the
"billion laughs" of YAML anchors), nor be larger than ``MAX_BYTES``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from replay.errors import UserInputError

__all__ = ["MAX_BYTES", "MAX_NODES", "ManifestError", "Node", "read_manifest"]

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000


class ManifestError(UserInputError):
    """A manifest the lab cannot use, in one line naming the file, the field and its line."""


@dataclass(frozen=True, slots=True)
class Node:
    """One value of a manifest with where it is: its file, line (from 1) and path."""

    value: Any  # dict[str, Node] | list[Node] | str | int | float | bool | None
    line: int
    path: str
    file: str

    # --- errors -------------------------------------------------------------------------

    def error(self, message: str) -> ManifestError:
        """``file: path (line N) message`` — the one-line form of every manifest mistake."""
        where = f"{self.path} (line {self.line})" if self.path else f"line {self.line}"
        return ManifestError(f"{self.file}: {where} {message}")

    # --- typed access ---------------------------------------------------------------------

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    def mapping(self) -> dict[str, Node]:
        if not isinstance(self.value, dict):
            raise self.error(f"must be a mapping (key: value), got {_kind(self.value)}")
        return self.value

    def sequence(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.error(f"must be a list, got {_kind(self.value)}")
        return self.value

    def get(self, key: str) -> Node | None:
        return self.mapping().get(key)

    def require(self, key: str, what: str = "") -> Node:
        found = self.get(key)
        if found is None:
            path = f"{self.path}.{key}" if self.path else key
            hint = f": {what}" if what else ""
            where = f"line {self.line}"
            raise ManifestError(f"{self.file}: {path} is required ({where}){hint}")
        return found

    def list_of(self, key: str) -> list[Node]:
        """The list under ``key`` (empty when the key is absent)."""
        found = self.get(key)
        return [] if found is None else found.sequence()

    def text(self) -> str:
        if isinstance(self.value, bool) or not isinstance(self.value, str | int | float):
            raise self.error(f"must be a string, got {_kind(self.value)}")
        return str(self.value)

    def integer(self, lo: int | None = None, hi: int | None = None) -> int:
        value = self.value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # Kubernetes IntOrString fields: "3" is 3
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"must be an integer, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise self.error(f"must be in {bounds}, got {value}")
        return value

    def number(self) -> float:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self.error(f"must be a finite number, got {value!r}")
        return float(value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"must be true or false, got {self.value!r}")
        return self.value

    def items(self) -> Iterator[tuple[str, Node]]:
        return iter(self.mapping().items())

    def plain(self) -> Any:
        """The value without positions (for notes and comparisons)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{value!r}".lower()
    return repr(value)


#: The tags of plain data; anything else (``!!python/object``, ``!!binary``...) is refused.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("map", "seq", "str", "int", "float", "bool", "null")
)


class _Builder:
    """Turns composed YAML nodes into ``Node``s, resolving scalars with the safe constructor."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: str, line: int | None = None) -> Node:
        """``line``: where the value's key is (a block mapping starts on the line below)."""
        self.count += 1
        line = line if line is not None else node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise ManifestError(
                f"{self.file}: line {line} unfolds into more than {MAX_NODES:,} values "
                "(aliases of aliases?); a rollout manifest is far smaller"
            )
        if node.tag not in _PLAIN_TAGS:
            raise ManifestError(
                f"{self.file}: line {node.start_mark.line + 1}: {node.tag!r} is not a value the "
                "lab reads (plain maps, lists, strings, numbers, booleans and null only)"
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ManifestError(
                        f"{self.file}: line {key_node.start_mark.line + 1}: merge keys (<<) "
                        "are not read; write the fields out"
                    )
                key = self._scalar(key_node)
                if not isinstance(key, str | int | float | bool) or key is None:
                    raise ManifestError(
                        f"{self.file}: {path or 'document'} (line {key_node.start_mark.line + 1}) "
                        "has a key that is not a plain value"
                    )
                name = str(key)
                child = f"{path}.{name}" if path else name
                if name in out:
                    raise ManifestError(
                        f"{self.file}: {child} (line {key_node.start_mark.line + 1}) is given "
                        "twice in the same mapping"
                    )
                out[name] = self.build(value_node, child, key_node.start_mark.line + 1)
            return Node(out, line, path, self.file)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return Node(items, line, path, self.file)
        return Node(self._scalar(node), line, path, self.file)

    def _scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node  # a complex key: refused by the caller
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            raise ManifestError(
                f"{self.file}: line {node.start_mark.line + 1}: not a value the lab reads "
                f"({' '.join(str(error).split())})"
            ) from None


def read_manifest(path: Path, *, display: str | None = None) -> list[Node]:
    """Every non-empty document of a YAML file, as located ``Node``s."""
    name = display or path.name
    try:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file"
            raise ManifestError(f"{name}: {what}, expected a manifest .yaml file (check the path)")
        if path.stat().st_size > MAX_BYTES:
            raise ManifestError(
                f"{name}: larger than {MAX_BYTES // (1024 * 1024)} MB: not a rollout manifest"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{name}: cannot read manifest ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{name}: not UTF-8 text: not a YAML manifest") from None
    builder = _Builder(name)
    documents: list[Node] = []
    try:
        for root in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if root is None:
                continue
            documents.append(builder.build(root, ""))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = error.problem or error.context or "unreadable"
        raise ManifestError(f"{name}: not valid YAML at {line}: {problem}") from None
    except yaml.YAMLError as error:
        raise ManifestError(f"{name}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ManifestError(f"{name}: nested too deeply to be a rollout manifest") from None
    if not documents:
        raise ManifestError(f"{name}: empty: expected an Argo Rollouts Rollout or a Flagger Canary")
    for doc in documents:
        if not doc.is_map:
            raise doc.error(
                f"is a document that is not a mapping ({_kind(doc.value)}): expected a "
                "Kubernetes object with apiVersion and kind"
            )
    return documents
