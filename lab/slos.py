"""A scenario's ``[[slos]]`` as the simulator's SLO plans (``sim.slo``)."""

from __future__ import annotations

from lab.scenario import SloSettings
from sim.slo import BurnAlert, Slo

__all__ = ["slo_plan"]


def slo_plan(settings: SloSettings) -> Slo:
    return Slo(
        name=settings.name,
        kind=settings.kind,
        target=settings.target,
        period_s=settings.period,
        threshold_ms=settings.threshold_ms or 0.0,
        alerts=tuple(BurnAlert(a.long, a.short, a.burn_rate) for a in settings.alerts),
    )
