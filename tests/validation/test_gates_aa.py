"""Do the gates tell the truth? A/A error rates and A/B power on simulated click streams.

DESIGN section 6, rung 3. Pure numpy, no simulator: each replication is a pair of Bernoulli
click streams (one per arm) observed at ``PEEKS`` evenly spaced intervals, and the gate is
evaluated after every interval, exactly as the rollout controller does.

Setup (shared by every test):

- baseline CTR 0.05, minimum detectable effect a 10 % relative lift (0.005 absolute);
- mSPRT with α = 0.05 and τ² = MDE² (``SequentialTest.for_mde``);
- 20 peeks of 4 000 impressions per arm each: N = 80 000 impressions per arm in total.

Why N = 80 000: a fixed-horizon z-test needs about 31 400 per arm for 80 % power at this
MDE, (z₀.₉₇₅ + z₀.₈)² · (p_a q_a + p_b q_b) / δ²; the always-valid test pays for the
freedom to stop at any peek with a larger sample. At 60 000 per arm its power at the MDE
is about 0.84, at 80 000 about 0.94 (4 000-replication pilot), so 80 000 clears 0.8 with a
margin the Monte Carlo bound below can confirm.

Assertions are confidence bounds with the Monte Carlo standard error
MCSE = sqrt(r (1 − r) / R) for a rate r over R replications, never pinned digits. The
default run uses R = 200; the ``slow`` run R = 2 000.

- The gate's own error rates (the claims that matter) use α + 2 MCSE. Their true values
  sit far below α (about 0.007 per direction), so the bound is never close.
- Checks whose true rate *equals* the nominal one (a single-look z-test, a guardrail at its
  margin, SRM under the right split, interval coverage) would fail by chance for about
  one seed in 44 with a 2-MCSE bound; they use 3 MCSE (about one in 740).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from sim.stats import (
    ArmStats,
    SequentialTest,
    guardrail_worse,
    relative_lift_interval,
    srm_check,
    z_test,
)

ALPHA = 0.05
CTR = 0.05
MDE_RELATIVE = 0.10
MDE_ABS = CTR * MDE_RELATIVE
PEEKS = 20
PER_PEEK = 4_000
N_PER_ARM = PEEKS * PER_PEEK  # 80 000 impressions per arm

REPLICATIONS = [
    pytest.param(200, id="R200"),
    pytest.param(2_000, id="R2000", marks=pytest.mark.slow),
]


def mcse(rate: float, replications: int) -> float:
    """Monte Carlo standard error of a rate estimated from ``replications`` runs."""
    return math.sqrt(rate * (1.0 - rate) / replications)


@dataclass(frozen=True, slots=True)
class Streams:
    """Cumulative impressions (PEEKS,) and clicks (R, PEEKS) per arm at each peek."""

    impressions: npt.NDArray[np.int64]
    clicks_control: npt.NDArray[np.int64]
    clicks_treatment: npt.NDArray[np.int64]

    def arms(self, r: int, k: int) -> tuple[ArmStats, ArmStats]:
        """Both arms as the controller sees them: count, Σx, Σx² (= Σx for clicks)."""
        n = int(self.impressions[k])
        c = int(self.clicks_control[r, k])
        t = int(self.clicks_treatment[r, k])
        return ArmStats.from_sums(n, c, c), ArmStats.from_sums(n, t, t)


def click_streams(
    replications: int, ctr_control: float, ctr_treatment: float, *, rng: np.random.Generator
) -> Streams:
    """Vectorised: clicks per interval ~ Binomial(PER_PEEK, ctr), summed over intervals."""
    shape = (replications, PEEKS)
    control = rng.binomial(PER_PEEK, ctr_control, size=shape).cumsum(axis=1)
    treatment = rng.binomial(PER_PEEK, ctr_treatment, size=shape).cumsum(axis=1)
    impressions = PER_PEEK * np.arange(1, PEEKS + 1, dtype=np.int64)
    return Streams(impressions, control.astype(np.int64), treatment.astype(np.int64))


def msprt_decisions(streams: Streams) -> list[str]:
    """Final decision of a fresh SequentialTest per replication, updated at every peek."""
    decisions: list[str] = []
    for r in range(streams.clicks_control.shape[0]):
        test = SequentialTest.for_mde(ALPHA, MDE_ABS)
        for k in range(PEEKS):
            result = test.update(*streams.arms(r, k))
            if result.decision != "continue":
                break  # the controller stops here; the decision is final anyway
        decisions.append(test.decision)
    return decisions


def peeking_z_rejects(streams: Streams, peeks: range) -> npt.NDArray[np.bool_]:
    """Whether the naive z-test reaches p ≤ α at any of ``peeks``, per replication."""
    rejected = np.zeros(streams.clicks_control.shape[0], dtype=np.bool_)
    for r in range(rejected.shape[0]):
        rejected[r] = any(z_test(*streams.arms(r, k))[1] <= ALPHA for k in peeks)
    return rejected


@pytest.mark.parametrize("replications", REPLICATIONS)
def test_aa_msprt_error_rates_stay_below_alpha_while_peeking_z_inflates(
    replications: int,
) -> None:
    streams = click_streams(replications, CTR, CTR, rng=np.random.default_rng(20_170_813))
    decisions = msprt_decisions(streams)
    false_better = decisions.count("better") / replications
    false_worse = decisions.count("worse") / replications
    bound = ALPHA + 2.0 * mcse(ALPHA, replications)
    assert false_better <= bound, f"false 'better' rate {false_better:.4f} > {bound:.4f}"
    assert false_worse <= bound, f"false 'worse' rate {false_worse:.4f} > {bound:.4f}"
    assert false_better + false_worse <= bound

    # The same streams, judged by the naive z-test at every peek: its false-positive rate
    # is well above α (Armitage et al. 1969: about 0.25 for 20 looks), i.e. the lower
    # confidence bound of the observed rate exceeds α.
    peeking = float(peeking_z_rejects(streams, range(PEEKS)).mean())
    assert peeking - 2.0 * mcse(peeking, replications) > ALPHA, f"peeking z rate {peeking:.4f}"
    # ...while looked at once, at the planned horizon, the z-test holds its level: the
    # inflation comes from peeking, not from the test.
    once = float(peeking_z_rejects(streams, range(PEEKS - 1, PEEKS)).mean())
    assert once <= ALPHA + 3.0 * mcse(ALPHA, replications), f"single-look z rate {once:.4f}"


@pytest.mark.parametrize("replications", REPLICATIONS)
def test_ab_power_at_the_mde(replications: int) -> None:
    streams = click_streams(
        replications, CTR, CTR * (1.0 + MDE_RELATIVE), rng=np.random.default_rng(1_512_049)
    )
    decisions = msprt_decisions(streams)
    power = decisions.count("better") / replications
    wrong_sign = decisions.count("worse") / replications
    # one-sided 95 % lower confidence bound on the power
    lower = power - 1.645 * mcse(power, replications)
    assert lower >= 0.8, f"power {power:.3f} (lower bound {lower:.3f}) at N={N_PER_ARM}/arm"
    assert wrong_sign <= ALPHA / 2 + 2.0 * mcse(ALPHA / 2, replications)


@pytest.mark.parametrize("replications", REPLICATIONS)
def test_relative_lift_interval_covers_the_true_lift(replications: int) -> None:
    streams = click_streams(
        replications, CTR, CTR * (1.0 + MDE_RELATIVE), rng=np.random.default_rng(1_998)
    )
    covered = [
        relative_lift_interval(*streams.arms(r, PEEKS - 1), 0.95).contains(MDE_RELATIVE)
        for r in range(replications)
    ]
    coverage = sum(covered) / replications
    assert coverage >= 0.95 - 3.0 * mcse(0.95, replications), f"coverage {coverage:.3f}"


@pytest.mark.parametrize("replications", REPLICATIONS)
def test_guardrail_false_failure_rate_at_the_margin(replications: int) -> None:
    """Treatment exactly 3 % worse, margin 3 %: the least favourable null; rate ≤ α."""
    margin = 0.03
    streams = click_streams(
        replications, CTR, CTR * (1.0 - margin), rng=np.random.default_rng(4_100)
    )
    failed = [
        guardrail_worse(
            *streams.arms(r, PEEKS - 1),
            margin=margin,
            relative=True,
            higher_is_better=True,
            alpha=ALPHA,
            metric="ctr",
        ).worse
        for r in range(replications)
    ]
    rate = sum(failed) / replications
    assert rate <= ALPHA + 3.0 * mcse(ALPHA, replications), f"false failure rate {rate:.4f}"


@pytest.mark.parametrize("replications", REPLICATIONS)
def test_srm_false_alarm_rate_under_the_intended_split(replications: int) -> None:
    rng = np.random.default_rng(955)
    alpha = 0.05  # a large α so that R replications can see the rate at all
    users = 50_000
    canary = rng.binomial(users, 0.05, size=replications)
    alarms = [
        srm_check([users - int(c), int(c)], [0.95, 0.05], alpha=alpha).mismatch for c in canary
    ]
    rate = sum(alarms) / replications
    assert rate <= alpha + 3.0 * mcse(alpha, replications), f"false SRM rate {rate:.4f}"
