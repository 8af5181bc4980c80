"""Thompson-sampling ranking math on hand-built posteriors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from offerrank.bandit import probability_best, run_seed, thompson_rank


def group(rows):
    return pd.DataFrame(rows, columns=["offer_id", "alpha", "beta", "cold_start"])


def test_a_clear_winner_is_best_with_near_certainty():
    p = probability_best(np.array([501.0, 101.0, 11.0]), np.array([9501.0, 9901.0, 991.0]), seed=1)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] > 0.99


def test_equal_posteriors_share_the_probability_and_a_seed_repeats():
    alpha, beta = np.array([50.0, 50.0]), np.array([950.0, 950.0])
    p = probability_best(alpha, beta, seed=7)
    assert p == pytest.approx([0.5, 0.5], abs=0.02)
    assert np.array_equal(p, probability_best(alpha, beta, seed=7))
    assert run_seed("2026-11-01", "auto-web", "home-hero") == run_seed("2026-11-01", "auto-web", "home-hero")
    assert run_seed("2026-11-01", "auto-web", "home-hero") != run_seed("2026-11-02", "auto-web", "home-hero")


def test_scores_shares_and_ranks():
    ranked = thompson_rank(
        group(
            [
                ("weak", 21.0, 981.0, False),  # 2% after 1,000 impressions
                ("strong", 61.0, 941.0, False),  # 6%
                ("new", 1.0, 1.0, True),  # no data yet
            ]
        ),
        exploration_share=0.1,
        seed=3,
    ).set_index("offer_id")
    assert ranked.loc["strong", "score"] == pytest.approx(61 / 1002)
    assert list(ranked.sort_values("rank").index) == ["strong", "new", "weak"]
    assert ranked["traffic_share"].sum() == pytest.approx(1.0)
    assert ranked.loc["new", "traffic_share"] == pytest.approx(0.1)  # the exploration share: never starved
    assert ranked.loc["strong", "traffic_share"] == pytest.approx(0.9, abs=0.01)
    assert ranked.loc["new", "reason"] == "cold_start" and ranked.loc["strong", "reason"] == "model"


def test_without_cold_start_offers_exploration_spreads_over_all():
    ranked = thompson_rank(group([("a", 61.0, 941.0, False), ("b", 21.0, 981.0, False)]), 0.2, seed=3).set_index(
        "offer_id"
    )
    assert ranked.loc["b", "traffic_share"] == pytest.approx(0.1, abs=0.01)


def test_all_cold_start_is_uniform():
    ranked = thompson_rank(group([("a", 1.0, 1.0, True), ("b", 2.0, 5.0, True)]), 0.1, seed=3)
    assert ranked["traffic_share"].tolist() == [0.5, 0.5]
    assert ranked["offer_id"].tolist() == ["a", "b"]  # then by score: 0.5 > 2/7


def test_with_enough_traffic_the_true_best_ranks_first():
    rng = np.random.default_rng(42)
    hits = 0
    for placement in range(200):
        rates = rng.uniform(0.005, 0.08, size=6)
        impressions = rng.integers(20_000, 60_000, size=6)  # "enough": the best is separable from the runner-up
        conversions = rng.binomial(impressions, rates)
        ranked = thompson_rank(
            group([(f"o{i}", 1 + c, 1 + n - c, False) for i, (n, c) in enumerate(zip(impressions, conversions))]),
            0.1,
            seed=placement,
        )
        hits += ranked.iloc[0]["offer_id"] == f"o{rates.argmax()}"
    assert hits / 200 >= 0.95
