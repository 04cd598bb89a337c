"""``rollout-lab fit-world LOG``: a synthetic world's ``[traffic]`` block fitted to a log."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rollout_lab.commands.common import EXIT_OK, LOG_FORMATS, write_atomic
from rollout_lab.outputs import check_out_file

NAME = "fit-world"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        NAME, help="fit a synthetic world to a log: write a [traffic] block with its laws"
    )
    p.add_argument("log", type=Path, help="the interaction log (any format the lab reads)")
    p.add_argument("--log-format", default="auto", choices=LOG_FORMATS, help="force the log format")
    p.add_argument(
        "--scale",
        type=_positive_int,
        default=1,
        metavar="N",
        help="users of the world: N x the log's (default 1)",
    )
    p.add_argument(
        "--session-gap",
        default="30m",
        metavar="DURATION",
        help="inactivity that ends a session (default 30m)",
    )
    p.add_argument(
        "--clicks",
        default=None,
        metavar="COLUMN",
        help="a 0/1 column saying whether each row (an impression) was clicked: the click "
        "level (Open Bandit Dataset logs use their own click column)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="new .toml file for the block (never replaced); default: print it",
    )


def execute(args: argparse.Namespace) -> int:
    from lab.fitted_world import check_block, render_block
    from lab.scenario import Users
    from replay.click_level import click_column_level, event_click_level
    from replay.errors import UserInputError
    from replay.logs import LogSpec, read_log, resolved_format
    from replay.world_fit import fit_world, log_shape
    from sim.durations import parse_duration

    out: Path | None = args.out
    if out is not None:
        if out.suffix.lower() != ".toml":
            raise UserInputError(f"--out {out}: must end in .toml, got {out.suffix!r}")
        check_out_file(out, option="--out")
    try:
        gap_s = float(parse_duration(args.session_gap))
    except ValueError as error:
        raise UserInputError(f"--session-gap: {error}") from None
    if not gap_s > 0:
        raise UserInputError(
            f"--session-gap: must be a positive duration, got {args.session_gap!r}"
        )
    spec = LogSpec(args.log, format=args.log_format, session_gap_s=gap_s)
    fmt = resolved_format(spec)
    table = read_log(spec)
    shape = log_shape(table)
    clicks = None
    if args.clicks is not None:
        clicks = click_column_level(args.log, args.clicks, fmt=fmt, source=table.source)
    elif fmt == "obd":
        clicks = event_click_level(shape.event, rows_are_impressions=True, source=table.source)
    fit = fit_world(
        shape,
        source=table.source,
        gap_s=gap_s,
        clicks=clicks,
        activity_engagement=Users().activity_engagement,
    )
    block = render_block(fit, source=args.log.name, accounting=table.accounting, scale=args.scale)
    check_block(block, source=str(out or args.log))
    if out is None:
        print(block, end="")
        return EXIT_OK
    write_atomic(out, block.encode())
    print(
        f"wrote {out}: a world of {fit.users * args.scale:,} users and {fit.items:,} items "
        f"fitted to {fit.events:,} requests of {args.log.name}"
        + (
            f"; click level {fit.click_level.rate:.4f}, users.click_offset {fit.click_offset:.3f}"
            if fit.click_level is not None and fit.click_offset is not None
            else ""
        )
    )
    return EXIT_OK
