"""What several commands share: scenario and guard options, overrides, atomic writes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from lab.footprint import MEMORY_ENV
from lab.version import lab_version
from replay.errors import UserInputError
from replay.log_formats import LogFormat
from rollout_lab.outputs import check_out_file, write_atomic

if TYPE_CHECKING:
    from reports.junit import Suite

__all__ = [
    "EXIT_EXPECTATION",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_USER",
    "LOG_FORMATS",
    "MAX_LINE",
    "cache_options",
    "check_file_outputs",
    "error_line",
    "file_output_options",
    "guard_options",
    "lab_version",
    "overrides",
    "printable",
    "scenario_files",
    "scenario_options",
    "slug",
    "toml_string",
    "write_atomic",
    "write_file_outputs",
]

EXIT_OK, EXIT_EXPECTATION, EXIT_USER, EXIT_INTERNAL, EXIT_OUTPUT = 0, 1, 2, 3, 4
#: Longest line the CLI prints for one error: values are cut where they are echoed, this is
#: the backstop for a message that still grew too long.
MAX_LINE = 1_000

LOG_FORMATS = list(get_args(LogFormat))


def scenario_options(p: argparse.ArgumentParser) -> None:
    """``--set``, ``--seed``, ``--log`` and ``--log-format``, shared by every scenario command."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a scenario setting, e.g. --set rollout.weight=5 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--log",
        type=str,
        default=None,
        metavar="PATH",
        help="replay this interaction log (sets traffic.source = log)",
    )
    p.add_argument(
        "--log-format",
        default=None,
        choices=LOG_FORMATS,
        help="force the log format instead of detecting it",
    )
    p.add_argument(
        "--rollout",
        type=str,
        default=None,
        metavar="FILE",
        help="take the rollout from this Argo Rollouts or Flagger manifest (rollout.manifest)",
    )


def guard_options(p: argparse.ArgumentParser) -> None:
    """``--max-memory``, shared by the commands that run scenarios."""
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help=(
            "refuse runs estimated to need more memory than this, e.g. 8GB "
            f"(default: ${MEMORY_ENV}, else 75%% of this machine's RAM)"
        ),
    )


def cache_options(p: argparse.ArgumentParser) -> None:
    """``--cache-dir`` and ``--no-cache``, shared by the commands that prepare scenarios."""
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=(
            "keep prepared worlds, trained versions and top-K lists here for reruns "
            "(default: $ROLLOUT_LAB_CACHE, else ~/.cache/rollout-lab)"
        ),
    )
    p.add_argument(
        "--no-cache", action="store_true", help="build everything; read and write no cache"
    )


def file_output_options(p: argparse.ArgumentParser) -> None:
    """``--markdown FILE``, shared by ``run`` and ``check``."""
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write a short Markdown summary (for a CI job's step summary)",
    )


def _file_outputs(args: argparse.Namespace) -> list[tuple[str, Path, str]]:
    from reports.junit import JUNIT_MARKER
    from reports.markdown import MARKDOWN_MARKER

    wanted = [
        ("--junit", getattr(args, "junit", None), JUNIT_MARKER),
        ("--markdown", getattr(args, "markdown", None), MARKDOWN_MARKER),
    ]
    return [(option, path, marker) for option, path, marker in wanted if path is not None]


def check_file_outputs(args: argparse.Namespace) -> None:
    """``--junit`` / ``--markdown`` files follow the output rules (``outputs.check_out_file``):
    checked before anything runs, and again just before they are written."""
    for option, path, marker in _file_outputs(args):
        check_out_file(
            path, option=option, force=getattr(args, "force", False), marker=marker.encode()
        )


def write_file_outputs(args: argparse.Namespace, suites: Sequence[Suite]) -> None:
    """Write ``--junit`` and ``--markdown`` for ``suites`` (each atomically)."""
    from reports.junit import junit_xml
    from reports.markdown import markdown_summary

    check_file_outputs(args)
    for option, path, _marker in _file_outputs(args):
        text = junit_xml(suites) if option == "--junit" else markdown_summary(suites)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides plus those implied by ``--seed``, ``--log``, ``--log-format``."""
    extra = [f"seed={args.seed}"] if args.seed is not None else []
    if args.log is not None:
        extra += ['traffic.source="log"', f"traffic.log.path={toml_string(args.log)}"]
    if args.log_format is not None:
        extra.append(f"traffic.log.format={toml_string(args.log_format)}")
    registry = getattr(args, "registry", None)
    if registry is not None:
        # The folder versions load from and are registered in, relative to where the command
        # runs (a registry named in the scenario file is relative to the file).
        extra.append(f"registry={toml_string(str(Path(registry).resolve()))}")
    if args.rollout is not None:
        # Relative to where the command runs, unlike a manifest named in the scenario file.
        extra.append(f"rollout.manifest={toml_string(str(Path(args.rollout).resolve()))}")
    return [*args.overrides, *extra]


def printable(text: str) -> str:
    """Escape control and formatting characters other than newlines (a log header or a model
    name holding terminal escape sequences), so that nothing the lab prints can drive the
    terminal that shows it."""
    return "".join(
        ch if ch.isprintable() or ch == "\n" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def error_line(message: str, *, prefix: str = "rollout-lab: error: ") -> str:
    """One printable line of at most ``MAX_LINE`` characters for stderr."""
    text = printable(" ".join(message.split()))
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return prefix + text


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"


def scenario_files(paths: list[Path]) -> list[Path]:
    """Scenario files from files and folders (all ``*.toml`` inside a folder, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            files.append(path)
        else:
            raise UserInputError(f"{path}: no such scenario file or folder")
    if not files:
        raise UserInputError(f"{', '.join(map(str, paths))}: no .toml scenario files found")
    return files
