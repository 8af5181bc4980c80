"""Off-policy estimators: the conversion rate a candidate policy would have had, from impressions another policy
served and logged with their propensities (numpy only; no Spark, no I/O).

Input rows are counts of shown items that share a context (placement x channel x segment x slot x day), an offer
and a logged propensity p: `impressions` n and `conversions` c, with the candidate's probability `target` π of
putting that offer in that slot of that context, the reward model's rate `reward` q̂ of that offer there, and
`direct` = Σ over the context's offers of π · q̂ (the direct method's value of the context). With w = π / p:
- IPW  (inverse propensity weighting): Σ w·r / N over the N logged impressions; unbiased when p > 0 wherever π > 0;
- SNIPW (self-normalized): Σ w·r / Σ w; a little biased, far less variable when weights are large;
- DR   (doubly robust): Σ (direct + w·(r − q̂)) / N; unbiased if either the propensities or the reward model are
  right, and tighter than IPW when q̂ is close.
Each comes with a 95% normal interval from the per-impression terms' sample variance (the delta method for SNIPW),
and `effective_sample_size` = (Σ w)² / Σ w² says how many impressions the estimate is really worth. These are the
formulas of Open Bandit Pipeline's IPW, SNIPW and DR estimators (Saito et al., 2021), on counts instead of one row
per impression; the tests check them against a per-impression computation.

A weight that is not finite (a logged propensity of 0) or above its bound (1 / ingest's propensity floor; by
default `MAX_WEIGHT`, one impression standing for more than 100,000) would make every estimate of its unit inf, NaN
or one impression's noise: `evaluate` refuses the rows (`WeightsRefused`, saying which weight and why) instead of
returning such numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerrank.errors import Refused
from offerrank.reports.stats import Z

ESTIMATORS = ("ipw", "snipw", "dr")
# 1 / the default propensity floor of ingest (OFFERRANK_MIN_PROPENSITY); evaluate derives it from the setting
MAX_WEIGHT = 1e5


class WeightsRefused(Refused, ValueError):
    """Importance weights that are not finite or exceed `MAX_WEIGHT`: no estimate, and the message says why."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Evaluation:
    """A candidate policy's estimated conversion rate on some logged impressions, by each estimator."""

    impressions: int
    conversions: int
    ipw: Estimate
    snipw: Estimate
    dr: Estimate
    effective_sample_size: float

    def as_row(self) -> dict[str, float]:
        row: dict[str, float] = {"impressions": self.impressions, "conversions": self.conversions}
        for name in ESTIMATORS:
            estimate = getattr(self, name)
            row |= {name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high}
        return row | {"effective_sample_size": self.effective_sample_size}


def _mean_and_interval(converted: np.ndarray, missed: np.ndarray, count: tuple[np.ndarray, np.ndarray]) -> Estimate:
    """The mean of per-impression terms that take value `converted` on the c converting impressions and `missed`
    on the n − c others of each row (`count` = (c, n − c)), with a 95% interval from their sample variance."""
    conversions, misses = count
    total = conversions.sum() + misses.sum()
    mean = float((conversions * converted + misses * missed).sum() / total)
    squares = (conversions * (converted - mean) ** 2 + misses * (missed - mean) ** 2).sum()
    half = Z * float(np.sqrt(squares / max(total - 1, 1) / total))
    return Estimate(mean, mean - half, mean + half)


def evaluate(
    impressions: np.ndarray,
    conversions: np.ndarray,
    propensity: np.ndarray,
    target: np.ndarray,
    reward: np.ndarray,
    direct: np.ndarray,
    max_weight: float = MAX_WEIGHT,
) -> Evaluation:
    """IPW, SNIPW and DR estimates of the candidate's conversion rate on the rows (see the module's doc)."""
    n, c = np.asarray(impressions, float), np.asarray(conversions, float)
    weight = importance_weights(np.asarray(target, float), np.asarray(propensity, float), max_weight)
    q, dm = np.asarray(reward, float), np.asarray(direct, float)
    count = (c, n - c)
    ipw = _mean_and_interval(weight, np.zeros_like(weight), count)
    weight_sum = float((n * weight).sum())
    snipw_value = float((c * weight).sum() / weight_sum) if weight_sum > 0 else 0.0
    # delta method: the ratio's influence terms are w·(r − V) / mean(w)
    mean_weight = weight_sum / n.sum()
    influence = _mean_and_interval(weight * (1 - snipw_value) / mean_weight, -weight * snipw_value / mean_weight, count)
    half = influence.high - influence.value if mean_weight > 0 else 0.0
    snipw = Estimate(snipw_value, snipw_value - half, snipw_value + half)
    dr = _mean_and_interval(dm + weight * (1 - q), dm - weight * q, count)
    squared = float((n * weight**2).sum())
    return Evaluation(
        impressions=int(n.sum()),
        conversions=int(c.sum()),
        ipw=ipw,
        snipw=snipw,
        dr=dr,
        effective_sample_size=weight_sum**2 / squared if squared > 0 else 0.0,
    )


def importance_weights(target: np.ndarray, propensity: np.ndarray, max_weight: float = MAX_WEIGHT) -> np.ndarray:
    """π / p per row; WeightsRefused when one is not finite or exceeds `max_weight`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = target / propensity
    unusable = ~np.isfinite(weight)
    if unusable.any():
        at = int(np.argmax(unusable))
        raise WeightsRefused(
            f"{int(unusable.sum())} rows have no finite importance weight (target {target[at]:.3g} over logged "
            f"propensity {propensity[at]:.3g}): no estimate"
        )
    if weight.size and weight.max() > max_weight:
        at = int(np.argmax(weight))
        raise WeightsRefused(
            f"an importance weight of {weight[at]:.3g} (target {target[at]:.3g} over logged propensity "
            f"{propensity[at]:.3g}) exceeds {max_weight:.0e}: one impression would outweigh the rest; no estimate"
        )
    return weight
