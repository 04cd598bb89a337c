"""Stages in tandem against the Jackson-network formula (DESIGN section 6, rung 1).

A version whose serving path is a chain of stations, each ``c_k`` servers with exponential
service of rate ``mu_k``, fed by Poisson arrivals of rate ``lambda`` (no cache, no timeout in
practice, no degradation): an open Jackson network in tandem.  By Jackson's theorem (with
Burke's output theorem for the tandem) each station behaves in steady state as an
independent M/M/c_k queue with arrival rate ``lambda``, so

    mean sojourn in station k   W_k = C(c_k, lambda / mu_k) / (c_k mu_k - lambda) + 1 / mu_k
    mean end-to-end sojourn     W   = sum_k W_k

(Erlang C as in ``test_queueing``).  Method as there: R replications with independent seed
children, the first ``warmup`` customers of each dropped, one mean per replication, a 99 %
Student t interval over replications that must hold the theory and be narrow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from sim.engine import VersionPlan
from sim.records import NO_FAILURE, SERVED
from sim.servers import ServiceTime
from sim.stages import StagePlan
from tests.helpers_engine import make_plan, poisson_times, run_plan
from tests.validation.test_queueing import mmc_wait_s, t_interval

TIMEOUT_S = 5.0  # thousands of mean sojourns: never reached (asserted)


@dataclass(frozen=True)
class Tandem:
    stations: tuple[tuple[int, float], ...]  # (servers, mean service ms) per station
    rate_per_s: float
    customers: int
    warmup: int
    replications: int
    max_relative_half_width: float
    seed: int

    def station_sojourn_ms(self, k: int) -> float:
        servers, mean_ms = self.stations[k]
        mu = 1000.0 / mean_ms
        return 1000.0 * mmc_wait_s(servers, self.rate_per_s, mu) + mean_ms

    @property
    def sojourn_theory_ms(self) -> float:
        return sum(self.station_sojourn_ms(k) for k in range(len(self.stations)))

    def plan_version(self) -> VersionPlan:
        stages = tuple(
            StagePlan(
                name=f"s{k}",
                service=ServiceTime("exponential", mean_ms=mean_ms),
                replicas=servers,
                concurrency=1,
            )
            for k, (servers, mean_ms) in enumerate(self.stations)
        )
        # The one-pool settings are unused when a path has stages.
        return VersionPlan(
            name="baseline",
            service=ServiceTime("exponential", mean_ms=1.0),
            replicas=1,
            concurrency=1,
            stages=stages,
        )


@dataclass(frozen=True)
class Replicated:
    sojourn_ms: np.ndarray  # [R] end-to-end mean sojourn
    station_ms: np.ndarray  # [R, stations] mean sojourn per station


@functools.cache
def replicate(case: Tandem) -> Replicated:
    totals, stations = [], []
    for r in range(case.replications):
        arrivals_seed, service_seed = np.random.SeedSequence(case.seed, spawn_key=(r,)).spawn(2)
        t_s = poisson_times(
            case.rate_per_s, case.customers, rng=np.random.default_rng(arrivals_seed)
        )
        plan = make_plan(t_s, versions=[case.plan_version()], timeout_s=TIMEOUT_S)
        outcome = run_plan(plan, seed=service_seed)
        rec = outcome.records
        assert (rec.result == SERVED).all()
        assert (rec.failure == NO_FAILURE).all()
        assert (rec.degraded == -1).all()
        totals.append(rec.latency_ms[case.warmup :].astype(np.float64).mean())
        # Per station: completions in order of departure, the first ``warmup`` dropped.
        stations.append([np.mean(c.sojourn_ms[case.warmup :]) for c in outcome.stages[0]])
    return Replicated(np.array(totals), np.array(stations))


def _case(
    stations: tuple[tuple[int, float], ...],
    rate: float,
    n: int,
    warmup: int,
    r: int,
    rel: float,
    *,
    seed: int,
    slow: bool,
) -> object:
    case = Tandem(stations, rate, n, warmup, r, rel, seed)
    tag = f"{len(stations)}stations-lambda{rate:g}-{'full' if slow else 'reduced'}"
    return pytest.param(case, id=tag, marks=pytest.mark.slow if slow else ())


# rho per station: 0.6, 0.5625, 0.45 (three stations) and 0.8, 0.75 (two).
_THREE = ((2, 8.0), (4, 15.0), (1, 3.0))
_TWO = ((1, 8.0), (3, 22.5))
CASES = [
    _case(_THREE, 150.0, 20_000, 2_000, 10, 0.05, seed=31, slow=False),
    _case(_TWO, 100.0, 20_000, 2_000, 10, 0.10, seed=32, slow=False),
    _case(_THREE, 150.0, 200_000, 5_000, 20, 0.02, seed=41, slow=True),
    _case(_TWO, 100.0, 200_000, 5_000, 20, 0.04, seed=42, slow=True),
]


def test_jackson_formula_by_hand() -> None:
    # Two M/M/1 stations, lambda = 50 /s, mu = 100 and 200 /s: W = 1/50 + 1/150 s.
    case = Tandem(((1, 10.0), (1, 5.0)), 50.0, 1, 0, 2, 1.0, 0)
    assert case.sojourn_theory_ms == pytest.approx(1000.0 / 50 + 1000.0 / 150, rel=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_tandem_mean_sojourn_is_the_sum_of_mmc_sojourns(case: Tandem) -> None:
    mean, half = t_interval(replicate(case).sojourn_ms)
    theory = case.sojourn_theory_ms
    assert abs(mean - theory) <= half, (
        f"tandem W theory {theory:.4f} ms outside {mean:.4f} +- {half:.4f} ms"
    )
    assert half <= case.max_relative_half_width * theory, f"interval too wide: +-{half:.4f} ms"


@pytest.mark.parametrize("case", CASES)
def test_each_station_behaves_as_its_own_mmc_queue(case: Tandem) -> None:
    per_station = replicate(case).station_ms
    for k in range(len(case.stations)):
        mean, half = t_interval(per_station[:, k])
        theory = case.station_sojourn_ms(k)
        assert abs(mean - theory) <= half, (
            f"station {k}: W_k theory {theory:.4f} ms outside {mean:.4f} +- {half:.4f} ms"
        )
        assert half <= 2 * case.max_relative_half_width * theory
