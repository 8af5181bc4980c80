"""The contextual models' part of the aggregate step: their feature cells and their training.

Reads  `interactions` (the aggregate's window), the latest `profile_attributes` snapshot on or before D and the
       segment memberships the aggregate step read (both passed in), `feature_stats_daily` and `model_parameters`.
Writes `feature_stats_daily` for each active contextual model, from its datasets' interactions, per event_date,
                             placement, channel, offer and cell (its features' levels: profile attributes, context
                             from the impression): impressions and conversions; replaces event dates [D - L, D];
       `model_parameters`    per as_of_date (D) and contextual model due to train (see AIModel.trains_on): the trained
                             posterior per offer (see offerrank.learning.contextual.training); replaces that partition;
       `model_trainings`     per as_of_date and model trained: trained, or failed and why. A model whose training
                             fails (any error) keeps its last parameters, and its placements their last good lists
                             (see offerrank.jobs.rank.held_back); the other models still train.
Run as part of the aggregate step (`offerrank aggregate --date D`, `spark-submit jobs/aggregate.py --date D`).
"""

from __future__ import annotations

import logging
from datetime import date
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from offerrank.catalog import AIModel, Catalog
from offerrank.engines.delta_rs import one_line
from offerrank.engines.delta_spark import Warehouse
from offerrank.errors import Unavailable
from offerrank.events.attribution import ITEM_KEYS, attribution, shown_items
from offerrank.learning.contextual.features import SEGMENT, feature_name, spark_level
from offerrank.learning.contextual.training import train
from offerrank.tables import FEATURE_STATS_DAILY, MODEL_PARAMETERS, MODEL_TRAININGS

log = logging.getLogger(__name__)


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
        pivoted: list[bool | float | int | str] = list(names)
        wide = (
            attributes.filter(F.col("attribute").isin(names))
            .groupBy("profile_id")
            .pivot("attribute", pivoted)
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
    conversions = F.coalesce(F.sum("converted"), F.lit(0)).cast("long")
    return (
        items.groupBy("event_date", "placement_id", "channel", "offer_id", cell.alias("features"))
        .agg(F.count("*").alias("impressions"), conversions.alias("conversions"))
        .withColumn("model_name", F.lit(model.name))
        .select(*FEATURE_STATS_DAILY.column_names)
    )


def training_record(model_name: str, as_of: date, outcome: pd.DataFrame | str) -> pd.DataFrame:
    """The `model_trainings` row of one model's training on `as_of`: trained (`outcome`: its parameters) or failed
    (`outcome`: why)."""
    row: tuple[object, ...]
    if isinstance(outcome, str):
        row = (as_of, model_name, "failed", outcome, None)
    else:
        row = (as_of, model_name, "trained", None, len(outcome))
    return pd.DataFrame([row], columns=MODEL_TRAININGS.column_names)


def guarded_training(cells: pd.DataFrame, model: AIModel, run_date: date) -> pd.DataFrame | str:
    """`train`'s parameters, or why it failed: any error (a singular system, a non-finite posterior, a bug) is one
    model's, so the others still train."""
    try:
        return train(cells, model, run_date)
    except Exception as error:
        log.warning("contextual model %s did not train on %s", model.name, run_date, exc_info=True)
        return one_line(error)


def train_contextual_models(
    warehouse: Warehouse, models: list[AIModel], run_date: date
) -> tuple[list[str], list[str], dict[str, str]]:
    """Train each contextual model due on `run_date` from its window of `feature_stats_daily` into
    `model_parameters`, and record each training in `model_trainings`; (trained, not due, failed: why) models. A
    model that fails keeps its last parameters (its `run_date` partition is left as it was)."""
    trained, waiting, failed = [], [], {}
    stats, parameters = warehouse.read(FEATURE_STATS_DAILY), warehouse.read(MODEL_PARAMETERS)
    if stats is None:
        raise Unavailable(f"no {FEATURE_STATS_DAILY.name} yet: the aggregate step writes the cells it trains from")
    for model in models:
        last = None
        if parameters is not None:
            latest = (
                parameters.filter((F.col("model_name") == model.name) & (F.col("as_of_date") < run_date))
                .agg(F.max("as_of_date"))
                .first()
            )
            last = latest[0] if latest is not None else None
        if not model.trains_on(run_date, last):
            waiting.append(model.name)
            continue
        cells = stats.filter(
            (F.col("model_name") == model.name) & F.col("event_date").between(model.window_start(run_date), run_date)
        ).toPandas()
        outcome = guarded_training(cells, model, run_date)
        partition = {"as_of_date": run_date, "model_name": model.name}
        if isinstance(outcome, str):
            failed[model.name] = outcome
        else:
            warehouse.replace_where(warehouse.frame(outcome, MODEL_PARAMETERS), MODEL_PARAMETERS, partition)
            trained.append(model.name)
        record = training_record(model.name, run_date, outcome)
        warehouse.replace_where(warehouse.frame(record, MODEL_TRAININGS), MODEL_TRAININGS, partition)
    return trained, waiting, failed


def write_and_train(
    warehouse: Warehouse,
    catalog: Catalog,
    models: list[AIModel],
    interactions: DataFrame,
    first_date: date,
    run_date: date,
    attributes: DataFrame | None,
    memberships: DataFrame | None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """Replace event dates [first_date, run_date] of `feature_stats_daily` by the cells of the contextual `models`
    from `interactions`, then train those due; (trained, not due, failed: why) models."""
    cells = [
        feature_stats(interactions, first_date, run_date, model, catalog.placements_of(model), attributes, memberships)
        for model in models
    ]
    warehouse.replace_range(reduce(DataFrame.unionByName, cells), FEATURE_STATS_DAILY, first_date, run_date)
    trained, waiting, failed = train_contextual_models(warehouse, models, run_date)
    log.info(
        "contextual models trained: %s; not due: %s; failed: %s",
        ", ".join(trained) or "none",
        ", ".join(waiting) or "none",
        "; ".join(f"{name} ({why})" for name, why in failed.items()) or "none",
    )
    return trained, waiting, failed
