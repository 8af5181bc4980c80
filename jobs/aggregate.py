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
from pyspark.sql import types as T

from offerrank.catalog import AIModel, Catalog, ModelStatus
from offerrank.jobs import caps
from offerrank.settings import Settings, parse_flag
from offerrank.storage import Warehouse
from offerrank.tables import (
    ALL_SEGMENTS,
    INTERACTIONS,
    OFFER_CONVERSION_RATES,
    OFFER_STATS_DAILY,
    PROFILE_SEGMENTS,
    UNKNOWN_TRAFFIC,
    latest_on_or_before,
)

STATS_KEYS = ["event_date", "offer_id", "placement_id", "channel", "segment", "traffic_type"]
RATE_KEYS = ["offer_id", "placement_id", "channel", "segment"]


def daily_stats(
    interactions: DataFrame, first_date: date, last_date: date, memberships: DataFrame | None = None
) -> DataFrame:
    """Facts per event date in [first_date, last_date] and segment; conversions go to their impression's date.

    Every interaction counts in segment `*` (all traffic) and, through `memberships` (profile_id, segment), in each
    segment its profile belongs to; a conversion counts in its impression's traffic type."""
    interactions = interactions.withColumn("traffic_type", F.coalesce("traffic_type", F.lit(UNKNOWN_TRAFFIC)))
    tagged = interactions.withColumn("segment", F.lit(ALL_SEGMENTS))
    if memberships is not None:
        tagged = tagged.unionByName(
            interactions.join(memberships, "profile_id").select(*interactions.columns, "segment")
        )
    impressions = tagged.filter(F.col("interaction") == "impression")
    clicks = tagged.filter(F.col("interaction") == "conversion")
    shown = impressions.groupBy("proposition_id", "offer_id", "segment").agg(
        F.min("event_date").alias("event_date"),
        F.first("placement_id").alias("placement_id"),
        F.first("channel").alias("channel"),
        F.first("traffic_type").alias("traffic_type"),
    )
    clicked = clicks.groupBy("proposition_id", "offer_id", "segment").agg(
        F.min("event_date").alias("click_date"),
        F.first("placement_id").alias("click_placement"),
        F.first("channel").alias("click_channel"),
        F.first("traffic_type").alias("click_traffic_type"),
    )
    attributed = clicked.join(shown, ["proposition_id", "offer_id", "segment"], "left")
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


def window_totals(stats: DataFrame, model: AIModel, as_of: date) -> DataFrame:
    """Counts per offer x placement x channel x segment over the model's look-back window, raw and time-decayed."""
    first = as_of - timedelta(days=model.lookback_days - 1)
    age = F.datediff(F.lit(as_of), F.col("event_date"))
    weight = F.pow(F.lit(0.5), age / F.lit(model.half_life_days)) if model.half_life_days else F.lit(1.0)
    return (
        stats.filter(F.col("event_date").between(first, as_of) & F.col("segment").isin(*model.ranked_segments))
        .groupBy(*RATE_KEYS)
        .agg(
            F.sum("impressions").alias("impressions"),
            F.sum("conversions").alias("conversions"),
            F.sum(F.col("impressions") * weight).alias("effective_impressions"),
            F.sum(F.col("conversions") * weight).alias("effective_conversions"),
        )
    )


@F.pandas_udf(T.DoubleType())
def _beta_quantile(alpha: pd.Series, beta: pd.Series, q: pd.Series) -> pd.Series:
    from scipy.stats import beta as beta_distribution

    return pd.Series(beta_distribution.ppf(q, alpha, beta))


def conversion_rates(
    totals: DataFrame, model: AIModel, as_of: date, prior_alpha: float, prior_beta: float
) -> DataFrame:
    """Beta posteriors from window totals: alpha = prior + conversions, beta = prior + non-converting impressions."""
    alpha = F.lit(prior_alpha) + F.col("effective_conversions")
    beta = F.lit(prior_beta) + F.greatest(F.col("effective_impressions") - F.col("effective_conversions"), F.lit(0.0))
    return totals.select(
        F.lit(as_of).alias("as_of_date"),
        F.lit(model.name).alias("model_name"),
        *RATE_KEYS,
        "impressions",
        "conversions",
        "effective_impressions",
        "effective_conversions",
        F.when(F.col("impressions") > 0, F.col("conversions") / F.col("impressions")).alias("conversion_rate"),
        alpha.alias("alpha"),
        beta.alias("beta"),
        _beta_quantile(alpha, beta, F.lit(0.025)).alias("ci_low"),
        _beta_quantile(alpha, beta, F.lit(0.975)).alias("ci_high"),
        (
            (F.col("impressions") < model.cold_start.min_impressions)
            | (F.col("conversions") < model.cold_start.min_conversions)
        ).alias("cold_start"),
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
    stats = warehouse.read(OFFER_STATS_DAILY)
    rates = None
    for model in catalog.active_models():
        assigned = spark.createDataFrame(catalog.placements_of(model), "placement_id string, channel string")
        totals = window_totals(stats, model, run_date).join(assigned, ["placement_id", "channel"])
        model_rates = conversion_rates(totals, model, run_date, settings.prior_alpha, settings.prior_beta)
        rates = model_rates if rates is None else rates.unionByName(model_rates)
    if rates is not None:
        warehouse.replace_partition(rates, OFFER_CONVERSION_RATES, run_date)
    written = warehouse.read(OFFER_CONVERSION_RATES)
    counted_caps = caps.write_counts(spark, warehouse, interactions, catalog, run_date)
    return {
        "stats_dates": f"{first}..{run_date}",
        "profile_snapshot": str(snapshot) if snapshot else None,
        "stats_rows": stats.filter(F.col("event_date").between(first, run_date)).count(),
        "rate_rows": written.filter(F.col("as_of_date") == run_date).count() if rates is not None else 0,
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
