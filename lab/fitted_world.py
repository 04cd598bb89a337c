"""A fitted world between its two forms: the scenario's ``traffic.fitted`` settings and the
arrays ``replay.fitted_traffic`` generates from; and the TOML block ``fit-world`` writes."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from lab.scenario import FittedWorld, Traffic, Users
from replay.errors import InternalError
from replay.fitted_traffic import EmpiricalLaw, FittedTraffic, SessionHours, UserBand
from replay.taste_fit import MAX_TASTE_VARIANCE
from replay.world_fit import DRIFT_SHARE, NEW_WINDOW_SHARE, WorldFit
from sim.durations import format_duration

__all__ = ["DEFAULT_RUN", "check_block", "fitted_traffic", "render_block"]

#: The run length a fitted block starts with: one day, to be set to the rollout's.
DEFAULT_RUN = "1d"


def _comment_text(text: str) -> str:
    """``text`` safe inside a TOML comment: no control characters (a newline would end it)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _law(values: list[float]) -> EmpiricalLaw:
    return EmpiricalLaw(np.sort(np.asarray(values, dtype=np.float64)))


def fitted_traffic(settings: FittedWorld) -> FittedTraffic:
    """The generator's laws from validated settings (activity pairs sorted together)."""
    activity = np.asarray(settings.activity, dtype=np.float64)
    sessions = np.asarray(settings.sessions, dtype=np.float64)
    order = np.lexsort((sessions, activity))
    return FittedTraffic(
        span_s=settings.span,
        gap_s=settings.session_gap,
        activity=EmpiricalLaw(activity[order]),
        sessions=sessions[order],
        bands=tuple(
            UserBand(
                max_mean_length=band.max_mean_length,
                session_length=_law(band.session_length),
                think_time_s=_law(band.think_time),
                return_gap_s=None if band.return_gap is None else _law(band.return_gap),
            )
            for band in settings.bands
        ),
        hourly_profile=tuple(settings.hourly),
        session_hours=None
        if settings.hourly_by_length is None
        else tuple(
            SessionHours(float(c.max_length), tuple(c.hourly)) for c in settings.hourly_by_length
        ),
        popularity=_law(settings.popularity),
    )


def _number(value: float) -> str:
    """A TOML number: integers without a fraction, others in the shortest form that reads
    back as the same float (band edges are users' exact values: rounding would move users
    across them)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _array(values: Sequence[float] | npt.NDArray[np.float64], indent: str = "  ") -> str:
    """A TOML array, wrapped at about 96 characters a line."""
    lines: list[str] = []
    line = ""
    for text in (_number(float(v)) for v in values):
        piece = f"{text}, "
        if line and len(indent) + len(line) + len(piece) > 96:
            lines.append(indent + line.rstrip())
            line = ""
        line += piece
    lines.append(indent + line.rstrip().rstrip(","))
    return "[\n" + "\n".join(lines) + "\n]"


def render_block(
    fit: WorldFit,
    *,
    source: str,
    accounting: dict[str, int],
    scale: int,
    duration: str = DEFAULT_RUN,
) -> str:
    """The ``[traffic]`` block ``fit-world`` writes: settings with the estimates as comments.

    ``scale`` multiplies the log's users (the laws are per user, so they stay as fitted).
    """
    skipped = {k.removeprefix("skipped."): v for k, v in accounting.items() if v and "." in k}
    skipped_text = ", ".join(f"{v:,} {k}" for k, v in skipped.items()) or "none skipped"
    span_days = fit.traffic.span_s / 86_400.0
    level = fit.click_level
    click = (
        f"{level.rate:.4f} ({level.clicks:,} / {level.shown:,}: {level.basis})"
        if level is not None
        else "not in this log (no clicks beside other events, no click column)"
    )
    history_events = min(max(fit.events / fit.users, 1.0), 10_000.0)
    lines = [
        f"# A world fitted from {_comment_text(source)} by rollout-lab fit-world.",
        f"# Rows: {accounting.get('input_rows', fit.events):,} read, {fit.events:,} kept "
        f"({skipped_text}).",
        f"# Log: {fit.users:,} users, {fit.items:,} items, {fit.events:,} requests in "
        f"{fit.sessions:,} sessions (inactivity gap {format_duration(fit.gap_s)}) over "
        f"{span_days:.1f} days.",
        f"# Users here: {scale} x the log's.  Paste this over a scenario's [traffic] table "
        "and set duration to the run's length;",
        "# traffic.fitted replaces arrivals and session (setting them too is refused).",
        f"# Estimates: mean session length {fit.mean_session_length:.2f} requests, mean think "
        f"time {fit.mean_think_time_s:.1f} s,",
        f"#   new users {fit.new_users_per_day:.4g} a day (x {scale} here), Zipf slope of "
        f"popularity {fit.popularity_skew:.3f}, click level: {click}.",
        "[traffic]",
        'source = "synthetic"',
        f'duration = "{duration}"',
        f"users = {fit.users * scale}",
        f"items = {fit.items}",
        "# participation ratio of the log's spectrum above a taste-free world's "
        f"({fit.taste.participation:.2f}), and",
        "# the signal giving a world of that many factors the log's excess energy"
        + (
            f",\n# capped at taste variance signal^2 / factors = {MAX_TASTE_VARIANCE:g} (the log's"
            " is larger; more would cost the world the log's popularity)"
            if fit.taste.capped
            else ""
        ),
        f"latent_factors = {fit.taste.latent_factors}",
        f"taste_signal = {_number(round(fit.taste.taste_signal, 3))}",
        "# ln(count) ~ -skew ln(rank); informative: traffic.fitted.popularity is what is used",
        f"popularity_skew = {_number(round(fit.popularity_skew, 4))}",
        f"# 1 - Spearman rho of item counts, first {1 - DRIFT_SHARE:.0%} vs last {DRIFT_SHARE:.0%}"
        " of the log",
        f"popularity_drift = {_number(round(fit.popularity_drift, 4))}",
        f"# share of items first seen in the log's last {NEW_WINDOW_SHARE:.0%}",
        f"new_items = {_number(round(min(fit.new_items, 0.9), 4))}",
        "# the history models train on: the log's mean requests per user",
        f"history_events_per_user = {_number(round(history_events, 3))}",
        "",
        "[traffic.fitted]",
        f"span = {_number(fit.traffic.span_s)}  # seconds: the log's time span",
        f"session_gap = {_number(fit.gap_s)}  # seconds",
        "# requests per user over span and the same users' sessions (equally likely pairs)",
        f"activity = {_array(fit.traffic.activity.values)}",
        f"sessions = {_array(fit.traffic.sessions)}",
        "# hour-of-day weights (UTC) of users' first requests",
        f"hourly = {_array([round(h, 6) for h in fit.traffic.hourly_profile])}",
        "# ln(share of requests) of items, equally likely values",
        f"popularity = {_array(fit.traffic.popularity.values)}",
    ]
    for hours in fit.traffic.session_hours or ():
        lines += [
            "",
            "# hour-of-day weights (UTC) of users' first sessions and of sessions half a day "
            "or more after",
            "# the user's previous request, of at most max_length requests",
            "[[traffic.fitted.hourly_by_length]]",
            f"max_length = {_number(hours.max_length)}",
            f"hourly = {_array([round(h, 6) for h in hours.profile])}",
        ]
    for band in fit.traffic.bands:
        lines += [
            "",
            "[[traffic.fitted.bands]]",
            f"max_mean_length = {_number(band.max_mean_length)}",
            f"session_length = {_array(band.session_length.values)}",
            f"think_time = {_array(band.think_time_s.values)}  # seconds",
        ]
        if band.return_gap_s is not None:
            lines.append(f"return_gap = {_array(band.return_gap_s.values)}  # seconds")
    if level is not None and fit.click_offset is not None:
        lines += [
            "",
            "# Merge into the scenario's [users] table.  P(click | examined) = "
            "sigmoid(a(u, i) + click_offset + engagement_u):",
            f"# the offset at which items users consume on their own are clicked at the log's "
            f"level, {level.rate:.4f},",
            "# by users whose clicks rise with their activity by activity_engagement (the "
            "offset holds for this value only).",
            "[users]",
            f"click_offset = {_number(round(fit.click_offset, 4))}",
            f"activity_engagement = {_number(fit.activity_engagement)}",
        ]
    return "\n".join(lines) + "\n"


def check_block(block: str, *, source: str) -> None:
    """The written block must load as the scenario's ``[traffic]`` table, and its ``[users]``
    table (the click level) as ``[users]`` (a self-check: a failure is a bug of the writer,
    not of the log)."""
    try:
        tables = tomllib.loads(block)
        Traffic.model_validate(tables["traffic"])
        if "users" in tables:
            Users.model_validate(tables["users"])
    except (tomllib.TOMLDecodeError, ValidationError, KeyError) as error:
        raise InternalError(
            f"{source}: the fitted [traffic] block does not load: {error}"
        ) from None
