"""``rollout-lab``: the command line, and the one place that wires load -> simulate -> report.

Each subcommand lives in ``sim.commands``; this module builds the parser from them and turns
errors into exit codes: 0 success (all expectations pass), 1 an expectation failed, 2 bad
input (one line on stderr, no traceback), 3 internal error (a bug: the traceback is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from replay.errors import UserInputError
from sim.commands import COMMANDS
from sim.commands.common import EXIT_INTERNAL, EXIT_USER


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollout-lab",
        description="Simulate recommender-model rollouts offline and report what would happen.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = _parser().parse_args(argv)
    commands = {command.NAME: command.execute for command in COMMANDS}
    try:
        return commands[args.command](args)
    except UserInputError as exc:
        print(f"rollout-lab: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("rollout-lab: interrupted", file=sys.stderr)
        return 130
    except Exception:
        print("rollout-lab: internal error (a bug, please report it):", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
