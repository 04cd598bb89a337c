"""Every sentence that judges a number, generated from the number in one place.

Reports, the console and decision reasons all say things like "significantly worse",
"1 of 3 expectations fails", "2 successful analyses in a row" or a drift status of "alert".
Written inline, such words drift away from the numbers they describe (an interval that
excludes 0 called "not significant", "1 successful analyses").  Here each judgement is a
pure function of its numbers, tested against a table of cases
(``tests/unit/sim/test_wording.py``):

* counts with their noun and verb: :func:`count_noun`, :func:`expectations_headline`,
  :func:`success_streak`, :func:`tally`;
* where a 95 % interval of a difference lies against 0: :func:`interval_side`,
  :func:`difference_verdict`, :func:`comparison_phrase`;
* p-values that never print as 0: :func:`p_value_text`;
* drift: :func:`drift_status` from PSI against its alert threshold and the KS p-value;
* latency against its budget: :func:`budget_phrase`; guardrails: :func:`guardrail_verdict`,
  :func:`guardrail_breach`;
* calibration warnings: :func:`calibration_warnings`;
* a seed-noise floor too low to compare against: :func:`noise_floor_warning`;
* fairness: a group's exposure share between versions, :func:`share_change`; the worst user
  group after correcting for the number of groups, :func:`group_harm`.
* the serving topology: degraded answers :func:`degraded_share`, an SLO against its target
  :func:`slo_verdict`, error budget burnt :func:`budget_burnt`, burn-rate alerts
  :func:`alerts_fired`, memory on the nodes :func:`memory_verdict`;
* the rollout's decision for a reader: :func:`decision_verdict`, :func:`decision_action`,
  the gate's state :func:`gate_state`, a duration :func:`about_duration` and the projected
  time to decision :func:`projected_time`.

Unknown numbers (``None`` or NaN) never produce a judgement: they say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "IntervalSide",
    "about_duration",
    "alerts_fired",
    "budget_burnt",
    "budget_phrase",
    "calibration_warnings",
    "comparison_phrase",
    "count_noun",
    "decision_action",
    "decision_verdict",
    "degraded_share",
    "difference_verdict",
    "drift_status",
    "expectations_headline",
    "gate_state",
    "group_harm",
    "guardrail_breach",
    "guardrail_verdict",
    "interval_side",
    "memory_verdict",
    "noise_floor_warning",
    "p_value_text",
    "projected_time",
    "share_change",
    "slo_verdict",
    "success_streak",
    "tally",
]

IntervalSide = Literal["above", "below", "includes", "unknown"]

# Nouns whose plural is not the singular + "s".
_PLURALS = {"analysis": "analyses"}


def _known(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def count_noun(n: int, singular: str, plural: str | None = None) -> str:
    """``"1 analysis"``, ``"2 analyses"``, ``"0 expectations"``; thousands separated."""
    many = plural or _PLURALS.get(singular, singular + "s")
    return f"{n:,} {singular if n == 1 else many}"


def expectations_headline(failed: int, total: int) -> str:
    """The verdict banner: how many of the scenario's expectations pass or fail.

    ``failed`` of ``total`` (``0 <= failed <= total``, ``total >= 1``); the subject of "1 of
    3 expectations fails" is "1", so its verb is singular.
    """
    if total < 1 or not 0 <= failed <= total:
        raise ValueError(f"need 0 <= failed <= total and total >= 1, got {failed} of {total}")
    if failed == 0:
        return "The expectation passes" if total == 1 else f"All {total:,} expectations pass"
    if total == 1:
        return "The expectation fails"
    if failed == total:
        return f"All {total:,} expectations fail"
    verb = "fails" if failed == 1 else "fail"
    return f"{failed:,} of {total:,} expectations {verb}"


def success_streak(n: int) -> str:
    """The promotion reason of a gated canary: ``"1 successful analysis in a row"``."""
    return f"{count_noun(n, 'successful analysis', 'successful analyses')} in a row"


def tally(counts: Iterable[tuple[str, int]]) -> str:
    """``[("pass", 3), ("fail", 1)]`` -> ``"3 pass, 1 fail"`` (zero counts left out)."""
    return ", ".join(f"{n:,} {label}" for label, n in counts if n)


def interval_side(low: float | None, high: float | None) -> IntervalSide:
    """Where an interval of a difference lies against 0 (a bound exactly 0 includes 0)."""
    if not (_known(low) and _known(high)):
        return "unknown"
    assert low is not None and high is not None
    if low > 0:
        return "above"
    if high < 0:
        return "below"
    return "includes"


def difference_verdict(
    low: float | None, high: float | None, *, higher_is_better: bool = True
) -> str:
    """Judge a 95 % interval of (candidate − baseline).

    Above 0 is "significantly better" when higher is better, "significantly worse" when
    lower is better, and the other way round below 0; an interval reaching 0 is "not
    significant"; without an interval, "no interval".
    """
    side = interval_side(low, high)
    if side == "unknown":
        return "no interval"
    if side == "includes":
        return "not significant (95% CI includes 0)"
    good = (side == "above") == higher_is_better
    where = "above" if side == "above" else "below"
    return f"significantly {'better' if good else 'worse'} (95% CI {where} 0)"


def comparison_phrase(low: float | None, high: float | None, other: str) -> str:
    """``"higher than the baseline's"`` / ``"lower than ..."`` / ``"not distinguishable from
    ..."`` for a 95 % interval of a difference against ``other``."""
    side = interval_side(low, high)
    if side == "above":
        return f"higher than {other}"
    if side == "below":
        return f"lower than {other}"
    if side == "includes":
        return f"not distinguishable from {other}"
    return f"not comparable with {other} (no interval)"


def p_value_text(p: float | None, *, floor: float = 1e-4) -> str:
    """A p-value for people: ``"0.032"``, ``"< 0.0001"`` (never ``"0"``), ``"–"`` if unknown."""
    if not _known(p):
        return "–"
    assert p is not None
    if p < floor:
        return f"< {floor:g}"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip(".")


def drift_status(
    psi: float | None,
    threshold: float,
    ks_p_value: float | None,
    *,
    ks_alpha: float = 0.01,
) -> str:
    """Status of one drift comparison: the size (PSI) decides, the test (KS) qualifies.

    * ``"alert"``: PSI > ``threshold`` (a shift large enough to act on);
    * ``"small shift"``: PSI ≤ threshold but KS p < ``ks_alpha``: the distributions differ
      detectably, by less than the alert size (with many samples KS flags tiny shifts);
    * ``"ok"``: PSI ≤ threshold and KS finds no shift;
    * ``"not measured"``: no PSI.
    """
    if not _known(psi):
        return "not measured"
    assert psi is not None
    if psi > threshold:
        return "alert"
    if _known(ks_p_value) and ks_p_value is not None and ks_p_value < ks_alpha:
        return "small shift"
    return "ok"


def calibration_warnings(
    slope: float | None,
    prediction_span: float | None,
    bin_width: float,
    *,
    requests: int,
    slope_ci95: tuple[float | None, float | None] = (None, None),
    max_slope_ci_width: float | None = None,
    slope_effective_users: float | None = None,
    min_effective_users: float = 0.0,
) -> list[str]:
    """Warnings about a calibration block, empty when there is nothing to warn about.

    * slope not measured (``max_slope_ci_width`` given, ``slope`` None): it rests on fewer
      than ``min_effective_users`` users (``slope_effective_users``), or its 95 % interval
      ``slope_ci95`` is wider than ``max_slope_ci_width`` or unknown;
    * slope ≤ 0: predictions rank requests the wrong way round (higher predicted, fewer
      clicks): ECE can still look small, since it only compares bin means;
    * predictions spanning less than one equal-width bin (max − min < ``bin_width``): every
      prediction falls in one or two bins, so the equal-width ECE measures the overall mean
      only (read the equal-mass ECE and the slope instead).
    """
    out: list[str] = []
    if requests == 0:
        return out
    if max_slope_ci_width is not None and not _known(slope):
        low, high = slope_ci95
        if (
            _known(slope_effective_users)
            and slope_effective_users is not None
            and (slope_effective_users < min_effective_users)
        ):
            reason = (
                f"its information rests on {slope_effective_users:.1f} users (fewer than "
                f"{min_effective_users:g}), whose differing predictions hold all its spread"
            )
        elif _known(low) and _known(high):
            reason = (
                f"its 95 % interval [{low:.2f}, {high:.2f}] is wider than {max_slope_ci_width:g}"
            )
        else:
            reason = f"its 95 % interval is unknown, not within {max_slope_ci_width:g}"
        out.append(
            f"calibration slope not measured: {reason} (too few users, or predictions too "
            "alike, to tell a calibrated slope of 1 from noise)"
        )
    if _known(slope) and slope is not None and slope <= 0:
        out.append(
            f"calibration slope {slope:.3g} <= 0: higher predictions get fewer clicks "
            "(the predictions rank requests the wrong way round)"
        )
    if _known(prediction_span) and prediction_span is not None and prediction_span < bin_width:
        out.append(
            f"predictions span {prediction_span:.3g}, less than one equal-width bin "
            f"({bin_width:.3g}): the equal-width ECE only compares the overall means; read "
            "the equal-mass ECE and the slope"
        )
    return out


#: Below this mean Jaccard@K of the baseline against itself retrained with another seed, its
#: lists are more training noise than model: most of a top-K changes with the seed alone.
NOISE_FLOOR_WARN_BELOW = 0.5


def noise_floor_warning(jaccard_at_k: float | None, k: int) -> str | None:
    """A warning when retraining the baseline with another seed keeps less than half of its
    top-K (mean Jaccard@K < :data:`NOISE_FLOOR_WARN_BELOW`), else ``None``."""
    if not _known(jaccard_at_k) or jaccard_at_k is None:
        return None
    if jaccard_at_k >= NOISE_FLOOR_WARN_BELOW:
        return None
    return (
        f"retraining the baseline with another seed keeps only {100 * jaccard_at_k:.0f}% of "
        f"its top-{k} (Jaccard@{k}): its lists are mostly training noise, so stability "
        "against this floor says little (a model with more factors than the data support, "
        "too few interactions per user, or a world with little personal signal)"
    )


def budget_phrase(p99_ms: dict[str, float | None], budget_ms: float) -> str:
    """``"within budget"`` or ``"over budget: a, b"`` (the versions whose p99 exceeds it;
    a p99 exactly at the budget is within it)."""
    over = [
        name for name, p99 in p99_ms.items() if _known(p99) and p99 is not None and p99 > budget_ms
    ]
    return f"over budget: {', '.join(over)}" if over else "within budget"


def _share(fraction: float) -> str:
    """A share as a percentage: two significant figures below 10 % (``0.0009%``,
    ``0.35%``), whole percents above (``36%``, ``250%``)."""
    percent = 100 * fraction
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def degraded_share(degraded: int, answers: int) -> str:
    """``"no answer degraded"`` or ``"1,813 of 5,088 answers degraded (36%)"``."""
    if degraded <= 0:
        return "no answer degraded"
    noun = "answer" if answers == 1 else "answers"
    return f"{degraded:,} of {answers:,} {noun} degraded ({_share(degraded / max(answers, 1))})"


def slo_verdict(compliance: float | None, target: float) -> str:
    """An SLO's compliance against its target (a share of good requests, 0–1); compliance
    exactly at the target meets it."""
    if not _known(compliance) or compliance is None:
        return "not measured (no requests)"
    word = "meets" if compliance >= target else "misses"
    return f"{word} its target ({100 * compliance:.3f}% good against {100 * target:g}%)"


def budget_burnt(spent: float | None, span: str) -> str:
    """How much of an SLO's error budget ``span`` burnt; ``spent`` is the share (0–1) of the
    compliance period's budget, so 1 or more exhausts it."""
    if not _known(spent) or spent is None:
        return f"error budget burnt in {span} not measured"
    if spent <= 0:
        return f"no error budget burnt in {span}"
    if spent >= 1:
        return f"error budget exhausted in {span} ({_share(spent)} of it burnt)"
    return f"{_share(spent)} of the error budget burnt in {span}"


def alerts_fired(fired: int, rules: int) -> str:
    """The burn-rate alert rules of an SLO that fired at least once."""
    if rules <= 0:
        return "no burn-rate alert rule"
    if fired <= 0:
        return f"no burn-rate alert fired ({count_noun(rules, 'rule')})"
    if fired == rules:
        return "the burn-rate alert fired" if rules == 1 else f"all {rules} burn-rate alerts fired"
    return f"{fired} of {rules} burn-rate alerts fired"


def memory_verdict(peak_gb: float | None, node_gb: float, oom_kills: int) -> str:
    """Memory on the fullest node against its capacity, and the replicas the out-of-memory
    killer stopped (a replica starting where it does not fit)."""
    peak = "–" if not _known(peak_gb) or peak_gb is None else f"{peak_gb:.3g}"
    held = f"the fullest node peaked at {peak} of {node_gb:g} GB"
    if oom_kills <= 0:
        return f"no OOM kill; {held}"
    kills = count_noun(oom_kills, "OOM kill")
    return f"{kills}: a replica found no room on its node ({held})"


def guardrail_verdict(
    *, worse: bool, beyond: bool, side: str, limit_text: str, alpha: float
) -> str:
    """Where a guardrail's observed delta lies against its limit.

    ``worse``: the one-sided test found harm beyond the margin (``"below −3.0%"``);
    ``beyond`` without ``worse``: the point estimate is past the limit but the test does not
    reject (``"below −3.0%, not significant at alpha=0.05"``); otherwise ``"within −3.0%"``.
    """
    if worse:
        return f"{side} {limit_text}"
    if beyond:
        return f"{side} {limit_text}, not significant at alpha={alpha:g}"
    return f"within {limit_text}"


def share_change(low: float | None, high: float | None) -> str:
    """Judge a 95 % interval of a group's exposure share, candidate − baseline."""
    side = interval_side(low, high)
    if side == "unknown":
        return "no interval"
    if side == "includes":
        return "no significant change (95% CI includes 0)"
    return f"significantly {'more' if side == 'above' else 'less'} exposure (95% CI {side} 0)"


def group_harm(low: float | None, high: float | None, groups: int) -> str:
    """Judge the worst user group's candidate − baseline difference by its interval
    corrected for the ``groups`` compared (Bonferroni), so that looking at many groups does
    not find harm by chance."""
    side = interval_side(low, high)
    compared = count_noun(groups, "group")
    if side == "unknown":
        return "no interval"
    if side == "includes":
        return f"not significant after correcting for {compared} (interval includes 0)"
    word = "worse" if side == "below" else "better"
    return f"significantly {word} even after correcting for {compared} (interval {side} 0)"


# --- the decision a reader should take ---------------------------------------------------------

#: Outcome -> (verdict headline, CSS class of the decision box).
_VERDICTS = {
    "promoted": ("Promoted", "pass"),
    "rolled_back": ("Rolled back", "fail"),
    "held": ("Held after failed analyses", "fail"),
    "inconclusive": ("Paused: inconclusive", "neutral"),
    "in_progress": ("Undecided", "neutral"),
    "superseded": ("Superseded by the next release", "neutral"),
}


def decision_verdict(outcome: str) -> tuple[str, str]:
    """``(headline, tone)`` of a rollout outcome; tone is ``pass``, ``fail`` or ``neutral``."""
    return _VERDICTS.get(outcome, (outcome.replace("_", " ").capitalize(), "neutral"))


def about_duration(seconds: float | None) -> str:
    """``"about 40 min"``, ``"about 5 h"``, ``"about 2.5 d"``: two significant figures at
    most, for a projection whose precision is a few percent; ``"–"`` when unknown."""
    if not _known(seconds) or seconds is None or seconds < 0:
        return "–"
    if seconds < 90 * 60:
        value, unit = seconds / 60.0, "min"
    elif seconds < 48 * 3600:
        value, unit = seconds / 3600.0, "h"
    else:
        value, unit = seconds / 86400.0, "d"
    shown = f"{value:.0f}" if value >= 10 else f"{value:.2g}"
    return f"about {shown} {unit}"


def projected_time(
    weight: float,
    median_s: float | None,
    effect_relative: float,
    decided_share: float,
    horizon_s: float,
) -> str:
    """One clause of the projected time to decision at ``weight`` %: ``"at 10 % weight the
    gate needs about 5 h to detect a 5 % lift"``; when fewer than half of the simulated paths
    decide within the horizon, says that it would most likely not decide within it."""
    lift = f"{100 * effect_relative:.3g} % lift"
    if median_s is None:
        return (
            f"at {weight:g} % weight the gate would most likely not detect a {lift} within "
            f"{about_duration(horizon_s).removeprefix('about ')} (it does in "
            f"{100 * decided_share:.0f} % of simulated runs)"
        )
    return f"at {weight:g} % weight the gate needs {about_duration(median_s)} to detect a {lift}"


def gate_state(p_value: float | None, alpha: float, analyses: int) -> str:
    """Why an undecided gate has not decided: ``"after 12 analyses the always-valid p-value
    is 0.41, above alpha = 0.05"``."""
    if not _known(p_value) or p_value is None:
        return f"after {count_noun(analyses, 'analysis')} the gate has not been evaluated"
    return (
        f"after {count_noun(analyses, 'analysis')} the gate's always-valid p-value is "
        f"{p_value_text(p_value)}, {'above' if p_value > alpha else 'at or below'} "
        f"alpha = {alpha:g}"
    )


def decision_action(outcome: str, candidate: str, *, projected: bool = False) -> str:
    """The recommended next step for a rollout that ended with ``outcome``."""
    if outcome == "promoted":
        return f"Ship {candidate}: it serves all traffic now; keep watching its guardrails."
    if outcome == "rolled_back":
        return f"Do not ship {candidate}: fix what failed (above), then rehearse the rollout again."
    if outcome == "held":
        return f"Keep {candidate} where it is and investigate the failed analyses before going on."
    if outcome == "superseded":
        return f"Nothing to do for {candidate}: the next release replaced it."
    if projected:
        return (
            f"Keep {candidate} at its weight until the gate decides, or give it more traffic "
            "to decide sooner (projected times below)."
        )
    return f"Keep the rollout of {candidate} running until the policy decides."


def guardrail_breach(
    label: str,
    *,
    estimate: float,
    side: Literal["min", "max"],
    limit: float,
    bound: float,
    alpha: float,
    relative: bool,
) -> str:
    """Why a guardrail failed: the estimate, the limit, and the confidence bound beyond it.

    ``bound`` is the lower confidence bound for a ``max`` and the upper one for a ``min``;
    ``relative`` values are fractions shown as signed percentages.  E.g.
    ``"latency_ms.p99 181 > max 120 (lower confidence bound 143 at alpha 0.0019)"``.
    """

    def shown(x: float) -> str:
        return f"{x:+.1%}" if relative else f"{x:.4g}"

    sign, which = (">", "lower") if side == "max" else ("<", "upper")
    limit_text = f"{limit:+.1%}" if relative else f"{limit:g}"
    return (
        f"{label} {shown(estimate)} {sign} {side} {limit_text} "
        f"({which} confidence bound {shown(bound)} at alpha {alpha:.2g})"
    )
