"""Daily offer facts and per-model conversion rates.

Reads  `interactions` (landing dates [D - L, D + L], L = lateness days: all that can hold the impressions of
       event dates [D - L, D] and their clicks), `profile_segments` (the latest snapshot on or before D, for
       the segments of active personalized models) and `offer_stats_daily` (the models' look-back windows).
Writes `offer_stats_daily`      per event_date, dataset, offer_id, placement_id, channel, segment (`*` = all traffic),
                                traffic_type (`model`, `random`, `unknown` when not logged; a conversion has its
                                impression's): impressions, conversions (one per clicked proposition item, on its
                                impression's date), distinct profiles, orphan conversions (clicks whose impression
                                is unknown);
                                replaces event dates [D - L, D], so late clicks update their impression's day;
       `slot_stats_daily`       per event_date, dataset, placement_id, channel, segment, slot, offer_id,
                                traffic_type and logged propensity: impressions and conversions (off-policy
                                evaluation's input); replaces event dates [D - L, D];
       `offer_conversion_rates` per as_of_date (D), model_name, offer x placement x channel x segment: counts in the
                                look-back window of the model's datasets (optionally decayed), rate, Beta
                                posterior, 95% credible interval, cold start; replaces as_of_date = D;
       `offer_cap_counts`       per as_of_date (D): the frequency caps' counts (see offerrank.jobs.caps);
       `feature_stats_daily`    for each active contextual model, from its datasets' interactions, per event_date,
                                placement, channel, offer and cell
                                (its features' levels: profile attributes from the latest `profile_attributes`
                                snapshot on or before D, context from the impression): impressions and conversions;
                                replaces event dates [D - L, D];
       `model_parameters`       per as_of_date (D) and contextual model due to train (see AIModel.trains_on): the
                                trained posterior per offer (see offerrank.contextual); replaces that partition.
Run: `offerrank aggregate --date D` or `spark-submit jobs/aggregate.py --date D`.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.bandit import RATE_KEYS, facts_of, posteriors
from offerrank.catalog import AIModel, Catalog, ModelStatus
from offerrank.contextual import train
from offerrank.features import SEGMENT, feature_name, spark_level
from offerrank.jobs import caps
from offerrank.settings import Settings, parse_flag
from offerrank.storage import Warehouse
from offerrank.tables import (
    ALL_SEGMENTS,
    FACT_COUNTS,
    FEATURE_STATS_DAILY,
    INTERACTIONS,
    MODEL_PARAMETERS,
    OFFER_CONVERSION_RATES,
    OFFER_STATS_DAILY,
    PROFILE_ATTRIBUTES,
    PROFILE_SEGMENTS,
    SLOT_STATS_DAILY,
    UNKNOWN_TRAFFIC,
    latest_on_or_before,
)

STATS_KEYS = ["event_date", "dataset", "offer_id", "placement_id", "channel", "segment", "traffic_type"]
SLOT_KEYS = [
    "event_date",
    "dataset",
    "placement_id",
    "channel",
    "segment",
    "slot",
    "offer_id",
    "traffic_type",
    "propensity",
]
# one shown (or clicked) proposition item in a segment: a click is attributed within its event dataset
ITEM_KEYS = ["dataset", "proposition_id", "offer_id", "segment"]


def attribution(interactions: DataFrame, memberships: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """The interactions tagged with their segments (`*`, and through `memberships` (profile_id, segment) each
    segment of the profile), then (impressions, clicked): the tagged impressions, and one row per clicked
    proposition item x segment (`shown_items` groups the impressions the same way)."""
    interactions = interactions.withColumn("traffic_type", F.coalesce("traffic_type", F.lit(UNKNOWN_TRAFFIC)))
    tagged = interactions.withColumn("segment", F.lit(ALL_SEGMENTS))
    if memberships is not None:
        tagged = tagged.unionByName(
            interactions.join(memberships, "profile_id").select(*interactions.columns, "segment")
        )
    impressions = tagged.filter(F.col("interaction") == "impression")
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
    return impressions, clicked


def shown_items(impressions: DataFrame, carry: tuple[str, ...] = ()) -> DataFrame:
    """One row per shown proposition item x segment of `impressions`: its first date, placement, channel, traffic
    type, slot and logged propensity (and the columns `carry`)."""
    return impressions.groupBy(*ITEM_KEYS).agg(
        F.min("event_date").alias("event_date"),
        F.first("placement_id").alias("placement_id"),
        F.first("channel").alias("channel"),
        F.first("traffic_type").alias("traffic_type"),
        F.first("slot", ignorenulls=True).alias("slot"),
        F.first("propensity", ignorenulls=True).alias("propensity"),
        *[F.first(column).alias(column) for column in carry],
    )


def daily_stats(
    interactions: DataFrame, first_date: date, last_date: date, memberships: DataFrame | None = None
) -> DataFrame:
    """Facts per event date in [first_date, last_date] and segment; conversions go to their impression's date.

    Every interaction counts in segment `*` (all traffic) and, through `memberships` (profile_id, segment), in each
    segment its profile belongs to; a conversion counts in its impression's traffic type."""
    impressions, clicked = attribution(interactions, memberships)
    # A click needs its own item's impression only: the few clicked items' impressions are grouped, not every
    # shown item's (a group per impression, sorted: its string columns keep it from hash aggregation).
    clicked_items = impressions.join(clicked.select(*ITEM_KEYS), ITEM_KEYS, "left_semi")
    attributed = clicked.join(shown_items(clicked_items), ITEM_KEYS, "left")
    conversions = (
        attributed.filter(F.col("event_date").isNotNull()).groupBy(*STATS_KEYS).agg(F.count("*").alias("conversions"))
    )
    orphans = (
        attributed.filter(F.col("event_date").isNull())
        .groupBy(
            F.col("click_date").alias("event_date"),
            "dataset",
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
    impressions, clicked = attribution(interactions, memberships)
    shown = shown_items(impressions)
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


def feature_stats(
    interactions: DataFrame,
    first_date: date,
    last_date: date,
    model: AIModel,
    placements: list[tuple[str, str]],
    attributes: DataFrame | None,
    memberships: DataFrame | None = None,
) -> DataFrame:
    """Per event date in [first_date, last_date], placement x channel of `placements`, offer and cell: the shown
    proposition items and those clicked, for a contextual `model`. A cell is the item's features as `name=level`:
    profile attributes from `attributes` (profile_id, attribute, value), context from the impression and, for a
    model with segments, the first of them the profile is in (from `memberships`: profile_id, segment)."""
    assigned = interactions.sparkSession.createDataFrame(placements, "placement_id string, channel string")
    learned = interactions.filter(F.col("dataset").isin(list(model.datasets)))
    served = learned.join(F.broadcast(assigned), ["placement_id", "channel"])
    impressions, clicked = attribution(served)
    shown = shown_items(impressions, carry=("profile_id", "device", "hour"))
    converted = clicked.select(*ITEM_KEYS, F.lit(1).alias("converted"))
    items = shown.filter(F.col("event_date").between(first_date, last_date)).join(converted, ITEM_KEYS, "left")
    names = [feature.name for feature in model.attributes]
    if names:
        wide = (
            attributes.filter(F.col("attribute").isin(names))
            .groupBy("profile_id")
            .pivot("attribute", names)
            .agg(F.first("value"))
            if attributes is not None
            else interactions.sparkSession.createDataFrame([], "profile_id string")
        )
        for name in names:
            if name not in wide.columns:
                wide = wide.withColumn(name, F.lit(None).cast("string"))
        items = items.join(
            wide.select("profile_id", *[F.col(f"`{n}`").alias(f"attribute_{n}") for n in names]), "profile_id", "left"
        )
    if model.segments:
        order = F.array_position(F.array(*map(F.lit, model.segments)), F.col("segment"))
        first_segment = (
            memberships.filter(F.col("segment").isin(*model.segments))
            .groupBy("profile_id")
            .agg(F.min_by("segment", order).alias(SEGMENT))
            if memberships is not None
            else interactions.sparkSession.createDataFrame([], f"profile_id string, {SEGMENT} string")
        )
        items = items.join(first_segment, "profile_id", "left")
    raw = {feature.name: F.col(f"`attribute_{feature.name}`") for feature in model.attributes}
    raw |= {SEGMENT: F.col(SEGMENT)} if model.segments else {}
    raw |= {feature.name: F.col(feature.name) for feature in model.context}
    cell = F.array(*[F.concat(F.lit(feature_name(f.name, "")), spark_level(f, raw[f.name])) for f in model.features])
    converted = F.coalesce(F.sum("converted"), F.lit(0)).cast("long")
    return (
        items.groupBy("event_date", "placement_id", "channel", "offer_id", cell.alias("features"))
        .agg(F.count("*").alias("impressions"), converted.alias("conversions"))
        .withColumn("model_name", F.lit(model.name))
        .select(*FEATURE_STATS_DAILY.column_names)
    )


def train_contextual_models(warehouse: Warehouse, models: list[AIModel], run_date: date) -> tuple[list[str], list[str]]:
    """Train each contextual model due on `run_date` from its window of `feature_stats_daily` into
    `model_parameters`; (trained, not due) model names."""
    trained, waiting = [], []
    stats, parameters = warehouse.read(FEATURE_STATS_DAILY), warehouse.read(MODEL_PARAMETERS)
    for model in models:
        last = None
        if parameters is not None:
            last = (
                parameters.filter((F.col("model_name") == model.name) & (F.col("as_of_date") < run_date))
                .agg(F.max("as_of_date"))
                .first()[0]
            )
        if not model.trains_on(run_date, last):
            waiting.append(model.name)
            continue
        cells = stats.filter(
            (F.col("model_name") == model.name) & F.col("event_date").between(model.window_start(run_date), run_date)
        ).toPandas()
        fitted = train(cells, model, run_date)
        warehouse.replace_where(
            warehouse.frame(fitted, MODEL_PARAMETERS),
            MODEL_PARAMETERS,
            {"as_of_date": run_date, "model_name": model.name},
        )
        trained.append(model.name)
    return trained, waiting


def window_facts(stats: DataFrame, as_of: date, days: int) -> pd.DataFrame:
    """The daily facts of the `days` ending `as_of` per dataset, traffic types summed: what the models' posteriors
    read (a few rows per dataset, offer, placement, segment and day, so the posteriors are computed in pandas)."""
    return (
        stats.filter(F.col("event_date").between(as_of - timedelta(days=days - 1), as_of))
        .groupBy("event_date", "dataset", *RATE_KEYS)
        .agg(F.sum("impressions").alias("impressions"), F.sum("conversions").alias("conversions"))
        .toPandas()
    )


def active_model_rates(facts: pd.DataFrame, catalog: Catalog, as_of: date, settings: Settings) -> pd.DataFrame:
    """Every active AI model's posteriors as of `as_of` on the placements it ranks, from the facts of its datasets
    (`offer_conversion_rates`)."""
    return pd.concat(
        [
            posteriors(
                facts_of(facts, model.datasets, FACT_COUNTS),
                model,
                catalog.placements_of(model),
                as_of,
                settings.prior_alpha,
                settings.prior_beta,
            )
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
    if not segments:
        return None, None
    latest, snapshot = latest_snapshot(profile_segments, as_of)
    if snapshot is None:
        return None, None
    return latest, snapshot.filter(F.col("segment").isin(*segments)).select("profile_id", "segment")


def latest_snapshot(profiles: DataFrame | None, as_of: date) -> tuple[date | None, DataFrame | None]:
    """The rows of a profile table's latest snapshot on or before `as_of`, and its date."""
    if profiles is None:
        return None, None
    snapshots = [row.snapshot_date for row in profiles.select("snapshot_date").distinct().collect()]
    latest = latest_on_or_before(snapshots, as_of)
    return (latest, profiles.filter(F.col("snapshot_date") == latest)) if latest else (None, None)


def run(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, full_refresh: bool = False) -> dict:
    """Write the date's facts and every active model's rates; returns counts for the run summary."""
    warehouse = Warehouse(spark, settings)
    warehouse.require_datasets(INTERACTIONS, OFFER_STATS_DAILY, SLOT_STATS_DAILY)
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
        warehouse.replace_partition(warehouse.frame(rates, OFFER_CONVERSION_RATES), OFFER_CONVERSION_RATES, run_date)
    contextual = [model for model in models if model.contextual]
    trained, waiting = [], []
    if contextual:
        _, attributes = latest_snapshot(warehouse.read(PROFILE_ATTRIBUTES), run_date)
        cells = [
            feature_stats(window, first, run_date, model, catalog.placements_of(model), attributes, memberships)
            for model in contextual
        ]
        warehouse.replace_range(reduce(DataFrame.unionByName, cells), FEATURE_STATS_DAILY, first, run_date)
        trained, waiting = train_contextual_models(warehouse, contextual, run_date)
    counted_caps = caps.write_counts(spark, warehouse, interactions, catalog, run_date)
    return {
        "stats_dates": f"{first}..{run_date}",
        "profile_snapshot": str(snapshot) if snapshot else None,
        "stats_rows": stats.filter(F.col("event_date").between(first, run_date)).count(),
        "rate_rows": len(rates) if models else 0,
        "caps_counted": counted_caps,
        "models_trained": trained,
        "models_not_due": waiting,
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
