"""``rollout-lab``: the command line, and the one place that wires load -> simulate -> report.

Each subcommand lives in ``rollout_lab.commands``; this module builds the parser from them and
turns errors into exit codes (``EXIT_CODES``, also printed by ``--help``).

Signals, from process start to exit: SIGINT and SIGTERM stop the command cleanly from the
moment :func:`main` starts (before the options are parsed) until it has printed its last
line; after that they are ignored and the process exits with the command's own code.  Only
in the few milliseconds while Python itself starts, before this module runs, does a signal
stop the process the default way, before anything has been read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from replay.errors import UserInputError
from rollout_lab.commands import COMMANDS
from rollout_lab.commands.common import (
    EXIT_INTERNAL,
    EXIT_OUTPUT,
    EXIT_USER,
    error_line,
    lab_version,
)
from rollout_lab.outputs import OutputWriteError
from rollout_lab.signals import RunInterrupted, stop_on_signals

#: Exit codes of every command (``sweep``: 1 means some replications failed).
EXIT_CODES = """\
exit codes:
  0    success, every expectation passed
  1    an expectation failed (sweep: a replication failed)
  2    bad input: one line on stderr naming the file, field, value and fix; nothing written
  3    internal error (a bug): the traceback is printed
  4    the run was computed but its files could not be written (disk full, file-size
       limit, read-only folder): one line on stderr; the output folder is as it was
  130  stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM: one line says what the output
       folder holds
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (exit 2) like every other mistake."""

    def error(self, message: str) -> NoReturn:
        print(error_line(f"{message} (see {self.prog} --help)"), file=sys.stderr)
        raise SystemExit(EXIT_USER)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rollout-lab",
        description="Simulate recommender-model rollouts offline and report what would happen.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rollout-lab {lab_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    for choice in sub.choices.values():
        choice.epilog = EXIT_CODES
        choice.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None, *, exiting: bool | None = None) -> int:
    """Run one command; returns its exit code.

    ``exiting`` (default: when ``argv`` is None, i.e. the ``rollout-lab`` process itself)
    leaves SIGINT and SIGTERM ignored afterwards instead of restoring the earlier handlers.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    ignore_after = argv is None if exiting is None else exiting
    with stop_on_signals(then_ignore=ignore_after):
        try:
            args = _parser().parse_args(argv)
            commands = {command.NAME: command.execute for command in COMMANDS}
            code: int = commands[args.command](args)
            return code
        except SystemExit as done:  # --help, --version, a bad option
            return done.code if isinstance(done.code, int) else EXIT_USER
        except UserInputError as exc:
            print(error_line(str(exc)), file=sys.stderr)
            return EXIT_USER
        except OutputWriteError as exc:
            print(error_line(str(exc)), file=sys.stderr)
            return EXIT_OUTPUT
        except RunInterrupted as stop:
            print(error_line(_stopped(stop), prefix="rollout-lab: "), file=sys.stderr)
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
    if stop.detail is not None:
        where = "" if stop.out is None else f"; {_stopped_folder(stop)}"
        return f"stopped by {stop.name} {stop.detail}{where}"
    if stop.out is None:
        return f"stopped by {stop.name} before writing any output (nothing was written)"
    return f"stopped by {stop.name} {_stopped_folder(stop)}"


def _stopped_folder(stop: RunInterrupted) -> str:
    if stop.folder == "complete":
        return f"after writing {stop.out}: it holds the complete new run"
    return f"before writing any output ({stop.out} is as it was)"


if __name__ == "__main__":
    sys.exit(main())
