"""The statistics of model reports: intervals, lift and its test, the samples still needed, the Gini coefficient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offerrank.reports.stats import MIN_CONVERSIONS, compare, gini, random_impressions_needed, rate_interval


def test_wilson_intervals_match_published_values_and_handle_zero_counts():
    low, high = rate_interval([10, 0, 5], [100, 50, 0])
    # the Wilson score interval of 10/100 at 95%: 0.0552 to 0.1744
    assert (round(low[0], 4), round(high[0], 4)) == (0.0552, 0.1744)
    # no conversions yet: the interval still says how high the rate may be
    assert low[1] == pytest.approx(0, abs=1e-12) and 0 < high[1] < 0.08
    assert math.isnan(low[2]) and math.isnan(high[2])  # no impressions: no rate


def test_the_lift_interval_covers_the_true_lift_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    true_model, true_random, n_model, n_random = 0.05, 0.04, 20_000, 2_000
    covered = 0
    for _ in range(2_000):
        result = compare(rng.binomial(n_model, true_model), n_model, rng.binomial(n_random, true_random), n_random)
        covered += result.lift_low <= true_model / true_random - 1 <= result.lift_high
    assert 0.93 <= covered / 2_000 <= 0.97


def test_a_clear_win_is_significant_and_says_so():
    result = compare(1_300, 20_000, 80, 2_000)
    assert result.lift == pytest.approx(0.625) and result.lift_low > 0 and result.p_value < 0.001
    assert result.verdict.startswith("model beats random by 62% (95% CI +")
    assert result.verdict.endswith("p < 0.001") and result.random_impressions_needed == 0


def test_a_loss_is_reported_as_one():
    result = compare(600, 20_000, 100, 2_000)
    assert result.lift_high < 0 and result.verdict.startswith("model trails random by 40%")


def test_an_unclear_difference_says_how_much_more_random_traffic_would_tell():
    result = compare(1_050, 20_000, 100, 2_000)
    assert result.p_value > 0.05 and result.lift_low < 0 < result.lift_high
    assert result.verdict.startswith("no significant difference from random yet: lift +5%")
    assert f"needs about {result.random_impressions_needed:,} more random impressions" in result.verdict
    # with that much more random traffic (and model traffic in proportion) the same rates would be significant
    more = result.random_impressions_needed
    scale = (2_000 + more) / 2_000
    later = compare(round(1_050 * scale), round(20_000 * scale), round(100 * scale), 2_000 + more)
    assert later.p_value < 0.05 or later.lift < 0.1


def test_no_random_traffic_or_tiny_samples_invent_no_baseline():
    none = compare(500, 10_000, 0, 0)
    assert none.lift is None and none.p_value is None and none.verdict.startswith("no random traffic")
    tiny = compare(40, 900, MIN_CONVERSIONS - 1, 100)
    assert tiny.lift_low is None and tiny.p_value is None
    assert (
        tiny.verdict
        == f"not enough data to tell: needs about {tiny.random_impressions_needed:,} more random impressions"
    )
    assert tiny.random_impressions_needed > 0
    assert compare(0, 0, 5, 100).verdict == "no model traffic in this window"


def test_more_random_traffic_is_needed_for_smaller_lifts():
    assert random_impressions_needed(1_020, 20_000, 100, 2_000) > random_impressions_needed(1_500, 20_000, 100, 2_000)
    assert random_impressions_needed(150_000, 1_000_000, 10_000, 100_000) == 0


def test_gini_of_perfect_reversed_and_uninformative_scores():
    assert gini([0.1, 0.2, 0.3], [0, 0, 10], [10, 10, 0]) == pytest.approx(1.0)
    assert gini([0.1, 0.2, 0.3], [10, 0, 0], [0, 10, 10]) == pytest.approx(-1.0)
    assert gini([0.5, 0.5], [5, 5], [5, 5]) == pytest.approx(0.0)  # ties count half
    # two offers, converting 2% and 4%: AUC = P(a converted impression scores higher than a non-converted one)
    auc = (40 * 980 + 0.5 * (40 * 960 + 20 * 980)) / (60 * 1_940)
    assert gini([0.04, 0.02], [40, 20], [960, 980]) == pytest.approx(2 * auc - 1)
    assert gini([0.1], [0], [10]) is None
