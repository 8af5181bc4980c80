"""Beta-Bernoulli Thompson sampling: the ranking math of the auto-optimization model, on one group of offers.

Every offer of a placement x channel has a Beta(alpha, beta) posterior of its conversion rate. The ranking
publishes per offer:
- `score`: the posterior mean alpha / (alpha + beta);
- `p_best`: the probability that the offer has the highest rate, by Monte-Carlo over the posteriors with a
  seed derived from the run (so a rerun gives the same figures);
- `traffic_share`: how much traffic Thompson sampling gives the offer: (1 - exploration share) split by
  `p_best` among the offers past cold start, and the exploration share split evenly among cold-start offers
  (all offers when none is in cold start), so a new offer is never starved;
- `rank`: by traffic share, then score, then offer id.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

DRAWS = 20_000


def run_seed(*parts: object) -> int:
    """A stable 64-bit seed from the run's identity (date, model, placement, channel)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def probability_best(alpha: np.ndarray, beta: np.ndarray, seed: int, draws: int = DRAWS) -> np.ndarray:
    """P(offer i has the highest conversion rate) under independent Beta posteriors (Monte-Carlo)."""
    if len(alpha) == 1:
        return np.ones(1)
    samples = np.random.default_rng(seed).beta(alpha, beta, size=(draws, len(alpha)))
    return np.bincount(samples.argmax(axis=1), minlength=len(alpha)) / draws


def thompson_rank(group: pd.DataFrame, exploration_share: float, seed: int) -> pd.DataFrame:
    """Rank one placement x channel. `group` has offer_id, alpha, beta, cold_start; adds score, p_best,
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
    ranked["reason"] = np.where(cold, "cold_start", "model")
    ranked = ranked.sort_values(
        ["traffic_share", "score", "offer_id"], ascending=[False, False, True], kind="mergesort"
    )
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    return ranked
