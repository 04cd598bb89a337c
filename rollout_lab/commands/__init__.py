"""One module per ``rollout-lab`` subcommand, each with ``add_parser(sub)`` and ``execute(args)``.

``rollout_lab.cli`` builds the parser from ``COMMANDS`` and maps exit codes and errors; a command
module only parses its own options and does its job.
"""

from __future__ import annotations

from rollout_lab.commands import (
    check,
    export,
    fit_world,
    models,
    run,
    schema,
    sweep,
    train,
    validate,
    world,
)

COMMANDS = (run, validate, check, sweep, train, models, schema, export, world, fit_world)
