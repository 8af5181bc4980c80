"""Rank the eligible offers of every active decision placement that uses one ranking method.

Reads  the registry's catalog, `offer_conversion_rates` (as_of_date = D, for methods that use posteriors).
Writes `ranking_stage` — one ranking method's ranked lists of a run, replacing its own as_of_date/unit partition
                         (one task per method in Airflow, side by side); `offerrank.jobs.publish` publishes them.
The methods themselves are strategies in `offerrank.ranking`.
Run: `offerrank rank --date D` (rank every method, then publish) or `spark-submit jobs/rank.py --date D --unit U`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import NamedTuple

import pandas as pd
from delta.exceptions import ProtocolChangedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import Catalog
from offerrank.ranking import method_of
from offerrank.ranking.base import RankGroup
from offerrank.settings import Settings
from offerrank.storage import Warehouse
from offerrank.tables import OFFER_CONVERSION_RATES, RANKED_COLUMNS, RANKING_STAGE, Table


class Candidate(NamedTuple):
    """An offer a decision placement x channel x segment may rank, or its fallback offer."""

    decision_id: str
    placement_id: str
    channel: str
    ranking: str
    model_name: str
    offer_id: str
    priority: int
    formula_score: float | None
    is_fallback: bool
    exploration_share: float | None
    segment: str


CANDIDATES = Table(
    "candidates",
    (),
    (
        ("decision_id", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("ranking", "string"),
        ("model_name", "string"),
        ("offer_id", "string"),
        ("priority", "long"),
        ("formula_score", "double"),
        ("is_fallback", "boolean"),
        ("exploration_share", "double"),
        ("segment", "string"),
    ),
)
RANKED = Table("ranked", (), RANKED_COLUMNS)
POSTERIOR_KEYS = ["model_name", "offer_id", "placement_id", "channel", "segment"]
NO_POSTERIORS = ", ".join(
    [f"{key} string" for key in POSTERIOR_KEYS]
    + ["alpha double", "beta double", "impressions long", "conversions long", "cold_start boolean"]
)


class RankingFailed(RuntimeError):
    """A ranking method cannot rank an offer (e.g. its formula fails); the run must not publish."""


# --- pure transformations -----------------------------------------------------------------------------------


def candidates(catalog: Catalog, run_date: date) -> list[Candidate]:
    """Each active decision placement's eligible offers live on `run_date`, plus its fallback, once per segment
    its method ranks for."""
    from offerrank.formula import FormulaError

    rows = []
    for decision, assignment in catalog.active_assignments():
        method = assignment.method
        score, share = method.scorer(catalog), method.exploration_share(catalog)
        common = (
            decision.id,
            assignment.placement,
            catalog.channel_of(assignment.placement),
            method.unit,
            method.model_name,
        )
        offers = []
        for offer in catalog.eligible_live_offers(assignment, run_date):
            try:
                offers.append((offer.id, offer.priority, score(offer) if score else None, False, share))
            except FormulaError as error:
                raise RankingFailed(f"formula {method.ref!r} fails for offer {offer.id}: {error}") from None
        fallback = catalog.get("offers", assignment.fallback_offer)
        offers.append((fallback.id, fallback.priority, None, True, None))
        rows += [Candidate(*common, *offer, segment) for segment in method.segments(catalog) for offer in offers]
    return rows


def with_posteriors(
    candidate_frame: DataFrame, rates: DataFrame | None, prior_alpha: float, prior_beta: float
) -> DataFrame:
    """Attach each candidate's posterior; an offer with no data gets the prior and is in cold start."""
    if rates is None:
        rates = candidate_frame.sparkSession.createDataFrame([], NO_POSTERIORS)
    joined = candidate_frame.join(
        rates.select(*POSTERIOR_KEYS, "alpha", "beta", "impressions", "conversions", "cold_start"),
        POSTERIOR_KEYS,
        "left",
    )
    return joined.select(
        *candidate_frame.columns,
        F.coalesce("alpha", F.lit(prior_alpha)).alias("alpha"),
        F.coalesce("beta", F.lit(prior_beta)).alias("beta"),
        F.coalesce("impressions", F.lit(0)).cast("long").alias("impressions"),
        F.coalesce("conversions", F.lit(0)).cast("long").alias("conversions"),
        F.coalesce("cold_start", F.lit(True)).alias("cold_start"),
    )


def rank_placement(group: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Rank one decision placement x channel x segment by its method; the fallback offer when nothing is eligible."""
    eligible = group[~group["is_fallback"]]
    first = group.iloc[0]
    if eligible.empty:
        ranked = (
            group[group["is_fallback"]]
            .head(1)
            .assign(score=None, p_best=None, traffic_share=1.0, reason="fallback", rank=1)
        )
    else:
        where = RankGroup(run_date, first["decision_id"], first["placement_id"], first["channel"], first["segment"])
        ranked = method_of(first["ranking"]).rank(eligible, where)
    return ranked.assign(rank=ranked["rank"].astype("int32"))[RANKED.column_names]


def rank_all(candidates_with_posteriors: DataFrame, run_date: date) -> DataFrame:
    return candidates_with_posteriors.groupBy("decision_id", "placement_id", "channel", "segment").applyInPandas(
        lambda group: rank_placement(group, run_date), RANKED.ddl
    )


# --- I/O edge -----------------------------------------------------------------------------------------------


def stage_unit(
    spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, run_id: str, unit: str
) -> int:
    """Rank the placements that use ranking method `unit` into `ranking_stage` (replacing that date and unit)."""
    rows = [row for row in candidates(catalog, run_date) if row.ranking == unit]
    if not rows:
        raise ValueError(f"no active decision placement ranks with {unit!r}")
    warehouse = Warehouse(spark, settings)
    rates = warehouse.read(OFFER_CONVERSION_RATES) if method_of(unit).uses_posteriors else None
    if rates is not None:
        rates = rates.filter(F.col("as_of_date") == run_date)
    frame = with_posteriors(
        spark.createDataFrame(rows, CANDIDATES.ddl), rates, settings.prior_alpha, settings.prior_beta
    )
    staged = rank_all(frame, run_date).select(
        "*", F.lit(unit).alias("unit"), F.lit(run_id).alias("run_id"), F.lit(run_date).alias("as_of_date")
    )
    partition = {"as_of_date": run_date, "unit": unit}
    try:
        warehouse.replace_where(staged, RANKING_STAGE, partition)
    except ProtocolChangedException:  # another rank task created the table at the same moment; it exists now
        warehouse.replace_where(staged, RANKING_STAGE, partition)
    written = warehouse.read(RANKING_STAGE)
    return written.filter((F.col("as_of_date") == run_date) & (F.col("unit") == unit)).count()


def run(
    spark: SparkSession,
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str,
    units: list[str] | None = None,
) -> str:
    """Stage the lists of every ranking method in use (or of `units`); a line for the run summary."""
    units = units or [method.unit for method in catalog.ranking_methods()]
    candidates(catalog, run_date)  # a method that fails for any offer fails the run before anything is staged
    counts = {unit: stage_unit(spark, settings, catalog, run_date, run_id, unit) for unit in units}
    return ", ".join(f"{unit}: {count} ranked offers" for unit, count in counts.items())


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/rank.py --date D --run-id ID --unit UNIT`."""
    from offerrank.jobs import job_session

    parser = argparse.ArgumentParser(prog="rank", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--unit", required=True, help="the ranking method whose placements to rank")
    args = parser.parse_args(argv)
    spark, settings, catalog = job_session("rank")
    try:
        print(run(spark, settings, catalog, args.date, args.run_id, [args.unit]))
    except RankingFailed as failed:
        print(f"ranking failed: {failed}; channels keep the last good ranking", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
