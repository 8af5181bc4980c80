"""Daily facts on a handful of inline interactions (their posteriors: tests/unit/learning/test_bandit.py)."""

from __future__ import annotations

from datetime import date

from pyspark.sql import functions as F

from offerrank.events.attribution import attributed_clicks
from offerrank.jobs.aggregate import daily_stats, landing_contributions, slot_stats

COLUMNS = (
    "event_date date, interaction string, proposition_id string, offer_id string, placement_id string, "
    "channel string, profile_id string, traffic_type string, slot int, propensity double"
)
D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def facts(interactions, first, last, memberships=None):
    """(offer_stats_daily, slot_stats_daily) rows of [first, last] from `interactions`, each landed on its own date:
    the landing days' contributions plus the attributed clicks, as a night combines them."""
    interactions = interactions.withColumn("landing_date", F.col("event_date"))
    offers, slots = landing_contributions(interactions, memberships)
    attributed = attributed_clicks(interactions, memberships)
    return daily_stats(offers, attributed, first, last).collect(), slot_stats(slots, attributed, first, last).collect()


def test_conversions_count_once_per_item_on_their_impressions_day(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "hero", "web", "u1", "model", 1, 0.5),
            (D1, "impression", "p2", "o1", "hero", "web", "u1", "model", 1, 0.5),
            (D1, "impression", "p3", "o2", "hero", "web", "u2", "random", 1, 0.5),
            (
                D2,
                "conversion",
                "p1",
                "o1",
                "hero",
                "web",
                "u1",
                None,
                None,
                None,
            ),  # after midnight: on D1, model
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", "model", None, None),  # clicked twice: one conversion
            (D2, "impression", "p4", "o1", "hero", "web", "u3", "model", 1, 0.5),
            (
                D2,
                "conversion",
                "p9",
                "o2",
                "hero",
                "web",
                "u4",
                None,
                None,
                None,
            ),  # no known impression: orphan
        ],
        COLUMNS,
    ).withColumn("dataset", F.lit("events"))  # one event dataset
    rows = {(r.event_date, r.offer_id): r for r in facts(interactions, D1, D2)[0]}
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
    assert {r.event_date for r in facts(interactions, D2, D2)[0]} == {D2}


def test_segment_facts_count_each_interaction_in_every_segment_of_its_profile(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "push", "push", "u1", "model", 1, 0.5),
            (D1, "conversion", "p1", "o1", "push", "push", "u1", "model", None, None),
            (D1, "impression", "p2", "o1", "push", "push", "u2", "model", 1, 0.5),
            (D1, "impression", "p3", "o1", "push", "push", "u3", "model", 1, 0.5),  # in no segment: counts in * only
        ],
        COLUMNS,
    ).withColumn("dataset", F.lit("events"))  # one event dataset
    memberships = spark.createDataFrame(
        [("u1", "loyal"), ("u1", "vip"), ("u2", "loyal")], "profile_id string, segment string"
    )
    rows = {r.segment: (r.impressions, r.conversions, r.profiles) for r in facts(interactions, D1, D1, memberships)[0]}
    assert rows == {"*": (3, 1, 3), "loyal": (2, 1, 2), "vip": (1, 1, 1)}


def test_each_landing_day_counts_in_its_own_snapshots_segments_and_a_click_in_its_impressions(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "push", "push", "u1", "model", 1, 0.5),
            (D2, "conversion", "p1", "o1", "push", "push", "u1", "model", None, None),  # u1 left `loyal` by then
            (D2, "impression", "p2", "o1", "push", "push", "u1", "model", 1, 0.5),
        ],
        COLUMNS,
    ).withColumns({"dataset": F.lit("events"), "snapshot_date": F.col("event_date")})  # a snapshot a day
    memberships = spark.createDataFrame(
        [(D1, "u1", "loyal"), (D2, "u1", "vip")], "snapshot_date date, profile_id string, segment string"
    )
    rows = {
        (r.event_date, r.segment): (r.impressions, r.conversions, r.orphan_conversions)
        for r in facts(interactions, D1, D2, memberships)[0]
    }
    assert rows == {
        (D1, "*"): (1, 1, 0),
        (D1, "loyal"): (1, 1, 0),
        (D2, "*"): (1, 0, 0),
        (D2, "vip"): (1, 0, 0),
    }


def test_slot_stats_count_shown_items_per_slot_and_logged_propensity(spark):
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "hero", "web", "u1", "model", 1, 0.7),
            (D1, "impression", "p1", "o2", "hero", "web", "u1", "model", 2, 0.2),
            (D1, "impression", "p1", "o1", "hero", "web", "u1", "model", 1, 0.7),  # the same item logged twice
            (D1, "impression", "p2", "o1", "hero", "web", "u2", "model", 1, 0.7),
            (D1, "impression", "p3", "o2", "hero", "web", "u3", "random", 1, 0.5),
            (D1, "impression", "p4", "o2", "hero", "web", "u3", None, None, None),  # ingested before slots were kept
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", None, None, None),  # late: counts on D1, slot 1
            (D1, "conversion", "p3", "o2", "hero", "web", "u3", None, None, None),
        ],
        COLUMNS,
    ).withColumn("dataset", F.lit("events"))  # one event dataset
    rows = {
        (r.slot, r.offer_id, r.traffic_type, r.propensity): (r.impressions, r.conversions)
        for r in facts(interactions, D1, D1)[1]
    }
    assert rows == {
        (1, "o1", "model", 0.7): (2, 1),
        (2, "o2", "model", 0.2): (1, 0),
        (1, "o2", "random", 0.5): (1, 1),
    }


def test_feature_stats_count_items_per_cell_of_profile_attributes_and_context(spark):
    from offerrank.catalog import AIModel
    from offerrank.jobs.contextual import feature_stats

    model = AIModel(
        name="ctx",
        type="personalized",
        datasets=["events"],
        attributes=[{"name": "person.age", "buckets": [40]}, "homeAddress.countryCode"],
        context=["device"],
    )
    columns = "event_date date, interaction string, proposition_id string, offer_id string, placement_id string, "
    columns += "channel string, profile_id string, device string, hour int, traffic_type string, slot int, "
    columns += "propensity double"
    shown, clicked = ("model", 1, 0.5), ("model", None, None)
    interactions = spark.createDataFrame(
        [
            (D1, "impression", "p1", "o1", "hero", "web", "u1", "mobile", 9, *shown),
            (D1, "impression", "p2", "o1", "hero", "web", "u1", "mobile", 9, *shown),
            (D1, "conversion", "p1", "o1", "hero", "web", "u1", "mobile", 9, *clicked),
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", "mobile", 9, *clicked),  # again: counted once
            (D1, "impression", "p3", "o1", "hero", "web", "u2", None, 9, *shown),  # no device; u2: no attributes
            (D1, "impression", "p4", "o1", "side", "web", "u1", "mobile", 9, *shown),  # not the model's placement
        ],
        columns,
    ).withColumn("dataset", F.lit("events"))  # one event dataset
    attributes = spark.createDataFrame(
        [("u1", "person.age", "52"), ("u1", "homeAddress.countryCode", "DE"), ("u3", "person.age", "20")],
        "profile_id string, attribute string, value string",
    )
    cells = feature_stats(interactions, D1, D2, model, [("hero", "web")], attributes).collect()
    assert sorted((r.event_date, r.offer_id, tuple(r.features), r.impressions, r.conversions) for r in cells) == [
        (D1, "o1", ("person.age=>=40", "homeAddress.countryCode=DE", "device=mobile"), 2, 1),
        (D1, "o1", ("person.age=unknown", "homeAddress.countryCode=unknown", "device=unknown"), 1, 0),
    ]
    assert {r.model_name for r in cells} == {"ctx"}


def test_each_night_aggregates_its_own_landing_day_and_matches_a_full_recompute(spark, tmp_path):
    from offerrank.catalog import Catalog
    from offerrank.engines.delta_spark import Warehouse
    from offerrank.jobs.aggregate import run
    from offerrank.settings import load_settings
    from offerrank.tables import INTERACTIONS, OFFER_STATS_DAILY, SLOT_STATS_DAILY

    settings = load_settings(home=tmp_path, spark_shuffle_partitions=1)
    warehouse = Warehouse(spark, settings)
    shown, clicked = ("model", 1, 0.5), (None, None, None)
    landed = {
        D1: [
            (D1, "impression", "p1", "o1", "hero", "web", "u1", *shown),
            (D1, "impression", "p2", "o1", "hero", "web", "u2", *shown),
            (D1, "conversion", "p9", "o2", "hero", "web", "u9", *clicked),  # its impression lands a day later
        ],
        D2: [
            (D1, "impression", "p9", "o2", "hero", "web", "u9", *shown),
            (D2, "conversion", "p1", "o1", "hero", "web", "u1", *clicked),  # a late click of a D1 impression
            (D2, "impression", "p3", "o1", "hero", "web", "u3", *shown),
        ],
        D3: [
            (D3, "conversion", "p2", "o1", "hero", "web", "u2", *clicked),  # two landing days after its impression
            (D3, "conversion", "p1", "o1", "hero", "web", "u1", *clicked),  # clicked again: still one conversion
        ],
    }

    def land(day, rows):
        frame = spark.createDataFrame(rows, COLUMNS).withColumns(
            {"dataset": F.lit("events"), "landing_date": F.lit(day)}
        )
        warehouse.replace_partition(frame, INTERACTIONS, day)

    def facts():
        offers = {
            (r.event_date, r.offer_id): (r.impressions, r.conversions, r.orphan_conversions, r.profiles)
            for r in warehouse.read(OFFER_STATS_DAILY).filter(F.col("segment") == "*").collect()
        }
        slots = sorted(tuple(r) for r in warehouse.read(SLOT_STATS_DAILY).collect())
        return offers, slots

    aggregated = []
    for day, rows in landed.items():
        land(day, rows)
        aggregated.append(run(spark, settings, Catalog(), day)["landing_days_aggregated"])
    assert aggregated == [[str(D1)], [str(D2)], [str(D3)]]  # each night reads one landing day's impressions
    nightly = facts()
    assert nightly[0] == {
        (D1, "o1"): (2, 2, 0, 2),
        (D1, "o2"): (1, 1, 0, 1),  # the orphan of night D1 became a conversion once its impression landed
        (D2, "o1"): (1, 0, 0, 1),
    }
    assert run(spark, settings, Catalog(), D3, full_refresh=True)["landing_days_aggregated"] == [str(d) for d in landed]
    assert facts() == nightly

    land(D1, [*landed[D1], (D1, "impression", "p4", "o1", "hero", "web", "u1", *shown)])  # D1 ingested again
    assert run(spark, settings, Catalog(), D3)["landing_days_aggregated"] == [str(D1), str(D3)]
    assert facts()[0][(D1, "o1")] == (3, 2, 0, 2)
