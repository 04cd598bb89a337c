"""What several commands share: scenario options, overrides, output folders, atomic writes."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from replay.errors import UserInputError

EXIT_OK, EXIT_EXPECTATION, EXIT_USER, EXIT_INTERNAL = 0, 1, 2, 3

LOG_FORMATS = [
    "auto",
    "movielens_csv",
    "movielens_udata",
    "recbole_inter",
    "csv",
    "parquet",
    "ndjson",
]


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


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides plus those implied by ``--seed``, ``--log``, ``--log-format``."""
    extra = [f"seed={args.seed}"] if args.seed is not None else []
    if args.log is not None:
        extra += ['traffic.source="log"', f"traffic.log.path={toml_string(args.log)}"]
    if args.log_format is not None:
        extra.append(f"traffic.log.format={toml_string(args.log_format)}")
    return [*args.overrides, *extra]


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder (choose another path)")
    if out.exists() and (out / "summary.json").exists() and not force:
        raise UserInputError(f"--out {out}: holds an earlier run (pass --force to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)


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
