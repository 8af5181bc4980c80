"""Daily facts and conversion rates on a handful of inline interactions."""

from __future__ import annotations

from datetime import date

import pytest

from offerrank.catalog import AIModel
from offerrank.jobs.aggregate import conversion_rates, daily_stats, window_totals

COLUMNS = (
    "event_date date, interaction string, proposition_id string, offer_id string, placement_id string, "
    "channel string, profile_id string, traffic_type string"
)
D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def model(**overrides):
    return AIModel(name="m", type="auto_optimization", datasets=["events"], **overrides)


def test_conversions_count_once_per_item_on_their_impressions_day(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "hero", "web", "u1", "model"),
            (D1, "impression", "p2", "o1", "hero", "web", "u1", "model"),
            (D1, "impression", "p3", "o2", "hero", "web", "u2", "random"),
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", None),  # a click after midnight: counts on D1, model
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", "model"),  # clicked twice: one conversion
            (D2, "impression", "p4", "o1", "hero", "web", "u3", "model"),
            (D2, "conversion", "p9", "o2", "hero", "web", "u4", None),  # its impression is unknown: an orphan
        ],
        COLUMNS,
    )
    rows = {(r.event_date, r.offer_id): r for r in daily_stats(interactions, D1, D2).collect()}
    assert (rows[(D1, "o1")].impressions, rows[(D1, "o1")].conversions, rows[(D1, "o1")].profiles) == (2, 1, 1)
    assert (rows[(D2, "o1")].impressions, rows[(D2, "o1")].conversions) == (1, 0)
    assert (rows[(D1, "o2")].impressions, rows[(D1, "o2")].conversions, rows[(D1, "o2")].orphan_conversions) == (
        1,
        0,
        0,
    )
    assert (rows[(D2, "o2")].impressions, rows[(D2, "o2")].orphan_conversions) == (0, 1)
    assert {r.segment for r in rows.values()} == {"*"}
    assert {key: r.traffic_type for key, r in rows.items()} == {
        (D1, "o1"): "model",
        (D1, "o2"): "random",
        (D2, "o1"): "model",
        (D2, "o2"): "unknown",
    }
    assert set(daily_stats(interactions, D2, D2).select("event_date").distinct().toPandas()["event_date"]) == {D2}


def test_segment_facts_count_each_interaction_in_every_segment_of_its_profile(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "push", "push", "u1", "model"),
            (D1, "conversion", "p1", "o1", "push", "push", "u1", "model"),
            (D1, "impression", "p2", "o1", "push", "push", "u2", "model"),
            (D1, "impression", "p3", "o1", "push", "push", "u3", "model"),  # in no segment: counts in * only
        ],
        COLUMNS,
    )
    memberships = spark.createDataFrame(
        [("u1", "loyal"), ("u1", "vip"), ("u2", "loyal")], "profile_id string, segment string"
    )
    rows = {
        r.segment: (r.impressions, r.conversions, r.profiles)
        for r in daily_stats(interactions, D1, D1, memberships).collect()
    }
    assert rows == {"*": (3, 1, 3), "loyal": (2, 1, 2), "vip": (1, 1, 1)}


def test_a_personalized_model_rates_all_traffic_and_each_of_its_segments(spark):
    facts = (
        stats(spark, [(D1, "o1", "push", "push", 100, 10)])
        .unionByName(stats(spark, [(D1, "o1", "push", "push", 40, 8)], "loyal"))
        .unionByName(stats(spark, [(D1, "o1", "push", "push", 30, 1)], "other"))
    )
    personalized = AIModel(name="p", type="personalized", datasets=["events"], segments=["loyal"], lookback_days=3)
    rates = {r.segment: (r.impressions, r.conversions) for r in window_totals(facts, personalized, D1).collect()}
    assert rates == {"*": (100, 10), "loyal": (40, 8)}
    assert {r.segment for r in window_totals(facts, model(lookback_days=3), D1).collect()} == {"*"}


def stats(spark, rows, segment="*"):
    return spark.createDataFrame(
        [(*row, segment) for row in rows],
        "event_date date, offer_id string, placement_id string, "
        "channel string, impressions long, conversions long, segment string",
    )


def test_posteriors_credible_intervals_and_cold_start(spark):
    facts = stats(
        spark,
        [
            (D1, "o1", "hero", "web", 600, 30),
            (D2, "o1", "hero", "web", 400, 20),
            (D3, "o2", "hero", "web", 90, 9),
            (date(2026, 10, 1), "o1", "hero", "web", 10**6, 10**5),
        ],
    )
    m = model(lookback_days=3)
    rates = {r.offer_id: r for r in conversion_rates(window_totals(facts, m, D3), m, D3, 1.0, 1.0).collect()}
    o1, o2 = rates["o1"], rates["o2"]
    assert (o1.impressions, o1.conversions, o1.conversion_rate) == (
        1000,
        50,
        0.05,
    )  # the October row is outside the window
    assert (o1.alpha, o1.beta) == (51.0, 951.0)
    assert o1.ci_low < 0.05 < o1.ci_high and o1.ci_high - o1.ci_low == pytest.approx(0.027, abs=0.003)
    assert not o1.cold_start
    assert o2.cold_start  # 90 impressions < 100
    assert (o1.as_of_date, o1.model_name) == (D3, "m")


def test_time_decay_halves_the_weight_of_older_days(spark):
    facts = stats(spark, [(D1, "o1", "hero", "web", 1000, 100), (D3, "o1", "hero", "web", 1000, 10)])
    m = model(lookback_days=7, half_life_days=2)
    (row,) = conversion_rates(window_totals(facts, m, D3), m, D3, 1.0, 1.0).collect()
    assert row.effective_impressions == pytest.approx(1500)  # D1 is two days (one half-life) old
    assert row.effective_conversions == pytest.approx(60)
    assert (row.impressions, row.conversions) == (2000, 110)
