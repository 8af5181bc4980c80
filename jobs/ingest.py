"""Ingest and validate one landing date of proposition-interaction events, each event dataset on its own.

Reads  `<dataset path>/<date>/` of every catalog dataset (or those named): *.jsonl / *.json lines, optionally
       gzipped, *.parquet with the same nested columns; what else is in the folder is skipped and reported (see
       `offerrank.engines.landing`). A dataset's path is a folder or an object-store URI.
Writes, under the warehouse root, replacing only that date's rows of that dataset (column `dataset`):
  events_raw    every record as received (raw text), source file, run id      (partition: landing_date)
  quarantine    every rejected record, its reason codes and a sentence, and one row per damaged data file and per
                symbolic link (never followed) (partition: run_date)
  interactions  one row per (event, proposition, item) of accepted impressions and conversions
                (partition: landing_date; written only when the dataset's day passes validation: a failing re-run
                keeps what an earlier passing run accepted, saying so, unless --replace-accepted)
  dq_results    one row per run date and dataset: counts, each expectation's outcome, success
A dataset that fails validation, or whose folder has no events, does not stop the others. GX data docs go to
`<dq_docs_dir>` (one validation per suite, dataset and date). Run: `offerrank ingest --date YYYY-MM-DD [--dataset
NAME] [--replace-accepted]` or `spark-submit jobs/ingest.py --date YYYY-MM-DD [--dataset NAME]`.

The rules live with the events (`offerrank.events`): reading a landing folder (`records`), parsing and flattening
(`xdm`), quarantine routing and rows (`quarantine`), de-duplication (`dedup`) and the day's checks (`day_checks`);
this job reads, calls them in order and writes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import Dataset
from offerrank.engines.delta_rs import open_table, rows_between, write_frame
from offerrank.engines.delta_spark import Warehouse
from offerrank.engines.landing import LandingFolder, damaged
from offerrank.engines.quality import DataQualityRun, ExpectationOutcome, checked_columns, load_suite
from offerrank.engines.spark import kept_on_disk, release_kept
from offerrank.events.day_checks import (
    DATASET_SUITE,
    RECORD_SUITE,
    IngestResult,
    IngestRun,
    dataset_parameters,
    day_summary,
    failure_message,
    interactions_per_offer,
    lateness_window,
    offers_over_conversion_limit,
    record_parameters,
    shared_event_ids,
    shared_ids_warnings,
    trailing_mean,
)
from offerrank.events.dedup import DEDUP_REASONS, label_records, tally, with_raw_text
from offerrank.events.quarantine import (
    DAMAGED_FILE,
    SYMBOLIC_LINK,
    check_routing_agrees,
    file_quarantine,
    quarantine_reasons,
    route_records,
    to_quarantine,
)
from offerrank.events.records import DatasetDay, NotLanded, landing_files, read_records, to_events_raw
from offerrank.events.xdm import flatten_records, parse_records, to_interactions
from offerrank.settings import Settings, load_settings
from offerrank.tables import DQ_RESULTS, EVENTS_RAW, INTERACTIONS, QUARANTINE, manual_run_id

log = logging.getLogger(__name__)


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


def accepted_ids(
    warehouse: Warehouse, landing_dates: Iterable[date], where: Column, columns: tuple[str, ...]
) -> DataFrame | None:
    """The `columns` of the interactions accepted on `landing_dates` that match `where` (None: none of those dates
    is in the table; its log lists its landing dates, so a day alone reads no Delta files at all)."""
    interactions = open_table(warehouse.settings, INTERACTIONS)
    landed = (
        set() if interactions is None else {date.fromisoformat(p["landing_date"]) for p in interactions.partitions()}
    )
    wanted = sorted(landed & set(landing_dates))
    if not wanted:
        return None
    accepted = warehouse.read(INTERACTIONS)
    assert accepted is not None, f"{INTERACTIONS.name} lists landing dates in its log"
    return accepted.filter(F.col("landing_date").isin(wanted) & where).select(*columns)


def ids_of_other_days(warehouse: Warehouse, day: DatasetDay) -> DataFrame | None:
    """The event ids (and `landing_date`) the dataset's other landing dates of the lateness window accepted, before
    and after the day (None: no window, or no interactions of another landing date in it)."""
    lateness = warehouse.settings.lateness_days
    window = [day.run_date + timedelta(days=offset) for offset in range(-lateness, lateness + 1) if offset]
    return accepted_ids(warehouse, window, F.col("dataset") == F.lit(day.dataset), ("event_id", "landing_date"))


def ids_of_other_datasets(warehouse: Warehouse, day: DatasetDay) -> DataFrame | None:
    """The `dataset` and `event_id` of the interactions other datasets accepted for the day's landing date (None:
    the table has no rows of that date)."""
    return accepted_ids(warehouse, [day.run_date], F.col("dataset") != F.lit(day.dataset), ("dataset", "event_id"))


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
    counts, by_reason = tally(labelled_records.groupBy("outcome", "reason_codes").count().collect())
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
        by_reason,
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
    summary = day_summary(day.counts, trailing_mean(history, ingested.dataset), over_limit, damaged_file_share)
    parameters = dataset_parameters(settings)
    # one row: validated in memory (GX's pandas engine), not as a Spark job per expectation
    outcomes = quality.validate(
        pd.DataFrame([summary]), dataset_suite, parameters, ingested.validation_name(DATASET_SUITE)
    )
    return outcomes, failure_message(dataset_suite, outcomes, summary, parameters)


def write_day(
    warehouse: Warehouse,
    record_suite: dict,
    ingested: DatasetDay,
    day: LabelledDay,
    landing: LandingFolder,
    damaged_files: dict[str, str],
    success: bool,
) -> int:
    """Write the day's raw records, quarantine (with a row per damaged file and per symbolic link) and, when it
    passed, interactions; returns interactions written."""
    run_date, run_id = ingested.run_date, ingested.run_id
    written = int(day.interactions_by_offer["rows"].sum()) if success else 0
    if warehouse.settings.keep_raw_events:
        raw = to_events_raw(day.records, ingested)
        warehouse.replace_where(raw, EVENTS_RAW, ingested.rows("landing_date"))
    quarantined = day.labelled.filter(F.col("outcome") == "quarantined")
    if DEDUP_REASONS.keys() & day.by_reason.keys():
        quarantined = with_raw_text(quarantined, day.records)
    reasons = quarantine_reasons(record_suite, DEDUP_REASONS)
    quarantine = to_quarantine(quarantined, reasons, run_date, run_id).unionByName(
        file_quarantine(warehouse.spark, damaged_files, landing.links, run_date, run_id)
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
    others = ids_of_other_datasets(warehouse, ingested)
    shared = (
        {} if others is None else {r.dataset: r["count"] for r in shared_event_ids(day.interactions, others).collect()}
    )
    interactions_written = write_day(
        warehouse, record_suite, ingested, day, landing, damaged_files, success=failure is None
    )
    day.release()
    if failure is not None and (kept := settle_failed_day(warehouse, ingested, replace_accepted)):
        failure = f"{failure}; {kept}"
    file_reasons = {DAMAGED_FILE: len(damaged_files), SYMBOLIC_LINK: len(landing.links)}
    quarantined_by_reason = day.by_reason | {code: count for code, count in file_reasons.items() if count}

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
        shared_ids=shared_ids_warnings(shared, day.counts["events_accepted"], ingested.run_date),
        **day.counts,
    )
    for warning in result.shared_ids:
        log.warning("dataset %s of %s: %s", ingested.dataset, ingested.run_date, warning)
    write_result(settings, result)
    return result


def not_landed(
    spark: SparkSession, settings: Settings, ingested: DatasetDay, reason: str, replace_accepted: bool = False
) -> IngestResult:
    """A dataset whose landing folder has no events: it fails validation, saying why; the interactions an earlier
    passing run accepted for the date are kept, saying so, unless `replace_accepted`."""
    if kept := settle_failed_day(Warehouse(spark, settings), ingested, replace_accepted):
        reason = f"{reason}; {kept}"
    result = IngestResult(
        dataset=ingested.dataset,
        run_date=ingested.run_date,
        run_id=ingested.run_id,
        records_read=0,
        blank_lines=0,
        events_accepted=0,
        exact_duplicates=0,
        quarantined=0,
        quarantined_by_reason={},
        interactions_written=0,
        success=False,
        failure_message=reason,
        data_docs="",
    )
    write_result(settings, result)
    return result


def write_result(settings: Settings, result: IngestResult) -> None:
    """The result's `dq_results` row, replacing the dataset's row of the date: one small commit through `deltalake`,
    no Spark job."""
    row = asdict(result)
    data = pa.Table.from_pylist([{name: row[name] for name in DQ_RESULTS.column_names}], DQ_RESULTS.arrow_schema())
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

    run_id = run_id or manual_run_id(run_date)
    registry = Registry(settings)
    datasets = list(registry.catalog().datasets) if datasets is None else datasets
    if not datasets:
        raise FileNotFoundError("the registry's catalog has no event dataset: `offerrank apply -f catalog.yaml` first")
    known_offers = registry.offer_ids_since(lateness_window(settings, run_date)["earliest_event_ts"])
    Warehouse(spark, settings).require_datasets(INTERACTIONS, DQ_RESULTS)
    results = []
    for dataset in datasets:
        ingested = DatasetDay(dataset.name, run_date, run_id)
        log.info("ingesting dataset %s of %s from %s (run %s)", dataset.name, run_date, dataset.path, run_id)
        try:
            results.append(ingest_dataset(spark, settings, ingested, dataset.path, known_offers, replace_accepted))
        except NotLanded as missing:
            log.warning("dataset %s of %s has not landed: %s", dataset.name, run_date, missing)
            results.append(not_landed(spark, settings, ingested, str(missing), replace_accepted))
    return IngestRun(results)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/ingest.py --date YYYY-MM-DD [--dataset NAME]... [--events PATH] [--run-id ID]
    [--nightly]`."""
    from offerrank.engines.process import configure_logging
    from offerrank.engines.spark import build_spark

    configure_logging()
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
    for outcome in result.results:
        (log.info if outcome.success else log.warning)("%s", outcome.summary())
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
