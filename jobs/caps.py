"""Frequency-capping counts: how many impressions and clicks each capped offer had in its caps' current periods.

Reads  `interactions` (landing dates from the earliest period start to D).
Writes `offer_cap_counts` per as_of_date (D): offer_id, cap (the rule's key, `event:per:period`), profile_id (null for
       a `total` cap), events: the cap's impressions or clicked items (a proposition item clicked twice counts
       once) with event dates from the start of the cap's period on D + 1, the day the counts serve, through D;
       replaces as_of_date = D. A cap whose period starts on D + 1 (every `day` cap) has no row: it starts at 0.
Run as part of the aggregate step. The lookup adds what it served itself since D.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import Catalog
from offerrank.engines.delta_spark import Warehouse
from offerrank.tables import OFFER_CAP_COUNTS

log = logging.getLogger(__name__)

INTERACTION_OF_EVENT = {"impression": "impression", "click": "conversion"}
RULE_SCHEMA = "offer_id string, cap string, interaction string, per_profile boolean, window_start date"


def cap_rules(catalog: Catalog, run_date: date) -> list[tuple[str, str, str, bool, date]]:
    """(offer, cap key, interaction, per profile, first event date counted) of every cap whose period on the
    serving day (D + 1) started on or before D."""
    serving_day = run_date + timedelta(days=1)
    rules = []
    for offer in catalog.offers:
        for cap in offer.caps:
            start = cap.window_start(serving_day, offer.start_date)
            if start <= run_date:
                rules.append((offer.id, cap.key, INTERACTION_OF_EVENT[cap.event], cap.per == "profile", start))
    return rules


def cap_counts(interactions: DataFrame, rules: DataFrame, run_date: date) -> DataFrame:
    """Events per (offer, cap) and, for per-profile caps, per profile, in each cap's window through `run_date`."""
    matched = interactions.join(
        F.broadcast(rules),
        (interactions["offer_id"] == rules["offer_id"])
        & (interactions["interaction"] == rules["interaction"])
        & interactions["event_date"].between(rules["window_start"], F.lit(run_date)),
    ).select(
        rules["offer_id"],
        "cap",
        F.when(rules["per_profile"], interactions["profile_id"]).alias("profile_id"),
        "per_profile",
        "proposition_id",
    )
    return (
        matched.filter(~F.col("per_profile") | F.col("profile_id").isNotNull())
        .groupBy("offer_id", "cap", "profile_id")
        .agg(F.countDistinct("proposition_id").cast("long").alias("events"))
        .select(F.lit(run_date).alias("as_of_date"), "offer_id", "cap", "profile_id", "events")
    )


def write_counts(
    spark: SparkSession, warehouse: Warehouse, interactions: DataFrame, catalog: Catalog, run_date: date
) -> int:
    """Replace the counts of `run_date`; returns how many caps were counted."""
    rules = cap_rules(catalog, run_date)
    if rules:
        first = min(rule[-1] for rule in rules)
        window = interactions.filter(F.col("landing_date").between(first, run_date))
        counts = cap_counts(window, spark.createDataFrame(rules, RULE_SCHEMA), run_date)
    else:
        counts = spark.createDataFrame([], OFFER_CAP_COUNTS.spark_schema())
    warehouse.replace_partition(counts, OFFER_CAP_COUNTS, run_date)
    return len(rules)
