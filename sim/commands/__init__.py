"""One module per ``rollout-lab`` subcommand, each with ``add_parser(sub)`` and ``execute(args)``.

``sim.cli`` builds the parser from ``COMMANDS`` and maps exit codes and errors; a command
module only parses its own options and does its job.
"""

from __future__ import annotations

from sim.commands import check, models, run, sweep, train, validate

COMMANDS = (run, validate, check, sweep, train, models)
