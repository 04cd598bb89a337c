"""SLOs, error budgets and burn-rate alerts against hand-worked examples (SRE workbook)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from lab.scenario import parse_scenario
from replay.errors import UserInputError
from sim.records import (
    DROPPED,
    FALLBACK,
    HIT,
    MISS,
    POPULAR,
    SERVED,
    STALE,
    Records,
)
from sim.slo import BurnAlert, Slo, alert_firings, budget_spent, burn_rate, good_requests
from tests.unit.lab.test_scenario import BASE

DAY_S = 86_400.0
PAGE = BurnAlert(long_s=3600.0, short_s=300.0, rate=14.4)


def test_burn_rate_and_budget_by_hand() -> None:
    # 99.9 %: the budget is 0.1 % of requests; 1.44 % errors burn it 14.4x as fast.
    assert burn_rate(144, 10_000, 0.999) == pytest.approx(14.4)
    assert burn_rate(0, 0, 0.999) == 0.0
    # 14.4x for one hour spends 14.4 / 720 = 2 % of a 30-day budget (the workbook's page);
    # 6x for six hours spends 5 % (its ticket).
    assert budget_spent(144, 10_000, 0.999, 3600.0, 30 * DAY_S) == pytest.approx(0.02)
    assert budget_spent(60, 10_000, 0.999, 6 * 3600.0, 30 * DAY_S) == pytest.approx(0.05)
    # Exactly on target for the whole period spends exactly the budget.
    assert budget_spent(5, 1000, 0.995, 30 * DAY_S, 30 * DAY_S) == pytest.approx(1.0)


def _outage(start_s: int, stop_s: int, end_s: int = 7200) -> tuple[np.ndarray, np.ndarray]:
    """One request per second; those arriving in ``[start_s, stop_s)`` are bad."""
    t_s = np.arange(end_s, dtype=np.float64)
    return t_s, (t_s >= start_s) & (t_s < stop_s)


def test_page_fires_after_the_long_window_sees_enough_errors() -> None:
    # A full outage from t = 3600 at 99.9 %.  At t = 3600 + k the 1 h window holds k bad of
    # 3600 (burn k / 3.6) and the 5 min window k of 300: both reach 14.4 once k >= 51.84,
    # so the page first fires at t = 3652 (k = 52).
    t_s, bad = _outage(3600, 7200)
    at = np.arange(1.0, 7201.0)
    firing = alert_firings(t_s, bad, 0.999, PAGE, at)
    assert at[firing][0] == 3652.0
    assert firing[at >= 3652.0].all()


def test_the_short_window_resets_the_alert_soon_after_the_errors_stop() -> None:
    # Errors during [3600, 4000): 400 bad keep the 1 h window above 14.4x to the end,
    # but the 5 min window falls below it (fewer than 4.32 bad of 300) once t > 4295.
    t_s, bad = _outage(3600, 4000)
    at = np.arange(1.0, 7201.0)
    firing = alert_firings(t_s, bad, 0.999, PAGE, at)
    fired_at = at[firing]
    assert (fired_at[0], fired_at[-1]) == (3652.0, 4295.0)
    assert firing.sum() == 4295 - 3652 + 1


def test_a_slow_burn_fires_the_ticket_but_never_the_page() -> None:
    # 1 % errors at 99.9 %: burn 10x, above the 6x ticket and below the 14.4x page.
    t_s = np.arange(8 * 3600, dtype=np.float64)
    bad = (np.arange(t_s.size) % 100) == 0
    at = np.arange(600.0, 8 * 3600 + 1.0, 600.0)
    ticket = BurnAlert(long_s=6 * 3600.0, short_s=1800.0, rate=6.0)
    assert not alert_firings(t_s, bad, 0.999, PAGE, at).any()
    assert alert_firings(t_s, bad, 0.999, ticket, at).any()


def test_good_requests_by_kind() -> None:
    rec = Records(6)
    rec.result[:] = [SERVED, SERVED, FALLBACK, FALLBACK, DROPPED, SERVED]
    rec.served_by[:] = [0, 1, 0, POPULAR, -2, 1]
    rec.cache[:] = [MISS, HIT, MISS, MISS, MISS, STALE]
    rec.latency_ms[:] = [50.0, 1.0, 180.0, 150.0, 150.0, 1.0]
    latency = Slo("fast", "latency", 0.99, 30 * DAY_S, threshold_ms=100.0)
    model = Slo("model", "availability", 0.999, 30 * DAY_S)
    assert good_requests(latency, rec).tolist() == [True, True, False, False, False, True]
    # A baseline fallback is a model's answer; the popularity list, a stale list and
    # nothing at all are not.
    assert good_requests(model, rec).tolist() == [True, True, True, False, False, False]


def _slo_error(slo: dict[str, object]) -> str:
    data = copy.deepcopy(BASE)
    data["slos"] = [slo]
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    return str(info.value)


def test_slo_settings_mistakes_are_one_line() -> None:
    assert _slo_error({"name": "a", "kind": "availability", "target": 1.0}) == (
        "s.toml: slos[0].target must be in (0, 1), got 1.0"
    )
    assert _slo_error({"name": "a", "kind": "availability", "target": 0}) == (
        "s.toml: slos[0].target must be in (0, 1), got 0"
    )
    assert (
        _slo_error(
            {
                "name": "a",
                "kind": "availability",
                "target": 0.999,
                "alerts": [{"long": "5m", "short": "1h", "burn_rate": 14.4}],
            }
        )
        == "s.toml: slos[0].alerts[0].short must be shorter than long (5m), got '1h'"
    )
    assert _slo_error({"name": "a", "kind": "latency", "target": 0.99}) == (
        "s.toml: slos[0].threshold_ms must be set for a latency SLO, got None"
    )
    assert (
        _slo_error(
            {
                "name": "a",
                "kind": "availability",
                "target": 0.99,
                "period": "1d",
                "alerts": [{"long": "2d", "short": "1h", "burn_rate": 2}],
            }
        )
        == "s.toml: slos[0].alerts[0].long must be at most the SLO's period (1d), got '2d'"
    )


def test_a_guardrail_may_bound_a_declared_slos_burn_rate() -> None:
    data = copy.deepcopy(BASE)
    data["slos"] = [{"name": "fast", "kind": "latency", "target": 0.995, "threshold_ms": 100}]
    data["rollout"] = {
        "analysis": {"interval": "5m"},
        "guardrails": [{"metric": "slo.fast.burn_rate", "max": 14.4}],
    }
    scenario = parse_scenario(copy.deepcopy(data), source="s.toml")
    assert scenario.rollout.guardrails[0].metric == "slo.fast.burn_rate"
    data["rollout"]["guardrails"][0]["metric"] = "slo.slow.burn_rate"
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    assert str(info.value) == (
        "s.toml: rollout.guardrails[0].metric must name a declared SLO ([[slos]]: fast), "
        "got 'slo.slow.burn_rate'"
    )
