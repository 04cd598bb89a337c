"""What several commands share: scenario and guard options, overrides, atomic writes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import get_args

from lab.footprint import MEMORY_ENV
from replay.errors import UserInputError
from replay.log_formats import LogFormat
from rollout_lab.outputs import write_atomic

__all__ = [
    "EXIT_EXPECTATION",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USER",
    "LOG_FORMATS",
    "guard_options",
    "overrides",
    "printable",
    "scenario_files",
    "scenario_options",
    "slug",
    "toml_string",
    "write_atomic",
]

EXIT_OK, EXIT_EXPECTATION, EXIT_USER, EXIT_INTERNAL = 0, 1, 2, 3

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


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides plus those implied by ``--seed``, ``--log``, ``--log-format``."""
    extra = [f"seed={args.seed}"] if args.seed is not None else []
    if args.log is not None:
        extra += ['traffic.source="log"', f"traffic.log.path={toml_string(args.log)}"]
    if args.log_format is not None:
        extra.append(f"traffic.log.format={toml_string(args.log_format)}")
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
