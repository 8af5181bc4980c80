"""Publish a run's staged rankings as the one current ranking, behind the publish gate; roll back.

Reads  `ranking_stage` (the run's lists), `dq_results` (the date's validation), `ranking_runs`, the catalog.
Writes `offer_rankings` — the complete current ranking, replaced in one Delta commit per publish, so a reader sees
                         the previous complete ranking or the new one, never a mix; every earlier ranking stays
                         readable by time travel;
       `ranking_runs`   — one row per publish attempt: published, unchanged, refused (with why) or rolled back.
The gate refuses (and leaves the last good ranking in place) when the date's validation failed, a ranking method
failed, an assigned placement (or segment) would get no offer, or a ranked offer is not eligible.
Run: `offerrank rank --date D` (rank, then publish) or `spark-submit jobs/publish.py --date D --run-id ID`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import Catalog
from offerrank.jobs.rank import RANKED, Candidate, RankingFailed, candidates
from offerrank.nightly import validation_refusal
from offerrank.settings import Settings, parse_flag
from offerrank.storage import Warehouse
from offerrank.tables import ALL_SEGMENTS, DQ_RESULTS, OFFER_RANKINGS, RANKING_RUNS, RANKING_STAGE


class PublishRefused(RuntimeError):
    """The publish gate refused the ranking; the last good ranking stays in place."""


@dataclass
class PublishResult:
    status: str  # published | unchanged | rolled_back | dry_run (a refusal raises PublishRefused instead)
    ranking_version: int | None
    placements: int
    offers: int

    def summary(self) -> str:
        return (
            f"ranking {self.status}: version {self.ranking_version}, {self.placements} placements, "
            f"{self.offers} ranked offers"
        )


# --- pure rules ---------------------------------------------------------------------------------------------


def gate_problems(ranked: pd.DataFrame, candidate_rows: list[Candidate]) -> list[str]:
    """Why this ranking must not be published: a placement (or segment) with no offer, or a ranked offer not
    eligible."""
    problems = []
    eligible = {(c.decision_id, c.placement_id, c.offer_id) for c in candidate_rows if not c.is_fallback}
    fallbacks = {(c.decision_id, c.placement_id, c.offer_id) for c in candidate_rows if c.is_fallback}
    ranked_groups = set(zip(ranked["decision_id"], ranked["placement_id"], ranked["segment"]))
    expected = {(c.decision_id, c.placement_id, c.segment) for c in candidate_rows}
    for decision_id, placement_id, segment in sorted(expected - ranked_groups):
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


def placement_count(ranked: pd.DataFrame) -> int:
    return ranked[["decision_id", "placement_id", "channel"]].drop_duplicates().shape[0]


# --- I/O edge -----------------------------------------------------------------------------------------------


class Publisher:
    """Publish attempts of one warehouse, each recorded in `ranking_runs`."""

    def __init__(self, spark: SparkSession, settings: Settings):
        self.warehouse = Warehouse(spark, settings)

    def validation(self, run_date: date) -> dict | None:
        results = self.warehouse.read(DQ_RESULTS)
        row = results.filter(F.col("run_date") == run_date).first() if results is not None else None
        return row.asDict() if row is not None else None

    def staged(self, run_date: date, run_id: str) -> pd.DataFrame:
        stage = self.warehouse.read(RANKING_STAGE)
        if stage is None:
            return pd.DataFrame(columns=RANKED.column_names)
        mine = stage.filter((F.col("as_of_date") == run_date) & (F.col("run_id") == run_id))
        return mine.select(*RANKED.column_names).toPandas()

    def latest_published(self):
        runs = self.warehouse.read(RANKING_RUNS)
        if runs is None:
            return None, 0
        published = runs.filter(F.col("ranking_version").isNotNull())
        latest = published.orderBy(F.col("rankings_table_version").desc()).first()
        return latest, published.agg(F.max("ranking_version")).first()[0] or 0

    def publish(
        self, catalog: Catalog, run_date: date, run_id: str, published_at: datetime | None = None, dry_run: bool = False
    ) -> PublishResult:
        """Publish this run's staged rankings as one commit of `offer_rankings`, behind the gate."""
        published_at = published_at or end_of(run_date)
        validation = self.validation(run_date)
        ranked = pd.DataFrame(columns=RANKED.column_names)
        refusal = validation_refusal(validation, run_date)
        if refusal is None:
            try:
                rows = candidates(catalog, run_date)
            except RankingFailed as failed:
                refusal = str(failed)
        if refusal is None:
            ranked = self.staged(run_date, run_id)
            refusal = "; ".join(gate_problems(ranked, rows)) or None
        placements = placement_count(ranked)
        if refusal is not None:
            if not dry_run:
                self.record(
                    run_date=run_date,
                    run_id=run_id,
                    status="refused",
                    reason=refusal,
                    validation_run_id=validation["run_id"] if validation else None,
                    placements=placements,
                    offers=len(ranked),
                    published_at=published_at,
                )
            raise PublishRefused(refusal)
        if dry_run:
            return PublishResult("dry_run", None, placements, len(ranked))
        latest, last_version = self.latest_published()
        fingerprint = content_hash(ranked)
        if latest is not None and latest.run_date == run_date and latest.content_hash == fingerprint:
            return PublishResult("unchanged", latest.ranking_version, placements, len(ranked))
        version = last_version + 1
        spark = self.warehouse.spark
        table = spark.createDataFrame(ranked.astype(object).where(ranked.notna(), None), RANKED.ddl).select(
            F.lit(version).cast("long").alias("ranking_version"),
            "*",
            F.lit(run_date).alias("as_of_date"),
            F.lit(run_id).alias("run_id"),
            F.lit(published_at).alias("published_at"),
        )
        table_version = self.warehouse.overwrite(table, OFFER_RANKINGS)
        self.record(
            ranking_version=version,
            run_date=run_date,
            run_id=run_id,
            status="published",
            validation_run_id=validation["run_id"],
            placements=placements,
            offers=len(ranked),
            content_hash=fingerprint,
            rankings_table_version=table_version,
            published_at=published_at,
        )
        return PublishResult("published", version, placements, len(ranked))

    def rollback(self, to_version: int, run_id: str, published_at: datetime) -> PublishResult:
        """Publish ranking `to_version` again as a new commit of `offer_rankings`."""
        runs = self.warehouse.read(RANKING_RUNS)
        source = (
            runs.filter(F.col("ranking_version") == to_version).orderBy("rankings_table_version").first()
            if runs is not None
            else None
        )
        if source is None:
            raise PublishRefused(f"no published ranking version {to_version}")
        old = self.warehouse.read(OFFER_RANKINGS, version=source.rankings_table_version)
        old = old.localCheckpoint()  # the rows must be read before the table they come from is overwritten
        table_version = self.warehouse.overwrite(old, OFFER_RANKINGS)
        self.record(
            ranking_version=to_version,
            run_date=source.run_date,
            run_id=run_id,
            status="rolled_back",
            reason=f"rollback to ranking version {to_version}",
            placements=source.placements,
            offers=source.offers,
            content_hash=source.content_hash,
            rankings_table_version=table_version,
            published_at=published_at,
        )
        return PublishResult("rolled_back", to_version, source.placements, source.offers)

    def record(self, **values: object) -> None:
        """Append one attempt to `ranking_runs` (columns not given are null)."""
        row = tuple(values.get(name) for name in RANKING_RUNS.column_names)
        self.warehouse.append(self.warehouse.spark.createDataFrame([row], RANKING_RUNS.ddl), RANKING_RUNS)


def end_of(run_date: date) -> datetime:
    """A run's publish time when none is given: the end of its date (a job never asks for the current time)."""
    return datetime.combine(run_date, time.max, tzinfo=UTC).replace(microsecond=0)


def run(
    spark: SparkSession,
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str,
    published_at: datetime | None = None,
    dry_run: bool = False,
) -> PublishResult:
    return Publisher(spark, settings).publish(catalog, run_date, run_id, published_at, dry_run)


def rank_and_publish(
    spark: SparkSession,
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str | None = None,
    published_at: datetime | None = None,
    dry_run: bool = False,
) -> PublishResult:
    """Stage every ranking method's lists, then publish them (`offerrank rank`); a failed method is refused by the
    gate like any other problem, and recorded."""
    from offerrank.jobs import rank

    run_id = run_id or f"manual__{run_date.isoformat()}"
    try:
        rank.run(spark, settings, catalog, run_date, run_id)
    except RankingFailed:
        pass  # the gate below records the refusal with the same reason
    return run(spark, settings, catalog, run_date, run_id, published_at, dry_run)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/publish.py --date D --run-id ID [--dry-run BOOL]`."""
    from offerrank.jobs import job_session

    parser = argparse.ArgumentParser(prog="publish", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--dry-run", type=parse_flag, nargs="?", const=True, default=False)
    args = parser.parse_args(argv)
    spark, settings, catalog = job_session("publish")
    try:
        print(run(spark, settings, catalog, args.date, args.run_id, dry_run=args.dry_run).summary())
    except PublishRefused as refused:
        print(f"ranking refused: {refused}; channels keep the last good ranking", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
