"""Beta-Bernoulli Thompson sampling: the ranking math of the auto-optimization model, on one group of offers.

Every offer of a placement x channel has a Beta(alpha, beta) posterior of its conversion rate (`posteriors`, from
the daily facts of the model's look-back window). Its prior comes from the offer's list (`list_priors`, empirical
Bayes): the pooled rate of all offers of that model x placement x channel x segment in the window, worth a few
impressions, so an offer never shown scores about what its list converts at, not 0.5. The ranking publishes per
offer:
- `score`: the posterior mean alpha / (alpha + beta);
- `p_best`: the probability that the offer has the highest rate, by Monte-Carlo over the posteriors with a
  seed derived from the run (so a rerun gives the same figures);
- `traffic_share`: how much traffic Thompson sampling gives the offer: (1 - exploration share) split by
  `p_best` among the offers past cold start, and the exploration share split evenly among cold-start offers
  (all offers when none is in cold start), so a new offer is never starved;
- `rank`: by traffic share, then score, then offer id; a list whose offers are all in cold start (nothing known
  yet, every share equal) by offer priority, then offer id, as a priority ranking would order it, rather than
  putting the offers never shown (score = the prior's mean) before those with a few impressions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from offerrank.tables import ALL_SEGMENTS, OFFER_CONVERSION_RATES, Reason

if TYPE_CHECKING:
    from offerrank.catalog import AIModel
    from offerrank.settings import Settings

DRAWS = 20_000
QUANTILES = 256  # quantiles per posterior in the tables Thompson draws read (see offerrank.serving.policy)
RATE_KEYS = ["offer_id", "placement_id", "channel", "segment"]
LIST_KEYS = ["model_name", "placement_id", "channel", "segment"]


@dataclass(frozen=True)
class Prior:
    """How an offer's Beta prior is set: its list's pooled rate p (smoothed by the global Beta(alpha, beta), so
    it is never 0 or 1) weighing `impressions` impressions: Beta(impressions * p, impressions * (1 - p)); the global
    Beta(alpha, beta) itself where neither the list nor its placement's all-traffic list has data."""

    impressions: float
    alpha: float
    beta: float

    @classmethod
    def of(cls, settings: Settings) -> Prior:
        return cls(settings.prior_impressions, settings.prior_alpha, settings.prior_beta)


def list_priors(lists: pd.DataFrame, rates: pd.DataFrame, prior: Prior) -> pd.DataFrame:
    """Each list of `lists` (model_name, placement_id, channel, segment) with its offers' Beta prior (`prior_alpha`,
    `prior_beta`), from the window's counts `rates` (LIST_KEYS, impressions, conversions: one row per offer): the
    list's pooled rate; for a segment's list without data, its placement's all-traffic list's (segment `*`); else
    the global prior."""
    pooled = (
        rates.reindex(columns=[*LIST_KEYS, "impressions", "conversions"])
        .groupby(LIST_KEYS, as_index=False, dropna=False)[["impressions", "conversions"]]
        .sum()
    )
    pooled = pooled[pooled["impressions"] > 0]
    everyone = pooled[pooled["segment"] == ALL_SEGMENTS].drop(columns="segment")
    priced = (
        lists[LIST_KEYS]
        .drop_duplicates()
        .merge(pooled, on=LIST_KEYS, how="left")
        .merge(everyone, on=LIST_KEYS[:-1], how="left", suffixes=("", "_all"))
    )
    own = priced["impressions"].notna().to_numpy()
    impressions = np.where(own, priced["impressions"], priced["impressions_all"]).astype(float)
    conversions = np.where(own, priced["conversions"], priced["conversions_all"]).astype(float)
    rate = (conversions + prior.alpha) / (impressions + prior.alpha + prior.beta)
    known = ~np.isnan(rate)
    return priced[LIST_KEYS].assign(
        prior_alpha=np.where(known, prior.impressions * rate, prior.alpha),
        prior_beta=np.where(known, prior.impressions * (1 - rate), prior.beta),
    )


def facts_of(facts: pd.DataFrame, datasets: Iterable[str], counts: Iterable[str]) -> pd.DataFrame:
    """The daily facts a model learns from: the rows of its event `datasets`, their `counts` summed over them."""
    counts = [column for column in counts if column in facts.columns]
    keys = [column for column in facts.columns if column not in counts and column != "dataset"]
    mine = facts[facts["dataset"].isin(list(datasets))]
    return mine.groupby(keys, as_index=False, sort=False, dropna=False)[counts].sum()


def run_seed(*parts: object) -> int:
    """A stable 64-bit seed from the run's identity (date, model, placement, channel)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def posteriors(
    stats: pd.DataFrame,
    model: AIModel,
    placements: list[tuple[str, str]],
    as_of: date,
    prior: Prior,
) -> pd.DataFrame:
    """The `model`'s Beta posteriors as of `as_of`, per offer x placement x channel x segment it ranks on its
    `placements` (placement, channel), from daily facts `stats` (event_date, offer_id, placement_id, channel,
    segment, impressions, conversions; other days, placements, segments and columns are ignored): the look-back
    window's counts, each day weighing 0.5 ^ (age / half-life) when the model decays, alpha = the list's prior alpha
    + conversions, beta = its prior beta + non-converting impressions (`list_priors`), a 95% credible interval and
    cold start: the rows of `offer_conversion_rates`."""
    from scipy.special import betaincinv

    first = model.window_start(as_of)
    assigned = pd.DataFrame(placements, columns=["placement_id", "channel"])
    window = stats[stats["event_date"].between(first, as_of) & stats["segment"].isin(model.ranked_segments)]
    window = window.merge(assigned, on=["placement_id", "channel"])
    age = np.array([(as_of - day).days for day in window["event_date"]], dtype=float)
    weight = 0.5 ** (age / model.half_life_days) if model.half_life_days else np.ones(len(window))
    window["effective_impressions"] = window["impressions"] * weight
    window["effective_conversions"] = window["conversions"] * weight
    rates = window.groupby(RATE_KEYS, as_index=False, sort=True)[
        ["impressions", "conversions", "effective_impressions", "effective_conversions"]
    ].sum()
    rates = rates.assign(model_name=model.name)
    rates = rates.merge(list_priors(rates, rates, prior), on=LIST_KEYS, how="left")
    impressions, conversions = rates["impressions"].to_numpy(), rates["conversions"].to_numpy()
    alpha = rates["prior_alpha"].to_numpy(float) + rates["effective_conversions"].to_numpy(float)
    beta = rates["prior_beta"].to_numpy(float) + np.maximum(
        (rates["effective_impressions"] - rates["effective_conversions"]).to_numpy(), 0.0
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(impressions > 0, conversions / np.maximum(impressions, 1), np.nan)
    rates = rates.assign(
        as_of_date=as_of,
        conversion_rate=rate,
        alpha=alpha,
        beta=beta,
        ci_low=betaincinv(alpha, beta, 0.025) if len(rates) else [],
        ci_high=betaincinv(alpha, beta, 0.975) if len(rates) else [],
        cold_start=(impressions < model.cold_start.min_impressions) | (conversions < model.cold_start.min_conversions),
    )
    return rates[OFFER_CONVERSION_RATES.column_names].astype({"impressions": "int64", "conversions": "int64"})


def posterior_table(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Each Beta(alpha, beta) posterior's quantiles at (i + 0.5) / QUANTILES: an (offers x QUANTILES) table."""
    from scipy.special import betaincinv

    grid = (np.arange(QUANTILES) + 0.5) / QUANTILES
    return betaincinv(alpha[:, None], beta[:, None], grid[None, :])


def probability_best(alpha: np.ndarray, beta: np.ndarray, seed: int, draws: int = DRAWS) -> np.ndarray:
    """P(offer i has the highest conversion rate) under independent Beta posteriors (Monte-Carlo)."""
    if len(alpha) == 1:
        return np.ones(1)
    samples = np.random.default_rng(seed).beta(alpha, beta, size=(draws, len(alpha)))
    return np.bincount(samples.argmax(axis=1), minlength=len(alpha)) / draws


def thompson_rank(group: pd.DataFrame, exploration_share: float, seed: int) -> pd.DataFrame:
    """Rank one placement x channel. `group` has offer_id, priority, alpha, beta, cold_start; adds score, p_best,
    traffic_share, reason and rank."""
    ranked = group.copy()
    alpha, beta = ranked["alpha"].to_numpy(float), ranked["beta"].to_numpy(float)
    ranked["score"] = alpha / (alpha + beta)
    ranked["p_best"] = probability_best(alpha, beta, seed)
    cold = ranked["cold_start"].to_numpy(bool)
    warm_best = np.where(cold, 0.0, ranked["p_best"].to_numpy())
    if cold.all() or warm_best.sum() == 0:
        share = np.full(len(ranked), 1.0 / len(ranked))
    else:
        explore_pool = cold if cold.any() else np.ones(len(ranked), bool)
        share = (1 - exploration_share) * warm_best / warm_best.sum()
        share = share + exploration_share * explore_pool / explore_pool.sum()
    ranked["traffic_share"] = share
    ranked["reason"] = np.where(cold, Reason.COLD_START.value, Reason.MODEL.value)
    order = ["priority", "offer_id"] if cold.all() else ["traffic_share", "score", "offer_id"]
    ranked = ranked.sort_values(order, ascending=[False] * (len(order) - 1) + [True], kind="mergesort")
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    return ranked
