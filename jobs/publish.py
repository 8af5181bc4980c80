"""Publish a run's staged rankings as the one current ranking, behind the publish gate; roll back (no JVM).

Reads  `ranking_stage` (the run's lists), `dq_results` (the date's validation), `ranking_runs`, the catalog.
Writes `offer_rankings` — the complete current ranking, replaced in one Delta commit per publish, so a reader sees
                         the previous complete ranking or the new one, never a mix; every earlier ranking stays
                         readable by time travel;
       `ranking_runs`   — one row per publish attempt: published, unchanged, refused (with why) or rolled back,
                         stamped with the attempt's wall-clock time (given by the entry point);
       `ranking_stage`  — a publish removes the staged lists it makes useless: its run's, earlier dates', and
                         those of runs of its date staged before it.
The gate refuses (and leaves the last good ranking in place) when no event dataset passed the date's validation,
the ranking is older than the one served, or of the same date but staged before it, an assigned placement (or
segment) would get no offer, or a ranked offer is not eligible. The placements of a ranking method that failed,
whose AI model learns from a dataset that did not pass, or whose contextual model failed to train, keep their last
good lists (and the publish says why).
These tables hold one ranking, not events: the job runs in memory with `deltalake`, so the DAG's publish task
starts no Spark application.
Run: `offerrank rank --date D` (rank, then publish); the DAG's `publish` task calls `run`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from offerrank.catalog import Catalog
from offerrank.engines.delta_rs import (
    ConcurrentCommit,
    delete_rows,
    open_table,
    read_rows,
    table_rows,
    write_frame,
)
from offerrank.errors import Refused
from offerrank.events.validation_gate import DayValidation, day_validation
from offerrank.jobs.rank import (
    GROUP_KEYS,
    RANKED,
    Candidate,
    RankingFailed,
    candidates,
    held_back,
    with_parameter_columns,
)
from offerrank.settings import Settings
from offerrank.tables import ALL_SEGMENTS, OFFER_RANKINGS, RANKING_RUNS, RANKING_STAGE, Reason, manual_run_id

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = [*RANKED.column_names, "as_of_date", "run_id"]  # per list: the run that ranked it


class PublishRefused(Refused, RuntimeError):
    """The publish gate refused the ranking; the last good ranking stays in place."""


@dataclass
class PublishResult:
    status: str  # published | unchanged | rolled_back | dry_run (a refusal raises PublishRefused instead)
    ranking_version: int | None
    placements: int
    offers: int
    kept: list[str] = field(default_factory=list)  # ranking methods whose last good lists were kept, and why

    def summary(self) -> str:
        kept = f"; kept the last good lists of {'; '.join(self.kept)}" if self.kept else ""
        return (
            f"ranking {self.status}: version {self.ranking_version}, {self.placements} placements, "
            f"{self.offers} ranked offers{kept}"
        )


# --- pure rules ---------------------------------------------------------------------------------------------


def gate_problems(ranked: pd.DataFrame, candidate_rows: list[Candidate]) -> list[str]:
    """Why this ranking must not be published: a placement (or segment) with no offer, a ranked offer not eligible
    or without a finite score."""
    problems = []
    eligible = {(c.decision_id, c.placement_id, c.offer_id) for c in candidate_rows if not c.is_fallback}
    fallbacks = {(c.decision_id, c.placement_id, c.offer_id) for c in candidate_rows if c.is_fallback}
    ranked_groups = set(zip(ranked["decision_id"], ranked["placement_id"], ranked["segment"]))
    expected = {(c.decision_id, c.placement_id, c.segment) for c in candidate_rows}
    for decision_id, placement_id, segment in sorted(expected - ranked_groups):
        where = "" if segment == ALL_SEGMENTS else f" in segment {segment}"
        problems.append(f"placement {decision_id}/{placement_id} would get no offer{where}")
    row: Any  # a named tuple of the frame's columns
    for row in ranked.itertuples():
        key, where = (row.decision_id, row.placement_id, row.offer_id), f"{row.decision_id}/{row.placement_id}"
        if key not in eligible and not (row.reason == Reason.FALLBACK and key in fallbacks):
            problems.append(f"offer {row.offer_id} ranked for {where} is not eligible")
        if row.reason != Reason.FALLBACK and not math.isfinite(float(row.score)):
            problems.append(f"offer {row.offer_id} ranked for {where} has no finite score ({row.score})")
    return problems


def kept_lists(
    served: pd.DataFrame, catalog: Catalog, run_date: date, units: list[str], held: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The served lists of the placements of ranking methods `units`, which this run did not stage or holds back
    (`held`: why; a `models` subset run, a method that failed): their offers still eligible on `run_date`,
    renumbered; and why each was kept."""
    kept, notes = [], []
    for unit in units:
        eligible = {(c.decision_id, c.placement_id, c.offer_id) for c in candidates(catalog, run_date, unit, False)}
        keep = [key in eligible for key in zip(served["decision_id"], served["placement_id"], served["offer_id"])]
        kept.append(served[keep])
        if held and unit in held:
            notes.append(f"{unit} ({held[unit]})")
            continue
        try:
            candidates(catalog, run_date, unit)
            notes.append(f"{unit} (not ranked by this run)")
        except RankingFailed as failed:
            notes.append(f"{unit} (failed: {failed})")
    frame = pd.concat([k for k in kept if not k.empty] or [served.head(0)], ignore_index=True)
    frame = frame.sort_values([*GROUP_KEYS, "rank"], kind="mergesort")
    frame["rank"] = (frame.groupby(GROUP_KEYS).cumcount() + 1).astype("int32")
    return frame.reset_index(drop=True), notes


def older_than_served(run_date: date, served: dict | None) -> str | None:
    """Why a ranking of `run_date` must not replace the one channels are served (a backfill, an old run cleared):
    it is older. Going back on purpose is a rollback."""
    if served is None or served["run_date"] <= run_date:
        return None
    return (
        f"the ranking of {run_date} is older than the one served (of {served['run_date']}, version "
        f"{served['ranking_version']}); to serve an earlier ranking on purpose, `offerrank rankings rollback`"
    )


def staging_time(staged: pd.DataFrame) -> datetime | None:
    """When a run's staged lists were staged: its latest unit's stamp (None: nothing staged, or staged before
    stamps were kept)."""
    latest = pd.to_datetime(staged["staged_at"], utc=True).max() if not staged.empty else pd.NaT
    return None if pd.isna(latest) else latest.to_pydatetime()


def staged_before_served(
    run_id: str, run_date: date, staged_at: datetime | None, served: dict | None, expects_lists: bool = True
) -> str | None:
    """Why run `run_id`'s lists must not replace a ranking of the same date served from another run: they were
    staged before it (an older run's publish cleared or retried after a later run of the date published), or are
    gone (removed when a later run of the date published) though the run `expects_lists` (a method not held
    back). Going back on purpose is a rollback."""
    if served is None or served["run_date"] != run_date or served["run_id"] == run_id:
        return None
    current = f"run {served['run_id']}, ranking version {served['ranking_version']}"
    if staged_at is None and not expects_lists:
        return None
    if staged_at is None:
        return (
            f"run {run_id} has no staged lists of {run_date} (a run's lists are removed once a later run of its date "
            f"publishes); the ranking served is of the same date ({current}); to serve an earlier ranking on "
            "purpose, `offerrank rankings rollback`"
        )
    served_staged_at = served.get("staged_at")
    if served_staged_at is None or staged_at >= served_staged_at:
        return None
    return (
        f"run {run_id}'s lists of {run_date} were staged at {staged_at:%Y-%m-%d %H:%M:%S} UTC, before those of the "
        f"ranking served ({current}, staged at {served_staged_at:%Y-%m-%d %H:%M:%S} UTC): they are stale; rank the "
        "date again, or to serve an earlier ranking on purpose, `offerrank rankings rollback`"
    )


def superseded_condition(run_date: date, run_id: str, staged_at: datetime | None) -> str:
    """The staged rows a publish of run `run_id` makes useless: its own, those of earlier dates, and those of the
    runs of its date staged before it (or before stamps were kept)."""
    quoted = run_id.replace("'", "''")
    earlier = f" OR staged_at IS NULL OR staged_at < '{staged_at.isoformat()}'" if staged_at is not None else ""
    return f"as_of_date < '{run_date}' OR (as_of_date = '{run_date}' AND (run_id = '{quoted}'{earlier}))"


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

    def staged(self, run_date: date, run_id: str) -> pd.DataFrame:
        rows = table_rows(self.settings, RANKING_STAGE, {"as_of_date": run_date})
        return pd.DataFrame([row for row in rows if row["run_id"] == run_id], columns=RANKING_STAGE.column_names)

    def served(self) -> pd.DataFrame:
        """The ranking channels are served now (its rows)."""
        # a ranking published before a column was added has none of it
        served = pd.DataFrame(table_rows(self.settings, OFFER_RANKINGS), columns=OFFER_RANKINGS.column_names)
        return with_parameter_columns(served)

    def published_runs(self) -> list[dict]:
        """The attempts that published a ranking (or rolled one back), oldest commit first."""
        runs = [row for row in table_rows(self.settings, RANKING_RUNS) if row["ranking_version"] is not None]
        return sorted(runs, key=lambda row: row["rankings_table_version"])

    def publish(
        self, catalog: Catalog, run_date: date, run_id: str, published_at: datetime, dry_run: bool = False
    ) -> PublishResult:
        """Publish this run's staged rankings as one commit of `offer_rankings`, behind the gate; `published_at`:
        now (wall-clock time, read by the entry point)."""
        validation = day_validation(self.settings, catalog, run_date)
        if not dry_run:
            self.record_interrupted()
        rankings = open_table(self.settings, OFFER_RANKINGS)
        read_version = rankings.version() if rankings is not None else None  # what this publish decides on
        published = self.published_runs()
        served = published[-1] if published else None
        staged = self.staged(run_date, run_id)
        staged_at = staging_time(staged)
        ranked, refusal, kept = self.gate(catalog, run_date, run_id, staged, staged_at, validation, served)
        placements = placement_count(ranked)
        if refusal is not None:
            if not dry_run:
                self.record(
                    run_date=run_date,
                    run_id=run_id,
                    status="refused",
                    reason=refusal,
                    validation_run_id=validation.run_id,
                    placements=placements,
                    offers=len(ranked),
                    published_at=published_at,
                    staged_at=staged_at,
                )
            raise PublishRefused(refusal)
        if dry_run:
            return PublishResult("dry_run", None, placements, len(ranked), kept)
        fingerprint = content_hash(ranked[RANKED.column_names])
        if served is not None and served["run_date"] == run_date and served["content_hash"] == fingerprint:
            delete_rows(self.settings, RANKING_STAGE, superseded_condition(run_date, run_id, staged_at))
            return PublishResult("unchanged", served["ranking_version"], placements, len(ranked), kept)
        version = max((row["ranking_version"] for row in published), default=0) + 1
        table = ranked.assign(ranking_version=version, published_at=published_at)
        try:
            table_version = write_frame(self.settings, OFFER_RANKINGS, table, "overwrite", read_version=read_version)
        except ConcurrentCommit as concurrent:
            reason = f"another publish or rollback committed meanwhile, so this one did not: {concurrent}; run it again"
            self.record(run_date=run_date, run_id=run_id, status="refused", reason=reason, published_at=published_at)
            raise PublishRefused(reason) from None
        self.record(
            ranking_version=version,
            run_date=run_date,
            run_id=run_id,
            status="published",
            reason=f"kept the last good lists of {'; '.join(kept)}" if kept else None,
            validation_run_id=validation.run_id,
            placements=placements,
            offers=len(ranked),
            content_hash=fingerprint,
            rankings_table_version=table_version,
            published_at=published_at,
            staged_at=staged_at,
        )
        delete_rows(self.settings, RANKING_STAGE, superseded_condition(run_date, run_id, staged_at))
        return PublishResult("published", version, placements, len(ranked), kept)

    def gate(
        self,
        catalog: Catalog,
        run_date: date,
        run_id: str,
        staged: pd.DataFrame,
        staged_at: datetime | None,
        validation: DayValidation,
        served: dict | None,
    ) -> tuple[pd.DataFrame, str | None, list[str]]:
        """The ranking to publish: the run's `staged` lists (staged at `staged_at`, see `staging_time`), plus the
        served lists of the ranking methods it did not stage or holds back (their model's dataset did not pass); why
        it must not be published (None: it may); and which methods' lists were kept, and why."""
        nothing = pd.DataFrame(columns=PUBLISHED_COLUMNS)
        held = held_back(self.settings, catalog, run_date, validation)
        # a run whose every method is held back stages nothing, and keeps the served lists: not a stale run
        expects_lists = any(method.unit not in held for method in catalog.ranking_methods())
        refusal = (
            validation.refusal()
            or older_than_served(run_date, served)
            or staged_before_served(run_id, run_date, staged_at, served, expects_lists)
        )
        if refusal is not None:
            return nothing, refusal, []
        staged = staged[~staged["unit"].isin(list(held))]
        missing = [method.unit for method in catalog.ranking_methods() if method.unit not in set(staged["unit"])]
        kept, notes = kept_lists(self.served(), catalog, run_date, missing, held) if missing else (nothing, [])
        parts = [frame[PUBLISHED_COLUMNS] for frame in (staged, kept) if not frame.empty]
        ranked = pd.concat(parts, ignore_index=True) if parts else nothing
        problems = gate_problems(ranked, candidates(catalog, run_date, scored=False))
        if problems and notes:
            problems.append(f"kept the last good lists of {'; '.join(notes)}")
        return ranked, "; ".join(problems) or None, notes

    def record_interrupted(self) -> int | None:
        """Record the served ranking if its publish committed `offer_rankings` but was stopped before recording it
        (a killed task): its version is then known, and the next publish numbers after it. Returns that version."""
        served = self.served()
        if served.empty:
            return None
        version = int(served["ranking_version"].iloc[0])
        if any(row["ranking_version"] == version for row in self.published_runs()):
            return None
        latest = served.iloc[served["as_of_date"].argmax()]  # kept lists carry the dates of earlier runs
        self.record(
            ranking_version=version,
            run_date=latest["as_of_date"],
            run_id=latest["run_id"],
            status="published",
            reason="recorded by a later publish: this one was stopped between its commit and its record",
            placements=placement_count(served),
            offers=len(served),
            content_hash=content_hash(served[RANKED.column_names]),
            rankings_table_version=open_table(self.settings, OFFER_RANKINGS).version(),
            published_at=latest["published_at"],
        )
        return version

    def rollback(self, to_version: int, run_id: str, published_at: datetime) -> PublishResult:
        """Publish ranking `to_version` again as a new commit of `offer_rankings`."""
        self.record_interrupted()
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
            staged_at=source.get("staged_at"),
        )
        return PublishResult("rolled_back", to_version, source["placements"], source["offers"])

    def record(self, **values: object) -> None:
        """Append one attempt to `ranking_runs` (columns not given are null)."""
        row = {name: values.get(name) for name in RANKING_RUNS.column_names}
        write_frame(self.settings, RANKING_RUNS, pd.DataFrame([row], columns=RANKING_RUNS.column_names, dtype=object))


def run(
    settings: Settings, catalog: Catalog, run_date: date, run_id: str, published_at: datetime, dry_run: bool = False
) -> PublishResult:
    return Publisher(settings).publish(catalog, run_date, run_id, published_at, dry_run)


def rank_and_publish(
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str | None = None,
    *,
    at: datetime,
    dry_run: bool = False,
) -> PublishResult:
    """Stage every ranking method's lists, then publish them (`offerrank rank`), both stamped `at` (now, read by the
    entry point); the placements of a method that failed keep their last good lists, and the publish says so."""
    from offerrank.jobs import rank

    run_id = run_id or manual_run_id(run_date)
    rank.run(settings, catalog, run_date, run_id, at)
    return run(settings, catalog, run_date, run_id, at, dry_run)
