"""Do the model servers queue the way queueing theory says? (DESIGN section 6, rung 1.)

The engine is driven directly with hand-built plans: Poisson arrivals generated here, one
version with ``c`` slots and exponential service (mean 10 ms, mu = 100 /s per slot), no
cache, no fallback, and a controller that keeps all traffic on the baseline and never wakes
up.  That is an M/M/c FCFS queue, for which:

- Erlang C: an arrival waits with probability
  C(c, a) = [a^c / c! * c / (c - a)] / [sum_{k<c} a^k / k! + a^c / c! * c / (c - a)],
  a = lambda / mu, and the mean wait in queue is Wq = C(c, a) / (c mu - lambda);
- M/M/1 (c = 1, C = rho): mean sojourn W = 1 / (mu - lambda);
- Little's law: the time-average number in system L equals lambda * W, with
  W = Wq + 1 / mu.

Method: R independent replications (distinct ``SeedSequence`` children for arrivals and for
service times), each starting empty; the first ``warmup`` customers are discarded so the
start-up transient (a few relaxation times, about 1 / (c mu (1 - sqrt(rho))^2)) does not bias
the estimate.  One number per replication (a mean over its customers), then a 99 % Student t
interval over the R replication means.  Each test asserts that theory lies inside the
interval *and* that the interval is narrow (a relative half-width bound per case), so a
uselessly wide interval cannot pass.  Seeds are fixed: the run is deterministic.

L is measured from the records alone: departure = arrival + latency, and
L = (1 / (b - a)) * sum_i |[arrival_i, departure_i] intersect [a, b]| over the window
[a, b] from the first post-warm-up arrival to the last arrival.  Two checks: L against
lambda * W from theory, and the sample-path identity L - lambda_hat * W_hat whose expectation
is 0 in steady state (edge effects at a and b cancel in expectation).

Timeout: 5 s, thousands of mean waits away (the wait tail decays like exp(-(c mu - lambda) t),
so P(wait > 5 s) < exp(-100) in every case here); the tests assert that nothing timed out.  A
finite timeout keeps the engine's per-request deadline timers from piling up in the event
heap for the whole run, which halves the run time without changing any result.

Default run: reduced replications and run lengths (the whole file runs in well under a minute);
the ``slow`` set repeats every case with many more customers and replications.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from sim.records import NO_FAILURE, SERVED
from tests.helpers_engine import make_plan, poisson_times, run_plan, version

SERVICE_MEAN_MS = 10.0
MU_PER_S = 1000.0 / SERVICE_MEAN_MS
TIMEOUT_S = 5.0
LEVEL = 0.99


# --- theory -------------------------------------------------------------------------------


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue, ``a = lambda / mu < c``."""
    if not 0.0 <= offered_load < servers:
        raise ValueError(f"offered load {offered_load} must be in [0, {servers})")
    term, below = 1.0, 0.0  # term = a^k / k!
    for k in range(servers):
        below += term
        term *= offered_load / (k + 1)
    top = term * servers / (servers - offered_load)
    return top / (below + top)


def mmc_wait_s(servers: int, rate_per_s: float, mu_per_s: float) -> float:
    """Mean wait in queue Wq = C(c, a) / (c mu - lambda), seconds."""
    return erlang_c(servers, rate_per_s / mu_per_s) / (servers * mu_per_s - rate_per_s)


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(mean, half-width) of the Student t interval over replication values."""
    r = int(values.shape[0])
    half = stats.t.ppf(0.5 + level / 2.0, r - 1) * values.std(ddof=1) / math.sqrt(r)
    return float(values.mean()), float(half)


# --- replications ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    servers: int
    rho: float
    customers: int
    warmup: int
    replications: int
    max_relative_half_width: float
    seed: int

    @property
    def rate_per_s(self) -> float:
        return self.rho * self.servers * MU_PER_S

    @property
    def wait_theory_ms(self) -> float:
        return 1000.0 * mmc_wait_s(self.servers, self.rate_per_s, MU_PER_S)

    @property
    def sojourn_theory_ms(self) -> float:
        return self.wait_theory_ms + SERVICE_MEAN_MS

    @property
    def number_theory(self) -> float:
        return self.rate_per_s * self.sojourn_theory_ms / 1000.0


@dataclass(frozen=True)
class Replicated:
    """One value per replication (post-warm-up customers only)."""

    wait_ms: np.ndarray  # mean wait in queue
    sojourn_ms: np.ndarray  # mean latency (wait + service)
    number_in_system: np.ndarray  # time-average L over the window
    little_gap: np.ndarray  # L - lambda_hat * W_hat


@functools.cache
def replicate(case: Case) -> Replicated:
    waits, sojourns, numbers, gaps = [], [], [], []
    for r in range(case.replications):
        arrivals_seed, service_seed = np.random.SeedSequence(case.seed, spawn_key=(r,)).spawn(2)
        t_s = poisson_times(
            case.rate_per_s, case.customers, rng=np.random.default_rng(arrivals_seed)
        )
        plan = make_plan(
            t_s,
            versions=[version("baseline", mean_ms=SERVICE_MEAN_MS, servers=case.servers)],
            timeout_s=TIMEOUT_S,
        )
        rec = run_plan(plan, seed=service_seed).records
        # Every customer was served by its own server with no timeout: a plain M/M/c run.
        assert (rec.result == SERVED).all()
        assert (rec.failure == NO_FAILURE).all()
        assert (rec.wait_ms <= rec.latency_ms).all()

        w = case.warmup
        wait = rec.wait_ms[w:].astype(np.float64)
        latency = rec.latency_ms.astype(np.float64)
        waits.append(wait.mean())
        sojourns.append(latency[w:].mean())

        departure_s = t_s + latency / 1000.0
        a, b = t_s[w], t_s[-1]
        overlap = np.minimum(departure_s, b) - np.maximum(t_s, a)
        number = np.clip(overlap, 0.0, None).sum() / (b - a)
        inside = slice(w + 1, None)  # arrivals in (a, b]
        rate_hat = (case.customers - w - 1) / (b - a)
        numbers.append(number)
        gaps.append(number - rate_hat * latency[inside].mean() / 1000.0)
    return Replicated(np.array(waits), np.array(sojourns), np.array(numbers), np.array(gaps))


def _case(
    servers: int, rho: float, n: int, warmup: int, r: int, rel: float, *, slow: bool
) -> object:
    seed = 20_000 + 100 * servers + round(100 * rho) if slow else round(1000 * rho) + servers
    case = Case(servers, rho, n, warmup, r, rel, seed=seed)
    tag = f"c{servers}-rho{rho:g}-{'full' if slow else 'reduced'}"
    return pytest.param(case, id=tag, marks=pytest.mark.slow if slow else ())


# Relative half-width bounds sit about 1.5-2x above the half-widths these runs give (pilot
# runs with other seeds), so they catch a broken, much noisier queue without failing on
# ordinary sampling variation.  rho = 0.95 by default is a reduced check: its interval is
# wide (about +-25 %) because the queue relaxes slowly; the slow set pins it to a few percent.
MMC_CASES = [
    _case(4, 0.5, 20_000, 2_000, 10, 0.15, slow=False),
    _case(8, 0.8, 30_000, 3_000, 10, 0.15, slow=False),
    _case(8, 0.95, 60_000, 10_000, 8, 0.40, slow=False),
    _case(8, 0.5, 200_000, 5_000, 20, 0.10, slow=True),
    _case(4, 0.8, 200_000, 5_000, 20, 0.06, slow=True),
    _case(8, 0.8, 200_000, 5_000, 20, 0.06, slow=True),
    _case(8, 0.95, 500_000, 50_000, 20, 0.08, slow=True),
]
MM1_CASES = [
    _case(1, 0.5, 20_000, 2_000, 10, 0.05, slow=False),
    _case(1, 0.8, 20_000, 2_000, 10, 0.08, slow=False),
    _case(1, 0.5, 200_000, 5_000, 20, 0.03, slow=True),
    _case(1, 0.8, 200_000, 5_000, 20, 0.06, slow=True),
    _case(1, 0.95, 500_000, 50_000, 20, 0.15, slow=True),
]


# --- tests ----------------------------------------------------------------------------------


def test_erlang_c_reduces_to_rho_for_one_server() -> None:
    # With c = 1 an arrival waits exactly when the server is busy: C(1, rho) = rho.
    for rho in (0.1, 0.5, 0.95):
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)
    assert mmc_wait_s(1, 80.0, 100.0) == pytest.approx(0.8 / 20.0, rel=1e-12)


@pytest.mark.parametrize("case", MMC_CASES)
def test_mmc_mean_wait_matches_erlang_c(case: Case) -> None:
    mean, half = t_interval(replicate(case).wait_ms)
    theory = case.wait_theory_ms
    assert abs(mean - theory) <= half, (
        f"M/M/{case.servers} rho={case.rho}: Wq theory {theory:.4f} ms outside "
        f"{mean:.4f} +- {half:.4f} ms"
    )
    assert half <= case.max_relative_half_width * theory, f"interval too wide: +-{half:.4f} ms"


@pytest.mark.parametrize("case", MM1_CASES)
def test_mm1_mean_sojourn_is_one_over_mu_minus_lambda(case: Case) -> None:
    mean, half = t_interval(replicate(case).sojourn_ms)
    theory = 1000.0 / (MU_PER_S - case.rate_per_s)
    assert theory == pytest.approx(case.sojourn_theory_ms, rel=1e-12)
    assert abs(mean - theory) <= half, (
        f"M/M/1 rho={case.rho}: W theory {theory:.4f} ms outside {mean:.4f} +- {half:.4f} ms"
    )
    assert half <= case.max_relative_half_width * theory, f"interval too wide: +-{half:.4f} ms"


@pytest.mark.parametrize("case", MMC_CASES + MM1_CASES)
def test_littles_law(case: Case) -> None:
    runs = replicate(case)
    mean, half = t_interval(runs.number_in_system)
    theory = case.number_theory
    assert abs(mean - theory) <= half, (
        f"M/M/{case.servers} rho={case.rho}: L theory {theory:.4f} outside {mean:.4f} +- {half:.4f}"
    )
    assert half <= case.max_relative_half_width * theory
    # The sample-path identity: far tighter than the theory check, and centred on zero.
    gap, gap_half = t_interval(runs.little_gap)
    assert abs(gap) <= gap_half, f"L - lambda W = {gap:.5f} +- {gap_half:.5f}"
    assert gap_half <= 0.01 * theory
