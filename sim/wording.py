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
* latency against its budget: :func:`budget_phrase`; guardrails: :func:`guardrail_verdict`;
* calibration warnings: :func:`calibration_warnings`;
* a seed-noise floor too low to compare against: :func:`noise_floor_warning`;
* fairness: a group's exposure share between versions, :func:`share_change`; the worst user
  group after correcting for the number of groups, :func:`group_harm`.

Unknown numbers (``None`` or NaN) never produce a judgement: they say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "IntervalSide",
    "budget_phrase",
    "calibration_warnings",
    "comparison_phrase",
    "count_noun",
    "difference_verdict",
    "drift_status",
    "expectations_headline",
    "group_harm",
    "guardrail_verdict",
    "interval_side",
    "noise_floor_warning",
    "p_value_text",
    "share_change",
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
) -> list[str]:
    """Warnings about a calibration block, empty when there is nothing to warn about.

    * slope ≤ 0: predictions rank requests the wrong way round (higher predicted, fewer
      clicks): ECE can still look small, since it only compares bin means;
    * predictions spanning less than one equal-width bin (max − min < ``bin_width``): every
      prediction falls in one or two bins, so the equal-width ECE measures the overall mean
      only (read the equal-mass ECE and the slope instead).
    """
    out: list[str] = []
    if requests == 0:
        return out
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
