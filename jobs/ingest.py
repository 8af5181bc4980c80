"""Ingest and validate one landing date of proposition-interaction events, each event dataset on its own.

Reads  `<dataset path>/<date>/` of every catalog dataset (or those named): *.jsonl / *.json lines, optionally
       gzipped, *.parquet with the same nested columns; what else is in the folder is skipped and reported (see
       `offerrank.engines.landing`). A dataset's path is a folder or an object-store URI.
Writes, under the warehouse root, replacing only that date's rows of that dataset (column `dataset`):
  events_raw    every record as received (raw text), source file, run id      (partition: landing_date)
  quarantine    every rejected record, its reason codes and a sentence, and one row per damaged data file
                (partition: run_date)
  interactions  one row per (event, proposition, item) of accepted impressions and conversions
                (partition: landing_date; written only when the dataset's day passes validation: a failing re-run
                keeps what an earlier passing run accepted, saying so, unless --replace-accepted)
  dq_results    one row per run date and dataset: counts, each expectation's outcome, success
A dataset that fails validation, or whose folder has no events, does not stop the others. GX data docs go to
`<dq_docs_dir>` (one validation per suite, dataset and date). Run: `offerrank ingest --date YYYY-MM-DD [--dataset
NAME] [--replace-accepted]` or `spark-submit jobs/ingest.py --date YYYY-MM-DD [--dataset NAME]`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from offerrank.catalog import Dataset
from offerrank.engines.delta_rs import open_table, rows_between, write_frame
from offerrank.engines.delta_spark import Warehouse
from offerrank.engines.landing import LandingFolder, as_uri, damaged, landed, landing_folder, open_file, scan
from offerrank.engines.quality import DataQualityRun, ExpectationOutcome, checked_columns, load_suite
from offerrank.engines.spark import kept_on_disk, release_kept
from offerrank.errors import Unavailable
from offerrank.events.quarantine import check_routing_agrees, quarantine_reasons, reason_sentences, route_records
from offerrank.events.xdm import flatten_records, parse_records, record_hash, to_interactions
from offerrank.settings import Settings, load_settings
from offerrank.tables import DQ_RESULTS, EVENTS_RAW, INTERACTIONS, QUARANTINE

DAMAGED_FILE = "damaged_file"  # the quarantine code of a data file that cannot be read whole
RECORD_SUITE = "events_records"
DATASET_SUITE = "events_dataset"

# Up to this many event ids with copies (in the day or on other days) are broadcast to the day's records; more (a
# day delivered twice) are joined by shuffle.
BROADCAST_CONTESTED_IDS = 1_000_000
DEDUP_REASONS = {
    "conflicting_duplicate": "another record with the same _id and different content won "
    "(earliest timestamp, then content hash order)",
    "duplicate_of_earlier_day": "the _id was already ingested from an earlier landing date",
    "duplicate_of_later_day": "the _id was already ingested from a later landing date (days ingested out of order)",
}


@dataclass
class IngestResult:
    dataset: str
    run_date: date
    run_id: str
    records_read: int
    blank_lines: int
    events_accepted: int
    exact_duplicates: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    interactions_written: int
    success: bool
    failure_message: str | None
    data_docs: str
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # what the landing folder held besides data files, and why
    damaged_files: list[str] = field(default_factory=list)  # data files quarantined whole, and why

    def summary(self) -> str:
        reasons = ", ".join(f"{code} {count:,}" for code, count in sorted(self.quarantined_by_reason.items())) or "none"
        verdict = "passed" if self.success else f"FAILED: {self.failure_message}"
        skipped = f"; skipped files: {', '.join(self.skipped_files)}" if self.skipped_files else ""
        damaged = f"; damaged files, quarantined whole: {', '.join(self.damaged_files)}" if self.damaged_files else ""
        return (
            f"ingest {self.dataset} {self.run_date}: {self.records_read:,} records read = "
            f"{self.events_accepted:,} accepted + {self.exact_duplicates:,} exact duplicates + "
            f"{self.quarantined:,} quarantined ({reasons}); "
            f"{self.interactions_written:,} interactions; validation {verdict}; data docs {self.data_docs}"
            f"{skipped}{damaged}"
        )


@dataclass
class IngestRun:
    """The ingest of one date's event datasets, one result each."""

    results: list[IngestResult]

    @property
    def success(self) -> bool:
        """Whether every dataset passed validation."""
        return all(result.success for result in self.results)

    def summary(self) -> str:
        return "\n".join(result.summary() for result in self.results)


# --- reading (I/O edge) -------------------------------------------------------------------------------------


class NotLanded(Unavailable, FileNotFoundError):
    """A dataset's landing folder of the date has no events yet (or lacks its completeness marker)."""


def landing_files(root: str, run_date: date, marker: str = "") -> LandingFolder:
    """The date folder's event files by format; a missing or empty folder, or one without its completeness marker
    when one is set, is NotLanded."""
    folder = landing_folder(root, run_date)
    if marker and not landed(folder, marker):
        raise NotLanded(f"{folder} has no {marker} marker yet: its producer has not finished the day")
    found = scan(folder)
    if found.empty:
        raise NotLanded(f"no event files (*.jsonl, *.json, *.parquet) for {run_date} in {folder}")
    return found


def parquet_by_schema(files: list[str]) -> list[list[str]]:
    """Parquet files grouped by the schema in their footers, so that files of differing column types are each read
    with their own."""
    import pyarrow.parquet as pq

    groups: dict[str, list[str]] = {}
    for path in files:
        with open_file(path) as handle:
            groups.setdefault(str(pq.read_schema(handle)), []).append(path)
    return list(groups.values())


def read_records(spark: SparkSession, files: dict[str, list[str]]) -> DataFrame:
    """One row per record: `source_file`, `raw` text (JSON lines as read; Parquet rows rendered as JSON)."""
    frames = []
    if files["json"]:
        frames.append(
            spark.read.text(files["json"]).select(
                F.col("_metadata.file_path").alias("source_file"), F.col("value").alias("raw")
            )
        )
    for same_schema in parquet_by_schema(files["parquet"]):
        # each file read with its own column types (a `timestamp` exported as TIMESTAMP, say), rendered as JSON text
        # and parsed like a JSON line: the event schema is applied once, to the text
        parquet = spark.read.parquet(*same_schema)
        frames.append(
            parquet.select(
                F.col("_metadata.file_path").alias("source_file"),
                F.to_json(F.struct(*[F.col(c) for c in parquet.columns])).alias("raw"),
            )
        )
    if not frames:  # every data file of the day was damaged
        return spark.createDataFrame([], "source_file string, raw string")
    return reduce(DataFrame.unionByName, frames)


# --- pure transformations -----------------------------------------------------------------------------------


def deduplicate(valid: DataFrame) -> DataFrame:
    """Label valid records `accepted`, `exact_duplicate` or `conflicting_duplicate` per event id.

    Identical copies of one record collapse to one; of differing records with the same id the earliest
    timestamp wins, then the smallest content hash, so the choice is the same on every run (of identical copies, the
    one of the first source file: the interactions keep their file).
    """
    by_id = Window.partitionBy("event_id").orderBy("event_ts", "record_hash", "source_file", "record_id")
    return valid.withColumn(
        "outcome",
        F.when(F.lag("record_hash").over(by_id) == F.col("record_hash"), "exact_duplicate")
        .when(F.row_number().over(by_id) == 1, "accepted")
        .otherwise("conflicting_duplicate"),
    )


def with_raw_text(rejected: DataFrame, records: DataFrame) -> DataFrame:
    """Fill in the raw text of rejected records the kept rows hold none for (duplicates, found after routing) from the
    day's records, by (source file, content hash)."""
    rejected = rejected.localCheckpoint()  # read three times below: label the day once for them
    missing = rejected.filter(F.col("raw").isNull()).drop("raw")
    keys = missing.select("source_file", "record_hash").distinct()
    texts = (
        records.withColumn("record_hash", record_hash(F.col("raw")))
        .join(F.broadcast(keys), ["source_file", "record_hash"], "left_semi")
        .dropDuplicates(["source_file", "record_hash"])
    )
    return rejected.filter(F.col("raw").isNotNull()).unionByName(
        missing.join(texts, ["source_file", "record_hash"], "left")
    )


def to_quarantine(rejected: DataFrame, reasons: dict[str, str], run_date: date, run_id: str) -> DataFrame:
    """Rejected records with their reason codes and one human sentence."""
    return rejected.select(
        F.lit(run_date).alias("run_date"),
        F.lit(run_id).alias("run_id"),
        "source_file",
        "event_id",
        "reason_codes",
        reason_sentences(reasons).alias("reasons"),
        "raw",
    )


def damaged_quarantine(spark: SparkSession, damaged_files: dict[str, str], run_date: date, run_id: str) -> DataFrame:
    """One quarantine row per damaged data file (`damaged_file`, no event id nor text: none of it was read)."""
    rows = [
        (run_date, run_id, as_uri(path), None, [DAMAGED_FILE], f"the file could not be read whole: {why}", None)
        for path, why in sorted(damaged_files.items())
    ]
    schema = (
        "run_date date, run_id string, source_file string, event_id string, reason_codes array<string>, "
        "reasons string, raw string"
    )
    return spark.createDataFrame(rows, schema)


def day_summary(
    counts: dict[str, int], trailing_mean: float | None, offers_over_limit: int, damaged_file_share: float
) -> dict[str, int | float]:
    """The one row the dataset-level suite validates (`volume_ratio` NaN: no trailing days to compare with)."""
    accounted = counts["events_accepted"] + counts["exact_duplicates"] + counts["quarantined"]
    row = {
        "records_read": counts["records_read"],
        "records_accounted": accounted,
        "events_accepted": counts["events_accepted"],
        "quarantine_share": counts["quarantined"] / counts["records_read"] if counts["records_read"] else 0.0,
        "volume_ratio": counts["events_accepted"] / trailing_mean if trailing_mean else float("nan"),
        "offers_over_conversion_limit": offers_over_limit,
        "damaged_file_share": damaged_file_share,
    }
    return row


def interactions_per_offer(interactions: DataFrame) -> DataFrame:
    """Per offer: its interaction rows, impressions and distinct converted (proposition, offer) pairs."""
    return interactions.groupBy("offer_id").agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("interaction") == "impression", 1).otherwise(0)).alias("impressions"),
        # within an offer's rows, its distinct converted pairs are its distinct converted propositions
        F.countDistinct(F.when(F.col("interaction") == "conversion", F.col("proposition_id"))).alias("conversions"),
    )


def offers_over_conversion_limit(per_offer: pd.DataFrame, tolerance: float, minimum: int) -> int:
    """How many offers' conversions on the day exceed their impressions by more than `tolerance`."""
    over = (per_offer["conversions"] >= minimum) & (
        per_offer["conversions"] > per_offer["impressions"] * (1 + tolerance)
    )
    return int(over.sum())


def record_parameters(settings: Settings, run_date: date) -> dict[str, datetime]:
    """The lateness window of a landing date, as the record-level suite's parameters."""
    start = datetime.combine(run_date, time.min, tzinfo=UTC)
    return {
        "earliest_event_ts": start - timedelta(days=settings.lateness_days),
        "latest_event_ts": start + timedelta(days=1, minutes=settings.future_tolerance_minutes),
    }


def label_records(routed: DataFrame, record_rows: DataFrame, other_days: DataFrame | None, run_date: date) -> DataFrame:
    """Every row of `routed` (records in their flat form, `flatten_records`) with its record's `outcome` (accepted,
    exact_duplicate, quarantined) and final `reason_codes`.

    `record_rows`: a row per record of `routed`, with its `event_id` and `reason_codes`: the ids are counted from it
    (a narrow copy of the record rows is read faster than the flat rows).

    `other_days`: the event ids (and `landing_date`) already accepted from the other landing dates of the lateness
    window, before and after `run_date`: an event counts once whichever of its days is ingested first, and a re-run
    of either day keeps it that way.

    Most events have one record and no copy on another day: only the records of ids that do (found on the ids
    alone) go through the de-duplication window, and what it decides for those few records is joined to the rows by
    broadcast rather than all rows shuffled by id."""
    valid = routed.filter(F.col("record_row") & (F.size("reason_codes") == 0))
    ids = record_rows.filter(F.size("reason_codes") == 0).select("event_id")
    repeated = ids.groupBy("event_id").count().filter(F.col("count") > 1).select("event_id")
    if other_days is None:
        contested = repeated.withColumn("_seen_on", F.lit(None).cast("date"))
    else:
        seen = (
            other_days.join(ids.distinct(), "event_id", "left_semi")
            .groupBy("event_id")
            .agg(F.min("landing_date").alias("_seen_on"))
        )
        contested = repeated.join(seen, "event_id", "full")
    # computed once (the ids of other days are read once) and freed when no longer referenced
    contested = contested.localCheckpoint()
    few = contested.count() <= BROADCAST_CONTESTED_IDS
    duplicate = F.when(F.col("_seen_on") < F.lit(run_date), "duplicate_of_earlier_day").otherwise(
        "duplicate_of_later_day"
    )
    deduped = deduplicate(valid.join(F.broadcast(contested) if few else contested, "event_id")).withColumn(
        "outcome",
        F.when((F.col("outcome") == "accepted") & F.col("_seen_on").isNotNull(), duplicate).otherwise(F.col("outcome")),
    )
    rejected_as_duplicate = F.col("outcome").isin(list(DEDUP_REASONS))
    decided = deduped.select(
        "record_id",
        F.when(rejected_as_duplicate, "quarantined").otherwise(F.col("outcome")).alias("_decided"),
        F.when(rejected_as_duplicate, F.array("outcome")).alias("_duplicate_codes"),
    ).localCheckpoint()  # the contested records' outcomes, decided once for every use of the labels
    return (
        routed.join(F.broadcast(decided) if few else decided, "record_id", "left")
        .withColumn(
            "outcome",
            F.coalesce("_decided", F.when(F.size("reason_codes") > 0, "quarantined").otherwise(F.lit("accepted"))),
        )
        .withColumn("reason_codes", F.coalesce("_duplicate_codes", "reason_codes"))
        .drop("_decided", "_duplicate_codes")
    )


def _failure_message(suite: dict, outcomes: list[ExpectationOutcome], summary: dict, parameters: dict) -> str | None:
    failed = [
        expectation["meta"]["failure"].format(**summary, **parameters)
        for expectation, outcome in zip(suite["expectations"], outcomes)
        if not outcome.success
    ]
    return "; ".join(failed) or None


@dataclass
class LabelledDay:
    """A landing day's records, each labelled accepted / exact_duplicate / quarantined, and its interactions."""

    records: DataFrame  # source_file, raw (blank lines removed)
    routed: DataFrame  # kept on disk: the parsed records, flat, their reason codes (the text of rejected ones only)
    checked: DataFrame  # kept on disk: a row per record, its `blank`, `reason_codes` and the columns the suite checks
    labelled: DataFrame  # derived from `routed`: a row per record
    interactions: DataFrame  # derived from `labelled`: the accepted events' interactions
    interactions_by_offer: pd.DataFrame  # `interactions_per_offer`, collected
    blank_lines: int
    record_outcomes: list[ExpectationOutcome]
    counts: dict[str, int]
    by_reason: dict[str, int]

    def release(self) -> None:
        release_kept(self.routed)
        release_kept(self.checked)


@dataclass(frozen=True)
class DatasetDay:
    """What is ingested: one landing date of one event dataset, by one run."""

    dataset: str
    run_date: date
    run_id: str

    def validation_name(self, suite: str) -> str:
        """The GX validation's name (and its data docs page)."""
        return f"{suite}-{self.dataset}-{self.run_date}"

    def rows(self, partition: str) -> dict[str, object]:
        """The rows this ingest replaces in a table partitioned by `partition`."""
        return {partition: self.run_date, "dataset": self.dataset}


def ids_of_other_days(warehouse: Warehouse, day: DatasetDay) -> DataFrame | None:
    """The event ids (and `landing_date`) the dataset's other landing dates of the lateness window accepted, before
    and after the day (None: no window, or no interactions of another landing date in it)."""
    settings = warehouse.settings
    window = timedelta(days=settings.lateness_days)
    interactions = open_table(settings, INTERACTIONS) if settings.lateness_days else None
    # the table's log lists its landing dates: a day alone in its window reads no Delta files at all
    landed = (
        set() if interactions is None else {date.fromisoformat(p["landing_date"]) for p in interactions.partitions()}
    )
    others = sorted(other for other in landed if other != day.run_date and abs(other - day.run_date) <= window)
    if not others:
        return None
    return (
        warehouse.read(INTERACTIONS)
        .filter(F.col("landing_date").isin(others) & (F.col("dataset") == F.lit(day.dataset)))
        .select("event_id", "landing_date")
    )


def label_day(
    warehouse: Warehouse,
    quality: DataQualityRun,
    record_suite: dict,
    day: DatasetDay,
    records: DataFrame,
    known_offers: list[str] | None,
) -> LabelledDay:
    """Parse, route (record-level GX suite) and de-duplicate a day's records (`known_offers`: the offer ids the
    events may name, None before any catalog); derive its interactions."""
    settings = warehouse.settings
    run_date = day.run_date
    parameters = record_parameters(settings, run_date)
    blank = F.trim(F.col("raw")) == ""
    # One read of the files, kept flat on local disk (a row per item): the rule counts, GX, the labels and the
    # interactions all read these rows, and blank lines are counted from them, not by a scan of their own. A
    # record's text is the bulk of a day: the kept rows hold it only for the records the suite rejects (the
    # quarantine shows them as received), once per record, and accepted records keep their hash.
    parsed = route_records(parse_records(records, settings.max_record_bytes, known_offers), record_suite, parameters)
    flat = flatten_records(parsed.withColumn("blank", blank))
    rejected_record = F.col("record_row") & ~F.col("blank") & (F.size("reason_codes") > 0)
    kept = kept_on_disk(flat.withColumn("raw", F.when(rejected_record, F.col("raw"))))
    routed = kept.filter(~F.col("blank")).drop("blank")
    # A narrow copy of the record rows, written in the same pass: the rule counts, GX's scans (about eight) and the
    # event ids de-duplication counts read it instead of the flat rows, which hold every item's columns too.
    columns = checked_columns(record_suite)
    checked = kept_on_disk(kept.filter("record_row").select("blank", "reason_codes", *columns))
    checked_records = checked.filter(~F.col("blank"))
    # The JVM's first read of a Delta table takes seconds in a new process: it happens while Spark reads the day.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="other-days") as background:
        other_days_read = background.submit(ids_of_other_days, warehouse, day)
        code_counts = (
            checked.select("blank", F.explode_outer("reason_codes").alias("code"))
            .groupBy("blank", "code")
            .count()
            .collect()
        )
        other_days = other_days_read.result()
    blank_lines = sum(r["count"] for r in code_counts if r.blank)
    record_outcomes = quality.validate(
        checked_records.select(columns),
        record_suite,
        parameters,
        day.validation_name(RECORD_SUITE),
    )
    check_routing_agrees(record_outcomes, {r.code: r["count"] for r in code_counts if not r.blank and r.code})

    # Not kept again: labelling is a cheap pass over the kept rows (the few contested records are broadcast).
    labelled = label_records(routed, checked_records, other_days, run_date)
    labelled_records = labelled.filter("record_row")
    outcome_counts, by_reason = Counter(), Counter()
    for row in labelled_records.groupBy("outcome", "reason_codes").count().collect():
        outcome_counts[row.outcome] += row["count"]
        if row.outcome == "quarantined":
            by_reason.update(dict.fromkeys(row.reason_codes, row["count"]))
    counts = {
        "records_read": sum(outcome_counts.values()),
        "events_accepted": outcome_counts.get("accepted", 0),
        "exact_duplicates": outcome_counts.get("exact_duplicate", 0),
        "quarantined": outcome_counts.get("quarantined", 0),
    }
    accepted = labelled.filter(F.col("outcome") == "accepted")
    interactions = to_interactions(accepted, run_date, day.run_id).withColumn("dataset", F.lit(day.dataset))
    # read from the kept flat rows: the interaction rows are not flattened again
    by_offer = interactions_per_offer(interactions).toPandas()
    return LabelledDay(
        records.filter(~blank),
        kept,
        checked,
        labelled_records,
        interactions,
        by_offer,
        blank_lines,
        record_outcomes,
        counts,
        dict(by_reason),
    )


def validate_day(
    warehouse: Warehouse,
    quality: DataQualityRun,
    dataset_suite: dict,
    ingested: DatasetDay,
    day: LabelledDay,
    damaged_file_share: float,
) -> tuple[list[ExpectationOutcome], str | None]:
    """The dataset-level suite on the day's summary (its volume against the dataset's own trailing days, the share
    of its data files that were damaged): its outcomes and the failure message (None: passed)."""
    settings = warehouse.settings
    run_date = ingested.run_date
    over_limit = offers_over_conversion_limit(
        day.interactions_by_offer, settings.conversion_tolerance, settings.conversion_check_min
    )
    # a few rows per day: read without a Spark job
    history = rows_between(
        settings,
        DQ_RESULTS,
        "run_date",
        run_date - timedelta(days=settings.volume_trailing_days),
        run_date - timedelta(days=1),
    )
    trailing_mean = None
    if history is not None:
        passed = history[history["success"].eq(True) & (history["dataset"] == ingested.dataset)]
        trailing_mean = float(passed["events_accepted"].mean()) if len(passed) else None
    summary = day_summary(day.counts, trailing_mean, over_limit, damaged_file_share)
    parameters = {
        "min_events": settings.min_events_per_day,
        "max_quarantine_share": settings.max_quarantine_share,
        "max_damaged_file_share": settings.max_damaged_file_share,
        "min_volume_ratio": settings.min_volume_ratio,
        "max_volume_ratio": settings.max_volume_ratio,
        "conversion_tolerance": settings.conversion_tolerance,
    }
    # one row: validated in memory (GX's pandas engine), not as a Spark job per expectation
    outcomes = quality.validate(
        pd.DataFrame([summary]), dataset_suite, parameters, ingested.validation_name(DATASET_SUITE)
    )
    return outcomes, _failure_message(dataset_suite, outcomes, summary, parameters)


def write_day(
    warehouse: Warehouse,
    record_suite: dict,
    ingested: DatasetDay,
    day: LabelledDay,
    damaged_files: dict[str, str],
    success: bool,
) -> int:
    """Write the day's raw records, quarantine (with a row per damaged file) and, when it passed, interactions;
    returns interactions written."""
    run_date, run_id = ingested.run_date, ingested.run_id
    written = int(day.interactions_by_offer["rows"].sum()) if success else 0
    if warehouse.settings.keep_raw_events:
        raw = day.records.select(
            F.lit(run_date).alias("landing_date"),
            "source_file",
            F.get_json_object("raw", "$._id").alias("event_id"),
            "raw",
            F.lit(run_id).alias("run_id"),
            F.lit(ingested.dataset).alias("dataset"),
        )
        warehouse.replace_where(raw, EVENTS_RAW, ingested.rows("landing_date"))
    quarantined = day.labelled.filter(F.col("outcome") == "quarantined")
    if DEDUP_REASONS.keys() & day.by_reason.keys():
        quarantined = with_raw_text(quarantined, day.records)
    reasons = quarantine_reasons(record_suite, DEDUP_REASONS)
    quarantine = to_quarantine(quarantined, reasons, run_date, run_id).unionByName(
        damaged_quarantine(warehouse.spark, damaged_files, run_date, run_id)
    )
    quarantine = quarantine.withColumn("dataset", F.lit(ingested.dataset))
    warehouse.replace_where(quarantine, QUARANTINE, ingested.rows("run_date"))
    if success:
        warehouse.replace_where(day.interactions, INTERACTIONS, ingested.rows("landing_date"))
    return written


def settle_failed_day(warehouse: Warehouse, ingested: DatasetDay, replace_accepted: bool) -> str | None:
    """After a failing run: the interactions an earlier passing run accepted for the dataset's date (only a run
    that passes writes any) are kept, and the note returned says so, unless `replace_accepted` removes them."""
    interactions = warehouse.read(INTERACTIONS)
    if interactions is None:
        return None
    of_the_day = (F.col("landing_date") == F.lit(ingested.run_date)) & (F.col("dataset") == F.lit(ingested.dataset))
    accepted = interactions.filter(of_the_day).count()
    if not accepted:
        return None
    if replace_accepted:
        warehouse.replace_where(interactions.limit(0), INTERACTIONS, ingested.rows("landing_date"))
        return None
    return (
        f"kept the {accepted:,} interactions an earlier run that passed accepted for {ingested.run_date}: `offerrank "
        f"ingest --date {ingested.run_date} --dataset {ingested.dataset} --replace-accepted` removes them"
    )


def ingest_dataset(
    spark: SparkSession,
    settings: Settings,
    ingested: DatasetDay,
    root: str,
    known_offers: list[str] | None,
    replace_accepted: bool = False,
) -> IngestResult:
    """Ingest and validate one dataset's landing folder under `root`: read, label, validate, write (see the module
    docstring); NotLanded when the folder has no events (or lacks its completeness marker). A failing run keeps
    the interactions an earlier passing run accepted for the date, saying so, unless `replace_accepted`."""
    warehouse = Warehouse(spark, settings)
    record_suite = load_suite(settings.expectations_dir, RECORD_SUITE)
    dataset_suite = load_suite(settings.expectations_dir, DATASET_SUITE)

    landing = landing_files(root, ingested.run_date, settings.landing_marker)
    damaged_files = damaged(landing.files)
    records = read_records(spark, landing.without(set(damaged_files)))
    damaged_share = len(damaged_files) / sum(map(len, landing.files.values()))
    with DataQualityRun(settings.dq_docs_dir) as quality:
        day = label_day(warehouse, quality, record_suite, ingested, records, known_offers)
        dataset_outcomes, failure = validate_day(warehouse, quality, dataset_suite, ingested, day, damaged_share)
    interactions_written = write_day(warehouse, record_suite, ingested, day, damaged_files, success=failure is None)
    day.release()
    if failure is not None and (kept := settle_failed_day(warehouse, ingested, replace_accepted)):
        failure = f"{failure}; {kept}"
    quarantined_by_reason = {**day.by_reason, DAMAGED_FILE: len(damaged_files)} if damaged_files else day.by_reason

    result = IngestResult(
        dataset=ingested.dataset,
        run_date=ingested.run_date,
        run_id=ingested.run_id,
        blank_lines=day.blank_lines,
        quarantined_by_reason=quarantined_by_reason,
        interactions_written=interactions_written,
        success=failure is None,
        failure_message=failure,
        data_docs=quality.index_page,
        expectations=day.record_outcomes + dataset_outcomes,
        skipped_files=landing.skipped,
        damaged_files=[f"{path.rsplit('/', 1)[-1]}: {why}" for path, why in sorted(damaged_files.items())],
        **day.counts,
    )
    write_result(settings, result)
    return result


def not_landed(
    spark: SparkSession, settings: Settings, ingested: DatasetDay, reason: str, replace_accepted: bool = False
) -> IngestResult:
    """A dataset whose landing folder has no events: it fails validation, saying why; the interactions an earlier
    passing run accepted for the date are kept, saying so, unless `replace_accepted`."""
    if kept := settle_failed_day(Warehouse(spark, settings), ingested, replace_accepted):
        reason = f"{reason}; {kept}"
    counts = dict.fromkeys(
        ("records_read", "blank_lines", "events_accepted", "exact_duplicates", "quarantined", "interactions_written"), 0
    )
    result = IngestResult(
        dataset=ingested.dataset,
        run_date=ingested.run_date,
        run_id=ingested.run_id,
        quarantined_by_reason={},
        success=False,
        failure_message=reason,
        data_docs="",
        **counts,
    )
    write_result(settings, result)
    return result


def write_result(settings: Settings, result: IngestResult) -> None:
    """The result's `dq_results` row, replacing the dataset's row of the date: one small commit through `deltalake`,
    no Spark job."""
    row = asdict(result)
    data = pa.Table.from_pylist([{name: row[name] for name in _DQ_SCHEMA.names}], _DQ_SCHEMA)
    ingested = DatasetDay(result.dataset, result.run_date, result.run_id)
    write_frame(settings, DQ_RESULTS, data, "overwrite", ingested.rows("run_date"))


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: date,
    run_id: str | None = None,
    datasets: list[Dataset] | None = None,
    replace_accepted: bool = False,
) -> IngestRun:
    """Ingest `run_date` of every event dataset of the registry's catalog (or of `datasets`), each on its own: a
    dataset whose folder has no events is recorded as failing validation, and the others go on. Offers are judged
    against every catalog version current since the start of the date's lateness window, so the events of an offer
    deleted since are not quarantined. A dataset that fails keeps the interactions an earlier passing run accepted
    for the date unless `replace_accepted`."""
    from offerrank.catalog.registry import Registry

    run_id = run_id or f"manual__{run_date.isoformat()}"
    registry = Registry(settings)
    datasets = list(registry.catalog().datasets) if datasets is None else datasets
    if not datasets:
        raise FileNotFoundError("the registry's catalog has no event dataset: `offerrank apply -f catalog.yaml` first")
    known_offers = registry.offer_ids_since(record_parameters(settings, run_date)["earliest_event_ts"])
    Warehouse(spark, settings).require_datasets(INTERACTIONS, DQ_RESULTS)
    results = []
    for dataset in datasets:
        ingested = DatasetDay(dataset.name, run_date, run_id)
        try:
            results.append(ingest_dataset(spark, settings, ingested, dataset.path, known_offers, replace_accepted))
        except NotLanded as missing:
            results.append(not_landed(spark, settings, ingested, str(missing), replace_accepted))
    return IngestRun(results)


# a `dq_results` row: the fields of an IngestResult but its skipped and damaged file lists
_DQ_SCHEMA = pa.schema(
    [
        ("run_date", pa.date32()),
        ("dataset", pa.string()),
        ("run_id", pa.string()),
        ("records_read", pa.int64()),
        ("blank_lines", pa.int64()),
        ("events_accepted", pa.int64()),
        ("exact_duplicates", pa.int64()),
        ("quarantined", pa.int64()),
        ("quarantined_by_reason", pa.map_(pa.string(), pa.int64())),
        ("interactions_written", pa.int64()),
        (
            "expectations",
            pa.list_(
                pa.struct(
                    [
                        ("suite", pa.string()),
                        ("expectation", pa.string()),
                        ("column", pa.string()),
                        ("quarantine_code", pa.string()),
                        ("success", pa.bool_()),
                        ("unexpected_count", pa.int64()),
                        ("observed", pa.string()),
                    ]
                )
            ),
        ),
        ("success", pa.bool_()),
        ("failure_message", pa.string()),
        ("data_docs", pa.string()),
    ]
)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/ingest.py --date YYYY-MM-DD [--dataset NAME]... [--events PATH] [--run-id ID]
    [--nightly]`."""
    from offerrank.engines.spark import build_spark

    parser = argparse.ArgumentParser(prog="ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--dataset", action="append", dest="datasets", help="a catalog dataset (default: all)")
    parser.add_argument("--events", help="landing root of the one dataset named (default: its catalog path)")
    parser.add_argument("--run-id")
    parser.add_argument("--replace-accepted", action="store_true", help="as `offerrank ingest --replace-accepted`")
    parser.add_argument(
        "--nightly",
        action="store_true",
        help="a step of the nightly chain: a dataset that fails validation exits 0 (the validate task then holds "
        "back the models that learn from it, or stops the run when no dataset passed)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = build_spark(settings, "offerrank-ingest")
    datasets = chosen_datasets(spark, settings, args.datasets, args.events)
    result = run(spark, settings, args.date, args.run_id, datasets, args.replace_accepted)
    print(result.summary())
    return 0 if result.success or args.nightly else 1


def chosen_datasets(
    spark: SparkSession, settings: Settings, names: list[str] | None, events: str | None = None
) -> list[Dataset] | None:
    """The registry's datasets named (None: all); `events` overrides the landing root of the one named. An unknown
    name is a CatalogError naming the known ones."""
    from offerrank.catalog.registry import Registry

    if not names:
        if events:
            raise FileNotFoundError("--events needs the --dataset it is the landing root of")
        return None
    if events and len(names) > 1:
        raise FileNotFoundError("--events is the landing root of one dataset: name only one --dataset")
    catalog = Registry(settings).catalog()
    chosen = [catalog.dataset(name, "the registry's catalog") for name in names]
    return [dataset.model_copy(update={"path": events}) for dataset in chosen] if events else chosen


if __name__ == "__main__":
    from offerrank.engines.process import exit_cleanly

    exit_cleanly(main())
