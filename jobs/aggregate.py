"""Daily offer facts and per-model conversion rates.

Reads  `interactions` (landing dates [D - L, D + L], L = lateness days: all that can hold the impressions of
       event dates [D - L, D] and their clicks), `profile_segments` (the latest snapshot on or before D, for
       the segments of active personalized models) and `offer_stats_daily` (the models' look-back windows).
Writes `offer_stats_daily`      per event_date, offer_id, placement_id, channel, segment (`*` = all traffic),
                                traffic_type (`model`, `random`, `unknown` when not logged; a conversion has its
                                impression's): impressions, conversions (one per clicked proposition item, on its
                                impression's date), distinct profiles, orphan conversions (clicks whose impression
                                is unknown);
                                replaces event dates [D - L, D], so late clicks update their impression's day;
       `slot_stats_daily`       per event_date, placement_id, channel, segment, slot, offer_id, traffic_type and
                                logged propensity: impressions and conversions (off-policy evaluation's input);
                                replaces event dates [D - L, D];
       `offer_conversion_rates` per as_of_date (D), model_name, offer x placement x channel x segment: counts in the
                                look-back window (optionally decayed), rate, Beta posterior, 95% credible
                                interval, cold start; replaces as_of_date = D;
       `offer_cap_counts`       per as_of_date (D): the frequency caps' counts (see offerrank.jobs.caps).
Run: `offerrank aggregate --date D` or `spark-submit jobs/aggregate.py --date D`.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.bandit import RATE_KEYS, posteriors
from offerrank.catalog import Catalog, ModelStatus
from offerrank.jobs import caps
from offerrank.settings import Settings, parse_flag
from offerrank.storage import Warehouse
from offerrank.tables import (
    ALL_SEGMENTS,
    INTERACTIONS,
    OFFER_CONVERSION_RATES,
    OFFER_STATS_DAILY,
    PROFILE_SEGMENTS,
    SLOT_STATS_DAILY,
    UNKNOWN_TRAFFIC,
    latest_on_or_before,
)

STATS_KEYS = ["event_date", "offer_id", "placement_id", "channel", "segment", "traffic_type"]
SLOT_KEYS = ["event_date", "placement_id", "channel", "segment", "slot", "offer_id", "traffic_type", "propensity"]
ITEM_KEYS = ["proposition_id", "offer_id", "segment"]  # one shown (or clicked) proposition item in a segment


def attribution(
    interactions: DataFrame, memberships: DataFrame | None = None
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The interactions tagged with their segments (`*`, and through `memberships` (profile_id, segment) each
    segment of the profile), then (impressions, shown, clicked): the tagged impressions, and one row per shown and
    per clicked proposition item x segment."""
    interactions = interactions.withColumn("traffic_type", F.coalesce("traffic_type", F.lit(UNKNOWN_TRAFFIC)))
    tagged = interactions.withColumn("segment", F.lit(ALL_SEGMENTS))
    if memberships is not None:
        tagged = tagged.unionByName(
            interactions.join(memberships, "profile_id").select(*interactions.columns, "segment")
        )
    impressions = tagged.filter(F.col("interaction") == "impression")
    shown = impressions.groupBy(*ITEM_KEYS).agg(
        F.min("event_date").alias("event_date"),
        F.first("placement_id").alias("placement_id"),
        F.first("channel").alias("channel"),
        F.first("traffic_type").alias("traffic_type"),
        F.first("slot", ignorenulls=True).alias("slot"),
        F.first("propensity", ignorenulls=True).alias("propensity"),
    )
    clicked = (
        tagged.filter(F.col("interaction") == "conversion")
        .groupBy(*ITEM_KEYS)
        .agg(
            F.min("event_date").alias("click_date"),
            F.first("placement_id").alias("click_placement"),
            F.first("channel").alias("click_channel"),
            F.first("traffic_type").alias("click_traffic_type"),
        )
    )
    return impressions, shown, clicked


def daily_stats(
    interactions: DataFrame, first_date: date, last_date: date, memberships: DataFrame | None = None
) -> DataFrame:
    """Facts per event date in [first_date, last_date] and segment; conversions go to their impression's date.

    Every interaction counts in segment `*` (all traffic) and, through `memberships` (profile_id, segment), in each
    segment its profile belongs to; a conversion counts in its impression's traffic type."""
    impressions, shown, clicked = attribution(interactions, memberships)
    attributed = clicked.join(shown, ITEM_KEYS, "left")
    conversions = (
        attributed.filter(F.col("event_date").isNotNull()).groupBy(*STATS_KEYS).agg(F.count("*").alias("conversions"))
    )
    orphans = (
        attributed.filter(F.col("event_date").isNull())
        .groupBy(
            F.col("click_date").alias("event_date"),
            "offer_id",
            F.col("click_placement").alias("placement_id"),
            F.col("click_channel").alias("channel"),
            "segment",
            F.col("click_traffic_type").alias("traffic_type"),
        )
        .agg(F.count("*").alias("orphan_conversions"))
    )
    shown_counts = impressions.groupBy(*STATS_KEYS).agg(
        F.count("*").alias("impressions"), F.countDistinct("profile_id").alias("profiles")
    )
    return (
        shown_counts.join(conversions, STATS_KEYS, "full")
        .join(orphans, STATS_KEYS, "full")
        .filter(F.col("event_date").between(first_date, last_date))
        .select(
            *STATS_KEYS,
            *[
                F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c)
                for c in ("impressions", "conversions", "profiles", "orphan_conversions")
            ],
        )
    )


def slot_stats(
    interactions: DataFrame, first_date: date, last_date: date, memberships: DataFrame | None = None
) -> DataFrame:
    """Per event date in [first_date, last_date], placement, channel, segment, slot, offer, traffic type and
    logged propensity: impressions (shown proposition items) and conversions (those clicked), what off-policy
    evaluation weighs. Impressions logged without a slot (ingested before slots were kept) are left out."""
    _, shown, clicked = attribution(interactions, memberships)
    converted = clicked.select(*ITEM_KEYS, F.lit(1).alias("converted"))
    return (
        shown.filter(F.col("slot").isNotNull() & F.col("event_date").between(first_date, last_date))
        .join(converted, ITEM_KEYS, "left")
        .groupBy(*SLOT_KEYS)
        .agg(
            F.count("*").alias("impressions"),
            F.coalesce(F.sum("converted"), F.lit(0)).cast("long").alias("conversions"),
        )
    )


def window_facts(stats: DataFrame, as_of: date, days: int) -> pd.DataFrame:
    """The daily facts of the `days` ending `as_of`, traffic types summed: what the models' posteriors read (a few
    rows per offer, placement, segment and day, so the posteriors are computed in pandas)."""
    return (
        stats.filter(F.col("event_date").between(as_of - timedelta(days=days - 1), as_of))
        .groupBy("event_date", *RATE_KEYS)
        .agg(F.sum("impressions").alias("impressions"), F.sum("conversions").alias("conversions"))
        .toPandas()
    )


def active_model_rates(facts: pd.DataFrame, catalog: Catalog, as_of: date, settings: Settings) -> pd.DataFrame:
    """Every active AI model's posteriors as of `as_of` on the placements it ranks (`offer_conversion_rates`)."""
    return pd.concat(
        [
            posteriors(facts, model, catalog.placements_of(model), as_of, settings.prior_alpha, settings.prior_beta)
            for model in catalog.active_models()
        ],
        ignore_index=True,
    )


def segments_in_use(catalog: Catalog) -> list[str]:
    """The segments that active personalized models rank for."""
    return sorted(
        {
            segment
            for model in catalog.ai_models
            if model.status is ModelStatus.active
            for segment in model.ranked_segments
        }
        - {ALL_SEGMENTS}
    )


def snapshot_memberships(
    profile_segments: DataFrame | None, segments: list[str], as_of: date
) -> tuple[date | None, DataFrame | None]:
    """The (profile_id, segment) rows of `segments` in the latest profile snapshot on or before `as_of`."""
    if profile_segments is None or not segments:
        return None, None
    snapshots = [row.snapshot_date for row in profile_segments.select("snapshot_date").distinct().collect()]
    latest = latest_on_or_before(snapshots, as_of)
    if latest is None:
        return None, None
    return latest, profile_segments.filter(
        (F.col("snapshot_date") == latest) & F.col("segment").isin(*segments)
    ).select("profile_id", "segment")


def run(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, full_refresh: bool = False) -> dict:
    """Write the date's facts and every active model's rates; returns counts for the run summary."""
    warehouse = Warehouse(spark, settings)
    interactions = warehouse.read(INTERACTIONS)
    if interactions is None:
        raise FileNotFoundError("no interactions table yet: ingest a date first")
    lateness = settings.lateness_days
    longest = max((m.lookback_days for m in catalog.ai_models), default=1)
    first = run_date - timedelta(days=(longest - 1) if full_refresh else lateness)
    window = interactions.filter(F.col("landing_date").between(first, run_date + timedelta(days=lateness)))
    snapshot, memberships = snapshot_memberships(warehouse.read(PROFILE_SEGMENTS), segments_in_use(catalog), run_date)
    warehouse.replace_range(daily_stats(window, first, run_date, memberships), OFFER_STATS_DAILY, first, run_date)
    warehouse.replace_range(slot_stats(window, first, run_date, memberships), SLOT_STATS_DAILY, first, run_date)
    stats = warehouse.read(OFFER_STATS_DAILY)
    models = catalog.active_models()
    if models:
        rates = active_model_rates(window_facts(stats, run_date, longest), catalog, run_date, settings)
        warehouse.replace_partition(
            spark.createDataFrame(rates, OFFER_CONVERSION_RATES.spark_schema()), OFFER_CONVERSION_RATES, run_date
        )
    counted_caps = caps.write_counts(spark, warehouse, interactions, catalog, run_date)
    return {
        "stats_dates": f"{first}..{run_date}",
        "profile_snapshot": str(snapshot) if snapshot else None,
        "stats_rows": stats.filter(F.col("event_date").between(first, run_date)).count(),
        "rate_rows": len(rates) if models else 0,
        "caps_counted": counted_caps,
    }


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/aggregate.py --date YYYY-MM-DD [--full-refresh]`."""
    from offerrank.jobs import job_session

    parser = argparse.ArgumentParser(prog="aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--full-refresh", type=parse_flag, nargs="?", const=True, default=False)
    args = parser.parse_args(argv)
    spark, settings, catalog = job_session("aggregate")
    print(run(spark, settings, catalog, args.date, args.full_refresh))
    return 0


if __name__ == "__main__":
    from offerrank.process import exit_cleanly

    exit_cleanly(main())
