"""Daily offer facts and per-model conversion rates.

Reads  `interactions` (its own landing date D, any landing day of [D - L, D + L] (L = lateness days) whose
       contributions are missing or out of date, and the clicked items' impressions in that window),
       `offer_stats_landing` / `slot_stats_landing` (the window's contributions), `profile_segments` (for each
       landing day the latest snapshot on or before it, for the segments of active personalized models) and
       `offer_stats_daily` (the models' look-back windows).
Writes `offer_stats_landing`    per landing_date: what that day's impressions add to `offer_stats_daily` (impressions
                                and a HyperLogLog sketch of their profiles per event_date and the keys below), and
                                the `basis` it was tagged on (profile snapshot, segments); replaces the landing
                                days it aggregates (normally D alone);
       `slot_stats_landing`     per landing_date: that day's shown proposition items per `slot_stats_daily` key;
       `offer_stats_daily`      per event_date, dataset, offer_id, placement_id, channel, segment (`*` = all traffic),
                                traffic_type (`model`, `random`, `unknown` when not logged; a conversion has its
                                impression's): impressions, conversions (one per clicked proposition item, on its
                                impression's date), distinct profiles (estimated from the sketches), orphan
                                conversions (clicks whose impression is unknown); replaces event dates [D - L, D]
                                from the window's contributions and clicks, so late clicks update their
                                impression's day;
       `slot_stats_daily`       per event_date, dataset, placement_id, channel, segment, slot, offer_id,
                                traffic_type and logged propensity: impressions and conversions (off-policy
                                evaluation's input); replaces event dates [D - L, D];
       `offer_conversion_rates` per as_of_date (D), model_name, offer x placement x channel x segment: counts in the
                                look-back window of the model's datasets (optionally decayed), rate, Beta
                                posterior, 95% credible interval, cold start; replaces as_of_date = D;
       `offer_cap_counts`       per as_of_date (D): the frequency caps' counts (see offerrank.jobs.caps);
       `feature_stats_daily`,   the contextual models' feature cells and trained posteriors (see
       `model_parameters`       offerrank.jobs.contextual, which this step runs).
Run: `offerrank aggregate --date D` or `spark-submit jobs/aggregate.py --date D`.

Which impression a click belongs to, and the segments a row counts in, are `offerrank.events.attribution`'s rules.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import Catalog, ModelStatus
from offerrank.engines.delta_spark import Warehouse
from offerrank.events.attribution import attributed_clicks, shown_items, tagged
from offerrank.jobs import caps
from offerrank.jobs import contextual as contextual_job
from offerrank.learning.bandit import RATE_KEYS, Prior, facts_of, posteriors
from offerrank.settings import Settings, parse_flag
from offerrank.tables import (
    ALL_SEGMENTS,
    FACT_COUNTS,
    INTERACTIONS,
    OFFER_CONVERSION_RATES,
    OFFER_STATS_DAILY,
    OFFER_STATS_LANDING,
    PROFILE_ATTRIBUTES,
    PROFILE_SEGMENTS,
    SLOT_STATS_DAILY,
    SLOT_STATS_LANDING,
    Table,
)

log = logging.getLogger(__name__)

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


def landing_contributions(interactions: DataFrame, memberships: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """What the impressions of `interactions` add to the daily facts, per landing date: (per STATS_KEYS, the
    impressions and a sketch of their distinct profiles; per SLOT_KEYS, the shown proposition items that logged a
    slot). A landing day's share does not change when later days land, so each night aggregates one of them."""
    impressions = tagged(interactions.filter(F.col("interaction") == "impression"), memberships)
    offers = impressions.groupBy("landing_date", *STATS_KEYS).agg(
        F.count("*").alias("impressions"), F.hll_sketch_agg("profile_id").alias("profiles_sketch")
    )
    slots = (
        shown_items(impressions, by=("landing_date",))
        .filter(F.col("slot").isNotNull())
        .groupBy("landing_date", *SLOT_KEYS)
        .agg(F.count("*").alias("impressions"))
    )
    return offers, slots


def summed(parts: list[DataFrame], keys: list[str], counts: list[str]) -> DataFrame:
    """The union of `parts` (each with `keys` and some of `counts`) with `counts` summed per key (missing: 0)."""
    aligned = [
        part.select(*keys, *[(F.col(c) if c in part.columns else F.lit(0)).cast("long").alias(c) for c in counts])
        for part in parts
    ]
    return reduce(DataFrame.unionByName, aligned).groupBy(*keys).agg(*[F.sum(c).alias(c) for c in counts])


def daily_stats(contributions: DataFrame, attributed: DataFrame, first_date: date, last_date: date) -> DataFrame:
    """Facts per event date in [first_date, last_date] and segment from the landing days' `contributions` and the
    `attributed` clicks: a conversion counts on its impression's date, in its impression's traffic type."""
    in_range = F.col("event_date").between(first_date, last_date)
    shown = (
        contributions.filter(in_range)
        .groupBy(*STATS_KEYS)
        .agg(
            F.sum("impressions").alias("impressions"),
            F.hll_sketch_estimate(F.hll_union_agg("profiles_sketch")).alias("profiles"),
        )
    )
    conversions = attributed.filter(F.col("event_date").isNotNull()).select(*STATS_KEYS, F.lit(1).alias("conversions"))
    orphans = attributed.filter(F.col("event_date").isNull()).select(
        F.col("click_date").alias("event_date"),
        "dataset",
        "offer_id",
        F.col("click_placement").alias("placement_id"),
        F.col("click_channel").alias("channel"),
        "segment",
        F.col("click_traffic_type").alias("traffic_type"),
        F.lit(1).alias("orphan_conversions"),
    )
    return summed([shown, conversions.filter(in_range), orphans.filter(in_range)], STATS_KEYS, list(FACT_COUNTS))


def slot_stats(contributions: DataFrame, attributed: DataFrame, first_date: date, last_date: date) -> DataFrame:
    """Per event date in [first_date, last_date], placement, channel, segment, slot, offer, traffic type and
    logged propensity: impressions (shown proposition items, from the landing days' slot `contributions`) and
    conversions (those of them clicked), what off-policy evaluation weighs. Impressions logged without a slot
    (ingested before slots were kept) are left out."""
    in_range = F.col("event_date").between(first_date, last_date)
    clicked = attributed.filter(in_range & F.col("slot").isNotNull()).select(*SLOT_KEYS, F.lit(1).alias("conversions"))
    counts = ["impressions", "conversions"]
    return summed([contributions.filter(in_range), clicked], SLOT_KEYS, counts).filter(F.col("impressions") > 0)


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
                Prior.of(settings),
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


def latest_snapshot(warehouse: Warehouse, table: Table, as_of: date) -> DataFrame | None:
    """The rows of a profile table's latest snapshot on or before `as_of` (None: no snapshot), found in its log."""
    latest = snapshot_dates(warehouse.settings, table, {as_of})[as_of]
    if latest is None:
        return None
    snapshots = warehouse.read(table)
    assert snapshots is not None, f"{table.name} has a snapshot in its log"
    return snapshots.filter(F.col("snapshot_date") == latest)


def snapshot_memberships(
    profile_segments: DataFrame | None, segments: list[str], snapshots: set[date]
) -> DataFrame | None:
    """(snapshot_date, profile_id, segment) of `segments` in the profile `snapshots`."""
    if not segments or not snapshots or profile_segments is None:
        return None
    return profile_segments.filter(F.col("snapshot_date").isin(*snapshots) & F.col("segment").isin(*segments)).select(
        "snapshot_date", "profile_id", "segment"
    )


def contribution_basis(snapshot: date | None, segments: list[str]) -> str:
    """What a landing day's contributions were tagged with: its profile snapshot and the segments in use."""
    return f"snapshot={snapshot or '-'};segments={','.join(segments)}"


def landing_days_to_refresh(
    settings: Settings, landed: dict[date, int], bases: dict[date, str], full_refresh: bool, run_date: date
) -> list[date]:
    """`run_date` and the landing days of `landed` (day: when its interactions were written) whose contributions are
    missing, older than its interactions or tagged on another of `bases` (day: basis); all with `full_refresh`.
    Normally that is the run date alone: each night aggregates its own landing day."""
    from offerrank.engines.delta_rs import open_table, partition_write_times, read_arrow

    if full_refresh:
        return sorted({*landed, run_date})
    opened = open_table(settings, OFFER_STATS_LANDING)
    written = partition_write_times(opened, "landing_date")
    stored = {}
    if opened is not None and landed:
        rows = read_arrow(
            opened, ["landing_date", "basis"], [("landing_date", "in", [str(day) for day in landed])]
        ).to_pylist()
        stored = {row["landing_date"]: row["basis"] for row in rows}
    stale = {day for day, at in landed.items() if written.get(day, -1) < at or stored.get(day) != bases[day]}
    return sorted(stale | {run_date})


def snapshot_dates(settings: Settings, table: Table, days: set[date]) -> dict[date, date | None]:
    """Each day's snapshot of a profile table: its latest `snapshot_date` on or before the day (None: none), from
    the table's log."""
    from offerrank.engines.delta_rs import latest_partition, open_table

    opened = open_table(settings, table)
    return {day: latest_partition(opened, "snapshot_date", day) if opened is not None else None for day in days}


def write_contributions(
    warehouse: Warehouse, landed: DataFrame, memberships: DataFrame | None, bases: dict[date, str]
) -> None:
    """Replace the contributions of the landing days in `bases` by those of their interactions `landed`."""
    offers, slots = landing_contributions(landed, memberships)
    basis = F.create_map(*[F.lit(value) for day, day_basis in bases.items() for value in (day, day_basis)])
    days = {"landing_date": sorted(bases)}
    warehouse.replace_where(offers.withColumn("basis", basis[F.col("landing_date")]), OFFER_STATS_LANDING, days)
    warehouse.replace_where(slots, SLOT_STATS_LANDING, days)


def run(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, full_refresh: bool = False) -> dict:
    """Write the date's facts and every active model's rates; returns counts for the run summary."""
    from offerrank.engines.delta_rs import open_table, partition_write_times

    warehouse = Warehouse(spark, settings)
    warehouse.require_datasets(INTERACTIONS, OFFER_STATS_DAILY, SLOT_STATS_DAILY)
    interactions = warehouse.read(INTERACTIONS)
    if interactions is None:
        raise FileNotFoundError("no interactions table yet: ingest a date first")
    lateness = settings.lateness_days
    longest = max((m.lookback_days for m in catalog.ai_models), default=1)
    first = run_date - timedelta(days=max(longest - 1, lateness) if full_refresh else lateness)
    last_landing = run_date + timedelta(days=lateness)
    window = interactions.filter(F.col("landing_date").between(first, last_landing))
    landed = {
        day: at
        for day, at in partition_write_times(open_table(settings, INTERACTIONS), "landing_date").items()
        if first <= day <= last_landing
    }
    segments = segments_in_use(catalog)
    snapshot_of = snapshot_dates(settings, PROFILE_SEGMENTS, {*landed, run_date})
    bases = {day: contribution_basis(snapshot, segments) for day, snapshot in snapshot_of.items()}
    used = {snapshot for snapshot in snapshot_of.values() if snapshot is not None}
    memberships = snapshot_memberships(warehouse.read(PROFILE_SEGMENTS), segments, used)
    if memberships is not None:  # an interaction counts in the segments of its landing day's snapshot
        snapshot_date = F.create_map(*[F.lit(v) for pair in snapshot_of.items() if pair[1] for v in pair])
        window = window.withColumn("snapshot_date", snapshot_date[F.col("landing_date")])
    refresh = landing_days_to_refresh(settings, landed, bases, full_refresh, run_date)
    log.info("aggregating landing days %s; facts of event dates %s..%s", ", ".join(map(str, refresh)), first, run_date)
    landed_days = window.filter(F.col("landing_date").isin(refresh))
    write_contributions(warehouse, landed_days, memberships, {day: bases[day] for day in refresh})
    # read twice (facts and slots): the window's clicked items, far fewer rows than its impressions
    attributed = attributed_clicks(window, memberships).localCheckpoint()
    for daily, landing, facts in (
        (OFFER_STATS_DAILY, OFFER_STATS_LANDING, daily_stats),
        (SLOT_STATS_DAILY, SLOT_STATS_LANDING, slot_stats),
    ):
        written = warehouse.read(landing)
        assert written is not None, f"{landing.name} written by write_contributions"
        contributions = written.filter(F.col("landing_date").between(first, last_landing))
        warehouse.replace_range(facts(contributions, attributed, first, run_date), daily, first, run_date)
    stats = warehouse.read(OFFER_STATS_DAILY)
    assert stats is not None, f"{OFFER_STATS_DAILY.name} written just above"
    models = catalog.active_models()
    if models:
        rates = active_model_rates(window_facts(stats, run_date, longest), catalog, run_date, settings)
        warehouse.replace_partition(warehouse.frame(rates, OFFER_CONVERSION_RATES), OFFER_CONVERSION_RATES, run_date)
    contextual = [model for model in models if model.contextual]
    trained: list[str] = []
    waiting: list[str] = []
    failed: dict[str, str] = {}
    if contextual:
        members = (
            None
            if memberships is None
            else memberships.filter(F.col("snapshot_date") == F.lit(snapshot_of[run_date])).select(
                "profile_id", "segment"
            )
        )
        attributes = latest_snapshot(warehouse, PROFILE_ATTRIBUTES, run_date)
        trained, waiting, failed = contextual_job.write_and_train(
            warehouse, catalog, contextual, window, first, run_date, attributes, members
        )
    counted_caps = caps.write_counts(spark, warehouse, interactions, catalog, run_date)
    return {
        "stats_dates": f"{first}..{run_date}",
        "landing_days_aggregated": [str(day) for day in refresh],
        "profile_snapshot": str(snapshot_of[run_date]) if snapshot_of[run_date] else None,
        "stats_rows": stats.filter(F.col("event_date").between(first, run_date)).count(),
        "rate_rows": len(rates) if models else 0,
        "caps_counted": counted_caps,
        "models_trained": trained,
        "models_not_due": waiting,
        "models_failed": failed,  # each kept its last parameters; its placements keep their last good lists
    }


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/aggregate.py --date YYYY-MM-DD [--full-refresh]`."""
    from offerrank.engines.process import configure_logging
    from offerrank.jobs import job_session

    configure_logging()
    parser = argparse.ArgumentParser(prog="aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--full-refresh", type=parse_flag, nargs="?", const=True, default=False)
    args = parser.parse_args(argv)
    spark, settings, catalog = job_session("aggregate")
    log.info("aggregate %s: %s", args.date, run(spark, settings, catalog, args.date, args.full_refresh))
    return 0


if __name__ == "__main__":
    from offerrank.engines.process import exit_cleanly

    exit_cleanly(main())
