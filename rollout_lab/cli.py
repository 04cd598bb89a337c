"""``rollout-lab``: the command line, and the one place that wires load -> simulate -> report.

Each subcommand lives in ``rollout_lab.commands``; this module builds the parser from them and turns
errors into exit codes: 0 success (all expectations pass), 1 an expectation failed, 2 bad
input (one line on stderr, no traceback), 3 internal error (a bug: the traceback is printed),
130 / 143 stopped by SIGINT / SIGTERM (one line on stderr; see ``rollout_lab.signals``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from replay.errors import UserInputError
from rollout_lab.commands import COMMANDS
from rollout_lab.commands.common import EXIT_INTERNAL, EXIT_USER, printable
from rollout_lab.outputs import INCOMPLETE
from rollout_lab.signals import RunInterrupted, stop_on_signals


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
    with stop_on_signals():
        try:
            code: int = commands[args.command](args)
            return code
        except UserInputError as exc:
            print(f"rollout-lab: error: {printable(str(exc))}", file=sys.stderr)
            return EXIT_USER
        except RunInterrupted as stop:
            print(f"rollout-lab: {printable(_stopped(stop))}", file=sys.stderr)
            return stop.exit_code
        except KeyboardInterrupt:
            print("rollout-lab: interrupted", file=sys.stderr)
            return 130
        except Exception:
            print("rollout-lab: internal error (a bug, please report it):", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return EXIT_INTERNAL


def _stopped(stop: RunInterrupted) -> str:
    """One line: which signal stopped the command and what it left in the output folder."""
    if stop.out is None:
        return f"stopped by {stop.name}"
    if (stop.out / INCOMPLETE).exists():
        return (
            f"stopped by {stop.name} while writing {stop.out}: its files are not a complete "
            f"run (marked {INCOMPLETE}; run again with --force)"
        )
    return f"stopped by {stop.name} before writing any output ({stop.out} is as it was)"


if __name__ == "__main__":
    sys.exit(main())
