"""Rank every active decision placement's eligible offers and publish the ranked lists atomically.

Reads  the registry's catalog, `offer_conversion_rates` (as_of_date = D), `dq_results` (D's validation).
Writes `ranking_stage`  — each ranking method's ranked lists of a run (one task per method in Airflow, each
                         replacing its own as_of_date/unit partition);
       `offer_rankings` — the complete current ranking, replaced in one Delta commit per publish, so a reader
                         sees the previous complete ranking or the new one, never a mix; every earlier
                         ranking stays readable by time travel;
       `ranking_runs`   — one row per publish attempt: published, unchanged, refused (with why) or rolled back.
A publish gate refuses (and leaves the last good ranking in place) when D's validation failed, when an assigned
placement would get no offer, or when a ranked offer is not eligible.
Run: `offerrank rank --date D` or `spark-submit jobs/rank.py --date D`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

import pandas as pd
from delta.exceptions import ProtocolChangedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.bandit import run_seed, thompson_rank
from offerrank.catalog import Catalog
from offerrank.jobs.aggregate import ALL_SEGMENTS, model_segments
from offerrank.settings import Settings, load_settings, parse_flag
from offerrank.storage import read_table

CANDIDATE_SCHEMA = (
    "decision_id string, placement_id string, channel string, method string, model_name string, offer_id string, "
    "priority long, formula_score double, is_fallback boolean, exploration_share double, segment string"
)
RANKED_COLUMNS = (
    "model_name string, decision_id string, placement_id string, channel string, segment string, rank int, offer_id string, "
    "score double, p_best double, traffic_share double, alpha double, beta double, impressions long, "
    "conversions long, reason string"
)
RUNS_SCHEMA = (
    "ranking_version long, run_date date, run_id string, status string, reason string, validation_run_id string, "
    "placements long, offers long, content_hash string, rankings_table_version long, published_at timestamp"
)


class PublishRefused(RuntimeError):
    """The publish gate refused the ranking; the last good ranking stays in place."""


@dataclass
class PublishResult:
    status: str  # published | unchanged | rolled_back | dry_run (a refusal raises PublishRefused instead)
    ranking_version: int | None
    placements: int
    offers: int

    def summary(self) -> str:
        return f"ranking {self.status}: version {self.ranking_version}, {self.placements} placements, {self.offers} ranked offers"


# --- pure transformations -----------------------------------------------------------------------------------

def candidates(catalog: Catalog, run_date: date) -> list[tuple]:
    """Rows of CANDIDATE_SCHEMA: each active decision placement's eligible, live offers, plus its fallback, once per
    segment it is ranked for (`*`, and each segment of a personalized model)."""
    from offerrank.formula import FormulaError

    rows = []
    for decision in catalog.decisions:
        if decision.status != "active":
            continue
        for assignment in decision.placements:
            channel = catalog.get("placements", assignment.placement).channel
            method, ref = assignment.method
            model = catalog.get("ai_models", ref) if method == "ai_model" else None
            formula = catalog.get("formulas", ref).compiled() if method == "formula" else None
            common = (decision.id, assignment.placement, channel, method, ref if method != "priority" else method)
            offers = []
            for offer in catalog.eligible_offers(assignment):
                if not offer.is_live(run_date) or assignment.placement not in offer.placements:
                    continue
                try:
                    score = formula.evaluate(offer.fields()) if formula else None
                except FormulaError as error:
                    raise PublishRefused(f"formula {ref!r} fails for offer {offer.id}: {error}") from None
                offers.append((offer.id, offer.priority, score, False, model.exploration_share if model else None))
            fallback = catalog.get("offers", assignment.fallback_offer)
            offers.append((fallback.id, fallback.priority, None, True, None))
            for segment in model_segments(model) if model else (ALL_SEGMENTS,):
                rows += [(*common, *offer, segment) for offer in offers]
    return rows


def with_posteriors(candidate_frame: DataFrame, rates: DataFrame | None, prior_alpha: float, prior_beta: float) -> DataFrame:
    """Attach each AI-ranked candidate's posterior; an offer with no data gets the prior and is in cold start."""
    keys = ["model_name", "offer_id", "placement_id", "channel", "segment"]
    if rates is None:
        rates = candidate_frame.sparkSession.createDataFrame(
            [], "model_name string, offer_id string, placement_id string, channel string, segment string, alpha double, beta double, "
                "impressions long, conversions long, cold_start boolean")
    joined = candidate_frame.join(rates.select(*keys, "alpha", "beta", "impressions", "conversions", "cold_start"), keys, "left")
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
        ranked = group[group["is_fallback"]].head(1).assign(score=None, p_best=None, traffic_share=1.0, reason="fallback", rank=1)
    elif first["method"] == "ai_model":
        seed = run_seed(run_date, first["model_name"], first["decision_id"], first["placement_id"], first["channel"],
                        *([first["segment"]] if first["segment"] != ALL_SEGMENTS else []))
        ranked = thompson_rank(eligible, float(first["exploration_share"]), seed)
    else:
        score = eligible["formula_score"] if first["method"] == "formula" else eligible["priority"].astype(float)
        ranked = eligible.assign(score=score, p_best=None, traffic_share=None, reason=first["method"])
        ranked = ranked.sort_values(["score", "offer_id"], ascending=[False, True], kind="mergesort")
        ranked["rank"] = range(1, len(ranked) + 1)
    columns = [c.split()[0] for c in RANKED_COLUMNS.split(", ")]
    return ranked.assign(rank=ranked["rank"].astype("int32"))[columns]


def rank_all(candidates_with_posteriors: DataFrame, run_date: date) -> DataFrame:
    return candidates_with_posteriors.groupBy("decision_id", "placement_id", "channel", "segment").applyInPandas(
        lambda group: rank_placement(group, run_date), RANKED_COLUMNS)


def gate_problems(ranked: pd.DataFrame, candidate_rows: list[tuple]) -> list[str]:
    """Why this ranking must not be published: a placement (or segment) with no offer, or a ranked offer not eligible."""
    problems = []
    eligible = {(r[0], r[1], r[5]) for r in candidate_rows if not r[8]}
    fallbacks = {(r[0], r[1], r[5]) for r in candidate_rows if r[8]}
    ranked_groups = set(zip(ranked["decision_id"], ranked["placement_id"], ranked["segment"]))
    for decision_id, placement_id, segment in sorted({(r[0], r[1], r[10]) for r in candidate_rows} - ranked_groups):
        where = "" if segment == ALL_SEGMENTS else f" in segment {segment}"
        problems.append(f"placement {decision_id}/{placement_id} would get no offer{where}")
    for row in ranked.itertuples():
        key = (row.decision_id, row.placement_id, row.offer_id)
        if key not in eligible and not (row.reason == "fallback" and key in fallbacks):
            problems.append(f"offer {row.offer_id} ranked for {row.decision_id}/{row.placement_id} is not eligible")
    return problems


def content_hash(ranked: pd.DataFrame) -> str:
    """A fingerprint of a ranking's content, to publish only what changed."""
    ordered = ranked.sort_values(["decision_id", "placement_id", "channel", "segment", "rank"]).reset_index(drop=True)
    return hashlib.sha256(ordered.round(12).to_csv(index=False).encode()).hexdigest()


# --- I/O edge -----------------------------------------------------------------------------------------------

def ranking_units(catalog: Catalog) -> list[str]:
    """The ranking methods in use by active decisions (`ai_model:<name>`, `formula:<id>`, `priority`): one task each."""
    return sorted({a.ranking for d in catalog.decisions if d.status == "active" for a in d.placements})


def stage_unit(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, run_id: str, unit: str) -> int:
    """Rank the placements that use ranking method `unit` into `ranking_stage` (replacing that date and unit)."""
    rows = [row for row in candidates(catalog, run_date) if _unit(row) == unit]
    if not rows:
        raise ValueError(f"no active decision placement ranks with {unit!r}")
    rates = read_table(spark, settings.table_path("offer_conversion_rates"))
    if rates is not None:
        rates = rates.filter(F.col("as_of_date") == run_date)
    frame = with_posteriors(spark.createDataFrame(rows, CANDIDATE_SCHEMA), rates, settings.prior_alpha, settings.prior_beta)
    staged = rank_all(frame, run_date).select("*", F.lit(unit).alias("unit"), F.lit(run_id).alias("run_id"),
                                              F.lit(run_date).alias("as_of_date"))
    path = settings.table_path("ranking_stage")
    # One partition per date and unit: the mapped rank tasks of a run write side by side without conflicting.
    writer = staged.write.format("delta").mode("overwrite").partitionBy("as_of_date", "unit") \
        .option("replaceWhere", f"as_of_date = '{run_date}' AND unit = '{unit}'")
    try:
        writer.save(path)
    except ProtocolChangedException:  # another rank task created the table at the same moment; it exists now
        writer.save(path)
    return spark.read.format("delta").load(path).filter((F.col("as_of_date") == run_date) & (F.col("unit") == unit)).count()


def _unit(candidate_row: tuple) -> str:
    method, ref = candidate_row[3], candidate_row[4]
    return method if method == "priority" else f"{method}:{ref}"


def publish(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, run_id: str,
            published_at: datetime | None = None, dry_run: bool = False) -> PublishResult:
    """Publish this run's staged rankings as one commit of `offer_rankings`, behind the publish gate."""
    published_at = published_at or datetime.combine(run_date, time.max, tzinfo=timezone.utc).replace(microsecond=0)
    runs_path, rankings_path = settings.table_path("ranking_runs"), settings.table_path("offer_rankings")
    validation = _validation(spark, settings, run_date)

    def refuse(reason: str, placements: int = 0, offers: int = 0) -> PublishResult:
        if not dry_run:
            _record_run(spark, runs_path, None, run_date, run_id, "refused", reason, validation, placements, offers, None, None,
                        published_at)
        raise PublishRefused(reason)

    if validation is None or not validation.success:
        why = validation.failure_message if validation is not None else "no validation results for the date"
        return refuse(f"validation of {run_date} did not pass ({why})")
    try:
        rows = candidates(catalog, run_date)
    except PublishRefused as error:
        return refuse(str(error))
    stage = read_table(spark, settings.table_path("ranking_stage"))
    columns = [c.split()[0] for c in RANKED_COLUMNS.split(", ")]
    ranked = (stage.filter((F.col("as_of_date") == run_date) & (F.col("run_id") == run_id)).select(*columns).toPandas()
              if stage is not None else pd.DataFrame(columns=columns))
    placements = ranked[["decision_id", "placement_id", "channel"]].drop_duplicates().shape[0]
    problems = gate_problems(ranked, rows)
    if problems:
        return refuse("; ".join(problems), placements, len(ranked))
    if dry_run:
        return PublishResult("dry_run", None, placements, len(ranked))

    runs = read_table(spark, runs_path)
    published = runs.filter(F.col("ranking_version").isNotNull()) if runs is not None else None
    latest = published.orderBy(F.col("rankings_table_version").desc()).first() if published is not None else None
    fingerprint = content_hash(ranked)
    if latest is not None and latest.run_date == run_date and latest.content_hash == fingerprint:
        return PublishResult("unchanged", latest.ranking_version, placements, len(ranked))
    version = (published.agg(F.max("ranking_version")).first()[0] or 0) + 1 if published is not None else 1
    table = spark.createDataFrame(ranked.astype(object).where(ranked.notna(), None), RANKED_COLUMNS).select(
        F.lit(version).cast("long").alias("ranking_version"), "*", F.lit(run_date).alias("as_of_date"),
        F.lit(run_id).alias("run_id"), F.lit(published_at).alias("published_at"))
    table.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(rankings_path)
    _record_run(spark, runs_path, version, run_date, run_id, "published", None, validation, placements, len(ranked),
                fingerprint, _table_version(spark, rankings_path), published_at)
    return PublishResult("published", version, placements, len(ranked))


def run_rank(spark: SparkSession, settings: Settings, catalog: Catalog, run_date: date, run_id: str | None = None,
             published_at: datetime | None = None, dry_run: bool = False) -> PublishResult:
    """Rank every unit, then publish; a refused publish is recorded and raised as PublishRefused."""
    run_id = run_id or f"manual__{run_date.isoformat()}"
    validation = _validation(spark, settings, run_date)
    if validation is not None and validation.success:
        for unit in ranking_units(catalog):
            try:
                stage_unit(spark, settings, catalog, run_date, run_id, unit)
            except PublishRefused:
                break  # publish() records and raises the same refusal
    return publish(spark, settings, catalog, run_date, run_id, published_at, dry_run)


def rollback(spark: SparkSession, settings: Settings, to_version: int, run_id: str, published_at: datetime) -> PublishResult:
    """Publish ranking `to_version` again as a new commit of `offer_rankings`."""
    runs = read_table(spark, settings.table_path("ranking_runs"))
    source = runs.filter(F.col("ranking_version") == to_version).orderBy("rankings_table_version").first() if runs else None
    if source is None:
        raise PublishRefused(f"no published ranking version {to_version}")
    rankings_path = settings.table_path("offer_rankings")
    old = spark.read.format("delta").option("versionAsOf", source.rankings_table_version).load(rankings_path)
    old = old.localCheckpoint()  # the rows must be read before the table they come from is overwritten
    old.write.format("delta").mode("overwrite").save(rankings_path)
    _record_run(spark, settings.table_path("ranking_runs"), to_version, source.run_date, run_id, "rolled_back",
                f"rollback to ranking version {to_version}", None, source.placements, source.offers, source.content_hash,
                _table_version(spark, rankings_path), published_at)
    return PublishResult("rolled_back", to_version, source.placements, source.offers)


def _validation(spark: SparkSession, settings: Settings, run_date: date):
    results = read_table(spark, settings.table_path("dq_results"))
    return results.filter(F.col("run_date") == run_date).first() if results is not None else None


def _table_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path).history(1).first().version


def _record_run(spark, path, version, run_date, run_id, status, reason, validation, placements, offers, fingerprint,
                table_version, published_at):
    row = (version, run_date, run_id, status, reason, validation.run_id if validation is not None else None,
           placements, offers, fingerprint, table_version, published_at)
    spark.createDataFrame([row], RUNS_SCHEMA).write.format("delta").mode("append").save(path)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/rank.py --date D --run-id ID (--unit UNIT | --publish) [--dry-run]`."""
    from offerrank.registry import Registry
    from offerrank.spark import build_spark

    parser = argparse.ArgumentParser(prog="rank", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--run-id", required=True)
    step = parser.add_mutually_exclusive_group(required=True)
    step.add_argument("--unit", help="rank the placements of one ranking method into ranking_stage")
    step.add_argument("--publish", action="store_true", help="publish the run's staged rankings")
    parser.add_argument("--dry-run", type=parse_flag, nargs="?", const=True, default=False)
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = build_spark(settings, "offerrank-rank")
    catalog = Registry(spark, settings).catalog()
    try:
        if args.unit:
            print(f"ranked {stage_unit(spark, settings, catalog, args.date, args.run_id, args.unit)} offers with {args.unit}")
        else:
            print(publish(spark, settings, catalog, args.date, args.run_id, dry_run=args.dry_run).summary())
    except PublishRefused as refused:
        print(f"ranking refused: {refused}; channels keep the last good ranking", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
