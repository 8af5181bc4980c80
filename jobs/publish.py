"""Publish a run's staged rankings as the one current ranking, behind the publish gate; roll back (no JVM).

Reads  `ranking_stage` (the run's lists), `dq_results` (the date's validation), `ranking_runs`, the catalog.
Writes `offer_rankings` — the complete current ranking, replaced in one Delta commit per publish, so a reader sees
                         the previous complete ranking or the new one, never a mix; every earlier ranking stays
                         readable by time travel;
       `ranking_runs`   — one row per publish attempt: published, unchanged, refused (with why) or rolled back.
The gate refuses (and leaves the last good ranking in place) when the date's validation failed, a ranking method
failed, an assigned placement (or segment) would get no offer, or a ranked offer is not eligible.
These tables hold one ranking, not events: the job runs in memory with `deltalake`, so the DAG's publish task
starts no Spark application.
Run: `offerrank rank --date D` (rank, then publish); the DAG's `publish` task calls `run`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pandas as pd

from offerrank.catalog import Catalog
from offerrank.jobs.rank import RANKED, Candidate, RankingFailed, candidates
from offerrank.nightly import validation_refusal
from offerrank.settings import Settings
from offerrank.tables import ALL_SEGMENTS, DQ_RESULTS, OFFER_RANKINGS, RANKING_RUNS, RANKING_STAGE
from offerrank.warehouse import open_table, read_rows, table_rows, write_frame


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

    def __init__(self, settings: Settings):
        self.settings = settings

    def validation(self, run_date: date) -> dict | None:
        rows = table_rows(self.settings, DQ_RESULTS, {"run_date": run_date})
        return rows[0] if rows else None

    def staged(self, run_date: date, run_id: str) -> pd.DataFrame:
        rows = table_rows(self.settings, RANKING_STAGE, {"as_of_date": run_date})
        mine = pd.DataFrame([row for row in rows if row["run_id"] == run_id], columns=RANKING_STAGE.column_names)
        return mine[RANKED.column_names].reset_index(drop=True)

    def published_runs(self) -> list[dict]:
        """The attempts that published a ranking (or rolled one back), oldest commit first."""
        runs = [row for row in table_rows(self.settings, RANKING_RUNS) if row["ranking_version"] is not None]
        return sorted(runs, key=lambda row: row["rankings_table_version"])

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
        published = self.published_runs()
        fingerprint = content_hash(ranked)
        latest = published[-1] if published else None
        if latest is not None and latest["run_date"] == run_date and latest["content_hash"] == fingerprint:
            return PublishResult("unchanged", latest["ranking_version"], placements, len(ranked))
        version = max((row["ranking_version"] for row in published), default=0) + 1
        table = ranked.assign(ranking_version=version, as_of_date=run_date, run_id=run_id, published_at=published_at)
        table_version = write_frame(self.settings, OFFER_RANKINGS, table, "overwrite")
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
        sources = [row for row in self.published_runs() if row["ranking_version"] == to_version]
        if not sources:
            raise PublishRefused(f"no published ranking version {to_version}")
        source = sources[0]
        old = pd.DataFrame(
            read_rows(open_table(self.settings, OFFER_RANKINGS, source["rankings_table_version"])),
            columns=OFFER_RANKINGS.column_names,
        )
        table_version = write_frame(self.settings, OFFER_RANKINGS, old, "overwrite")
        self.record(
            ranking_version=to_version,
            run_date=source["run_date"],
            run_id=run_id,
            status="rolled_back",
            reason=f"rollback to ranking version {to_version}",
            placements=source["placements"],
            offers=source["offers"],
            content_hash=source["content_hash"],
            rankings_table_version=table_version,
            published_at=published_at,
        )
        return PublishResult("rolled_back", to_version, source["placements"], source["offers"])

    def record(self, **values: object) -> None:
        """Append one attempt to `ranking_runs` (columns not given are null)."""
        row = {name: values.get(name) for name in RANKING_RUNS.column_names}
        write_frame(self.settings, RANKING_RUNS, pd.DataFrame([row], columns=RANKING_RUNS.column_names, dtype=object))


def end_of(run_date: date) -> datetime:
    """A run's publish time when none is given: the end of its date (a job never asks for the current time)."""
    return datetime.combine(run_date, time.max, tzinfo=UTC).replace(microsecond=0)


def run(
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str,
    published_at: datetime | None = None,
    dry_run: bool = False,
) -> PublishResult:
    return Publisher(settings).publish(catalog, run_date, run_id, published_at, dry_run)


def rank_and_publish(
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
        rank.run(settings, catalog, run_date, run_id)
    except RankingFailed:
        pass  # the gate below records the refusal with the same reason
    return run(settings, catalog, run_date, run_id, published_at, dry_run)
