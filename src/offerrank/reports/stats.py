"""The statistics of model reports, as pure functions of counts (numpy and scipy; no Spark, no I/O).

- `rate_interval`: a conversion rate's 95% interval (Wilson score interval: sound at small counts and at 0%).
- `compare`: model traffic against random traffic: lift = CR(model) / CR(random) - 1 with a 95% interval (delta
  method on the log of the rate ratio), the p-value of the two proportions' Wald test on that same log ratio (so
  p < 0.05 exactly when the interval excludes 0), the random impressions still needed to tell, and a verdict in
  words that says when there is no baseline or not enough data.
- `gini`: the Gini coefficient (2 AUC - 1) of scores against conversions, from counts per distinct score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

CONFIDENCE = 0.95
Z = float(norm.ppf(0.5 + CONFIDENCE / 2))
POWER_Z = float(norm.ppf(0.8))  # the power at which `random_impressions_needed` would detect a lift
MIN_CONVERSIONS = 10  # conversions each traffic type needs before a comparison means anything
MIN_DETECTABLE_LIFT = 0.10  # the smallest lift worth detecting, when the observed one is smaller


def rate_interval(conversions, impressions) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score intervals of conversions / impressions (element-wise; NaN where there are no impressions)."""
    x = np.asarray(conversions, dtype=float)
    n = np.asarray(impressions, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1 + Z**2 / n
        centre = (p + Z**2 / (2 * n)) / denominator
        half = Z * np.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / denominator
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


@dataclass(frozen=True)
class Comparison:
    """Model traffic against random traffic in one window."""

    model_impressions: int
    model_conversions: int
    random_impressions: int
    random_conversions: int
    model_rate: float | None
    random_rate: float | None
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    p_value: float | None
    random_impressions_needed: int | None
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def compare(model_conversions: int, model_impressions: int, random_conversions: int, random_impressions: int):
    """Lift of model over random traffic, its interval, p-value and verdict (see the module docstring)."""
    x1, n1, x0, n0 = int(model_conversions), int(model_impressions), int(random_conversions), int(random_impressions)
    rate1 = x1 / n1 if n1 else None
    rate0 = x0 / n0 if n0 else None
    counts = (n1, x1, n0, x0, rate1, rate0)
    if n0 == 0:
        verdict = (
            "no random traffic in this window: there is no baseline to compare the model with "
            "(an exploration share above 0 serves some)"
        )
        return Comparison(*counts, None, None, None, None, None, verdict)
    if n1 == 0:
        return Comparison(*counts, None, None, None, None, None, "no model traffic in this window")
    assert rate1 is not None and rate0 is not None  # both kinds of traffic have impressions here
    needed = random_impressions_needed(x1, n1, x0, n0)
    if min(x1, x0) < MIN_CONVERSIONS:
        verdict = f"not enough data to tell: needs about {needed:,} more random impressions"
        lift = rate1 / rate0 - 1 if x0 else None
        return Comparison(*counts, lift, None, None, None, needed, verdict)
    lift, log_ratio = rate1 / rate0 - 1, math.log(rate1 / rate0)
    error = math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
    low, high = math.exp(log_ratio - Z * error) - 1, math.exp(log_ratio + Z * error) - 1
    p_value = float(2 * norm.sf(abs(log_ratio) / error)) if error > 0 else 0.0
    interval = f"(95% CI {_percent(low)} to {_percent(high)}), {_p(p_value)}"
    if p_value >= 1 - CONFIDENCE:
        verdict = (
            f"no significant difference from random yet: lift {_percent(lift)} {interval}; "
            f"needs about {needed:,} more random impressions to tell"
        )
    else:
        needed = 0
        verdict = f"model {'beats' if lift > 0 else 'trails'} random by {abs(lift):.0%} {interval}"
    return Comparison(*counts, lift, low, high, p_value, needed, verdict)


def random_impressions_needed(x1: int, n1: int, x0: int, n0: int) -> int:
    """More random impressions (model traffic growing in proportion) for a 95%-level test with 80% power to detect
    the observed lift, or `MIN_DETECTABLE_LIFT` when the observed one is smaller (delta-method variance of the log
    rate ratio; rates smoothed by half a conversion, so that zero counts still give an estimate)."""
    p1, p0 = (x1 + 0.5) / (n1 + 1), (x0 + 0.5) / (n0 + 1)
    effect = max(abs(math.log(p1 / p0)), math.log1p(MIN_DETECTABLE_LIFT))
    ratio = n1 / n0
    total = ((Z + POWER_Z) / effect) ** 2 * ((1 - p1) / p1 / ratio + (1 - p0) / p0)
    return max(0, math.ceil(total) - n0)


def gini(scores, positives, negatives) -> float | None:
    """2 AUC - 1 of `scores` against outcomes, given per score the counts of converted (`positives`) and not
    converted (`negatives`) impressions; ties count half. None without both outcomes."""
    score = np.asarray(scores, dtype=float)
    pos = np.asarray(positives, dtype=float)
    neg = np.asarray(negatives, dtype=float)
    if pos.sum() <= 0 or neg.sum() <= 0:
        return None
    levels, index = np.unique(score, return_inverse=True)
    pos_at = np.bincount(index, weights=pos, minlength=len(levels))
    neg_at = np.bincount(index, weights=neg, minlength=len(levels))
    below = np.cumsum(neg_at) - neg_at
    auc = float((pos_at * (below + 0.5 * neg_at)).sum() / (pos.sum() * neg.sum()))
    return 2 * auc - 1


def _percent(value: float) -> str:
    return f"{value:+.0%}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"
