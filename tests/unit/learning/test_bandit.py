"""Thompson-sampling ranking math: posteriors from hand-built daily facts, rankings from hand-built posteriors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from offerrank.catalog import AIModel
from offerrank.learning.bandit import Prior, list_priors, posteriors, probability_best, run_seed, thompson_rank
from offerrank.tables import OFFER_CONVERSION_RATES

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
HERO = [("hero", "web")]
PRIOR = Prior(impressions=10.0, alpha=1.0, beta=1.0)


def facts(rows, segment="*"):
    columns = ["event_date", "offer_id", "placement_id", "channel", "impressions", "conversions"]
    return pd.DataFrame(rows, columns=columns).assign(segment=segment)


def model(**overrides):
    return AIModel(name="m", type="auto_optimization", datasets=["events"], **overrides)


def test_posteriors_credible_intervals_and_cold_start():
    daily = facts(
        [
            (D1, "o1", "hero", "web", 600, 30),
            (D2, "o1", "hero", "web", 400, 20),
            (D3, "o2", "hero", "web", 90, 9),
            (date(2026, 10, 1), "o1", "hero", "web", 10**6, 10**5),  # outside the window
            (D1, "o1", "home", "web", 500, 50),  # not a placement of the model
        ]
    )
    rates = posteriors(daily, model(lookback_days=3), HERO, D3, PRIOR)
    assert list(rates.columns) == OFFER_CONVERSION_RATES.column_names
    o1, o2 = (row for _, row in rates.sort_values("offer_id").iterrows())
    assert (o1.impressions, o1.conversions, o1.conversion_rate) == (1000, 50, 0.05)
    pooled = (50 + 9 + 1) / (1000 + 90 + 2)  # the list's rate, under the global Beta(1, 1)
    assert (o1.alpha, o1.beta) == pytest.approx((50 + 10 * pooled, 950 + 10 * (1 - pooled)))
    assert o1.ci_low < 0.05 < o1.ci_high and o1.ci_high - o1.ci_low == pytest.approx(0.027, abs=0.003)
    assert not o1.cold_start and o2.cold_start  # o2: 90 impressions < 100
    assert (o1.as_of_date, o1.model_name) == (D3, "m")


def test_time_decay_halves_the_weight_of_older_days():
    daily = facts([(D1, "o1", "hero", "web", 1000, 100), (D3, "o1", "hero", "web", 1000, 10)])
    (row,) = (r for _, r in posteriors(daily, model(lookback_days=7, half_life_days=2), HERO, D3, PRIOR).iterrows())
    assert row.effective_impressions == pytest.approx(1500)  # D1 is two days (one half-life) old
    assert row.effective_conversions == pytest.approx(60)
    assert (row.impressions, row.conversions) == (2000, 110)


def test_a_personalized_model_rates_all_traffic_and_each_of_its_segments():
    daily = pd.concat(
        [
            facts([(D1, "o1", "push", "push", 100, 10)]),
            facts([(D1, "o1", "push", "push", 40, 8)], "loyal"),
            facts([(D1, "o1", "push", "push", 30, 1)], "other"),
        ]
    )
    personalized = AIModel(name="p", type="personalized", datasets=["events"], segments=["loyal"], lookback_days=3)
    rates = posteriors(daily, personalized, [("push", "push")], D1, PRIOR)
    counts = {r.segment: (r.impressions, r.conversions) for _, r in rates.iterrows()}
    assert counts == {"*": (100, 10), "loyal": (40, 8)}
    assert set(posteriors(daily, model(lookback_days=3), [("push", "push")], D1, PRIOR)["segment"]) == {"*"}
    assert posteriors(daily.iloc[:0], personalized, [("push", "push")], D1, PRIOR).empty


def lists_and_counts(rows):
    columns = ["model_name", "placement_id", "channel", "segment", "impressions", "conversions"]
    return pd.DataFrame(rows, columns=columns)


def test_an_offers_prior_is_its_lists_pooled_rate_worth_a_few_impressions():
    counts = lists_and_counts(
        [
            ("m", "hero", "web", "*", 900, 18),
            ("m", "hero", "web", "*", 98, 2),  # a second offer of the same list: pooled with the first
            ("m", "hero", "web", "loyal", 400, 40),
            ("m", "app", "mobileApp", "*", 500, 0),  # no conversion yet: the prior stays a proper Beta
            ("other", "hero", "web", "*", 1000, 500),  # another model's list of the same placement
        ]
    )
    lists = lists_and_counts(
        [
            ("m", "hero", "web", "*", 0, 0),
            ("m", "hero", "web", "loyal", 0, 0),
            ("m", "hero", "web", "bargain", 0, 0),  # a segment without data: its placement's all-traffic rate
            ("m", "app", "mobileApp", "*", 0, 0),
            ("m", "push", "push", "*", 0, 0),  # no data at all: the global prior
        ]
    )
    priors = list_priors(lists, counts, PRIOR).set_index(["placement_id", "segment"])
    every = (20 + 1) / (998 + 2)
    assert priors.loc[("hero", "*"), ["prior_alpha", "prior_beta"]].tolist() == pytest.approx(
        [10 * every, 10 - 10 * every]
    )
    assert priors.loc[("hero", "loyal"), "prior_alpha"] == pytest.approx(10 * 41 / 402)
    assert priors.loc[("hero", "bargain"), "prior_alpha"] == pytest.approx(10 * every)
    assert 0 < priors.loc[("app", "*"), "prior_alpha"] < 0.03
    assert priors.loc[("push", "*"), ["prior_alpha", "prior_beta"]].tolist() == [1.0, 1.0]
    assert priors[["prior_alpha", "prior_beta"]].sum(axis=1).iloc[:4].tolist() == pytest.approx([10.0] * 4)


def test_a_never_shown_offer_scores_about_its_lists_rate_and_gets_no_model_traffic():
    """The Beta(1, 1) prior's mean 0.5 beat every trained offer's rate of a few percent; the list's prior does not."""
    prior = list_priors(
        lists_and_counts([("m", "hero", "web", "*", 0, 0)]),
        lists_and_counts([("m", "hero", "web", "*", 3000, 90)]),
        PRIOR,
    ).iloc[0]
    ranked = thompson_rank(
        group(
            [
                ("a", 61.0, 1941.0, False),
                ("b", 31.0, 971.0, False),
                ("new", prior["prior_alpha"], prior["prior_beta"], True),
            ]
        ),
        exploration_share=0.1,
        seed=1,
    ).set_index("offer_id")
    assert ranked.loc["new", "score"] == pytest.approx(91 / 3002)
    assert ranked.loc["new", "traffic_share"] == pytest.approx(0.1)  # the exploration share, nothing more
    assert ranked.loc["new", "p_best"] < 0.5  # with Beta(1, 1) it would be above 0.95


def group(rows, priorities=None):
    frame = pd.DataFrame(rows, columns=["offer_id", "alpha", "beta", "cold_start"])
    return frame.assign(priority=priorities or [0] * len(frame))


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


def test_all_cold_start_is_uniform_and_published_by_priority():
    # issue #54 (7): by score, the offers never shown (the prior's mean, 0.5) came first
    rows = [("never-shown", 1.0, 1.0, True), ("shown", 2.0, 5.0, True), ("high", 1.0, 3.0, True)]
    rows.append(("tie", 1.0, 3.0, True))
    ranked = thompson_rank(group(rows, priorities=[10, 10, 50, 50]), 0.1, seed=3)
    assert ranked["traffic_share"].tolist() == [0.25] * 4 and set(ranked["reason"]) == {"cold_start"}
    assert ranked["offer_id"].tolist() == ["high", "tie", "never-shown", "shown"]  # by priority, ties by id
    assert ranked["rank"].tolist() == [1, 2, 3, 4]


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
