"""Ingest and validate one landing date of proposition-interaction events.

Reads  `<events_root>/<date>/` (*.jsonl / *.json lines, *.parquet with the same nested columns).
Writes, under the warehouse root, replacing only that date's partition:
  events_raw    every record as received (raw text), source file, run id      (partition: landing_date)
  quarantine    every rejected record, its reason codes and a sentence          (partition: run_date)
  interactions  one row per (event, proposition, item) of accepted impressions and conversions
                (partition: landing_date; emptied for the date when dataset validation fails)
  dq_results    one row per run date: counts, each expectation's outcome, success
GX data docs go to `<dq_docs_dir>`. Run: `offerrank ingest --date YYYY-MM-DD` or
`spark-submit jobs/ingest.py --date YYYY-MM-DD`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from offerrank.quality import DataQualityRun, ExpectationOutcome, failure_predicates, load_suite
from offerrank.settings import Settings, load_settings
from offerrank.storage import read_table, replace_partition

# Serialized, so Spark accounts the cached bytes exactly and spills a large day to disk instead of running out of heap.
CACHE_LEVEL = StorageLevel.MEMORY_AND_DISK
RECORD_SUITE = "events_records"
DATASET_SUITE = "events_dataset"
EVENT_KINDS = {
    "decisioning.propositionDisplay": "display",
    "decisioning.propositionInteract": "interact",
    "decisioning.propositionDismiss": "dismiss",
    "decisioning.propositionSend": "send",
    "decisioning.propositionTrigger": "trigger",
}
INTERACTIONS = {"display": "impression", "interact": "conversion"}
ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

_ID = T.StructType([T.StructField("id", T.StringType())])
_ITEM = T.StructType([
    T.StructField("id", T.StringType()),
    T.StructField("name", T.StringType()),
    T.StructField("itemSelection", T.StructType([
        T.StructField("rankingDetail", T.StructType([T.StructField("trafficType", T.StringType())])),
    ])),
])
_PROPOSITION = T.StructType([
    T.StructField("id", T.StringType()),
    T.StructField("scope", T.StringType()),
    T.StructField("scopeDetails", T.StructType([
        T.StructField("placement", _ID),
        T.StructField("decisionPolicy", _ID),
        T.StructField("activity", _ID),
    ])),
    T.StructField("items", T.ArrayType(_ITEM)),
])
EVENT_SCHEMA = T.StructType([
    T.StructField("_id", T.StringType()),
    T.StructField("timestamp", T.StringType()),
    T.StructField("eventType", T.StringType()),
    T.StructField("identityMap", T.MapType(T.StringType(), T.ArrayType(T.StructType([
        T.StructField("id", T.StringType()),
        T.StructField("primary", T.BooleanType()),
    ])))),
    T.StructField("channel", T.StructType([T.StructField("_type", T.StringType())])),
    T.StructField("_experience", T.StructType([T.StructField("decisioning", T.StructType([
        T.StructField("propositionEventType", T.MapType(T.StringType(), T.LongType())),
        T.StructField("channelType", T.StringType()),
        T.StructField("propositions", T.ArrayType(_PROPOSITION)),
    ]))])),
])

PARSE_REASONS = {
    "invalid_utf8": "the record is not valid UTF-8",
    "oversized_record": "the record is larger than the allowed record size",
    "malformed_json": "the record is not valid JSON",
    "not_an_object": "the record is valid JSON but not an object",
    "wrong_field_type": "a field has the wrong JSON type (e.g. propositions or items not an array)",
}
DEDUP_REASONS = {
    "conflicting_duplicate": "another record with the same _id and different content won (earliest timestamp, then content hash order)",
    "duplicate_of_earlier_day": "the _id was already ingested from an earlier landing date",
}


class ValidationFailed(RuntimeError):
    """The day's dataset-level validation failed; nothing downstream may use it."""


@dataclass
class IngestResult:
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

    def summary(self) -> str:
        reasons = ", ".join(f"{code} {count:,}" for code, count in sorted(self.quarantined_by_reason.items())) or "none"
        verdict = "passed" if self.success else f"FAILED: {self.failure_message}"
        return (
            f"ingest {self.run_date}: {self.records_read:,} records read = {self.events_accepted:,} accepted + "
            f"{self.exact_duplicates:,} exact duplicates + {self.quarantined:,} quarantined ({reasons}); "
            f"{self.interactions_written:,} interactions; validation {verdict}; data docs {self.data_docs}"
        )


# --- reading (I/O edge) -------------------------------------------------------------------------------------

def landing_files(events_root: str, run_date: date) -> dict[str, list[str]]:
    """The date folder's event files by format; a missing or empty folder is a clear error."""
    folder = Path(events_root) / run_date.isoformat()
    files = {
        "json": sorted(str(p) for p in folder.glob("*.json*") if p.is_file()),
        "parquet": sorted(str(p) for p in folder.glob("*.parquet")),
    }
    if not any(files.values()):
        raise FileNotFoundError(f"no event files (*.jsonl, *.json, *.parquet) for {run_date} in {folder}")
    return files


def read_records(spark: SparkSession, files: dict[str, list[str]]) -> DataFrame:
    """One row per record: `source_file`, `raw` text (JSON lines as read; Parquet rows rendered as JSON)."""
    frames = []
    if files["json"]:
        frames.append(spark.read.text(files["json"]).select(F.col("_metadata.file_path").alias("source_file"), F.col("value").alias("raw")))
    if files["parquet"]:
        parquet = spark.read.schema(EVENT_SCHEMA).parquet(*files["parquet"])
        frames.append(parquet.select(
            F.col("_metadata.file_path").alias("source_file"), F.to_json(F.struct(*[F.col(c) for c in parquet.columns])).alias("raw")
        ))
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame)
    return records


# --- pure transformations -----------------------------------------------------------------------------------

def parse_json_lines(records: DataFrame, schema: T.StructType, max_record_bytes: int) -> DataFrame:
    """`records` (a `raw` text column) plus `j`, the record parsed with `schema`, and `parse_status`: ok, or why not."""
    raw = F.col("raw")
    with_corrupt = T.StructType(schema.fields + [T.StructField("_corrupt_record", T.StringType())])
    parsed = records.withColumn("j", F.from_json(raw, with_corrupt, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}))
    is_json_value = F.get_json_object(F.concat(F.lit('{"v":'), raw, F.lit("}")), "$.v").isNotNull()
    parse_status = (
        F.when(~F.is_valid_utf8(raw), "invalid_utf8")
        .when(F.octet_length(raw) > max_record_bytes, "oversized_record")
        .when(F.col("j._corrupt_record").isNull(), "ok")
        .when(F.json_object_keys(raw).isNull(), F.when(is_json_value, "not_an_object").otherwise("malformed_json"))
        .otherwise("wrong_field_type")
    )
    return parsed.withColumn("parse_status", F.coalesce(parse_status, F.lit("malformed_json")))


def parse_records(records: DataFrame, max_record_bytes: int, known_offers: list[str] | None = None) -> DataFrame:
    """Parse each record with the explicit event schema and derive the columns the record-level suite checks.

    `known_offers`: the catalog's offer ids; without a catalog, `unknown_offers` is null and not checked.
    """
    raw = F.col("raw")
    parsed = parse_json_lines(records, EVENT_SCHEMA, max_record_bytes)
    decisioning = F.col("j._experience.decisioning")
    propositions = F.coalesce(decisioning["propositions"], F.array())
    items = F.flatten(F.transform(propositions, lambda p: F.coalesce(p["items"], F.array())))
    placement = lambda p: F.coalesce(p["scopeDetails"]["placement"]["id"], p["scope"])  # noqa: E731
    decision = lambda p: F.coalesce(p["scopeDetails"]["decisionPolicy"]["id"], p["scopeDetails"]["activity"]["id"])  # noqa: E731
    ids = F.concat(
        F.transform(propositions, lambda p: p["id"]),
        F.transform(propositions, placement),
        F.transform(propositions, decision),
        F.transform(items, lambda i: i["id"]),
    )
    proposition_kinds = F.map_keys(F.map_filter(decisioning["propositionEventType"], lambda k, v: v == 1))
    return parsed.select(
        "source_file",
        "raw",
        _record_hash(raw).alias("record_hash"),
        "parse_status",
        F.col("j._id").alias("event_id"),
        F.col("j.timestamp").alias("timestamp_text"),
        F.try_to_timestamp(F.col("j.timestamp")).alias("event_ts"),
        F.col("j.eventType").alias("event_type"),
        map_values(F.col("j.eventType"), EVENT_KINDS).alias("event_kind"),
        F.when(F.size(proposition_kinds) == 1, F.get(proposition_kinds, 0)).alias("proposition_kind"),
        F.coalesce(
            F.nullif(F.regexp_extract(F.col("j.channel._type"), r"([^/]+)$", 1), F.lit("")), decisioning["channelType"]
        ).alias("channel"),
        primary_profile_id(F.col("j.identityMap")).alias("profile_id"),
        F.size(propositions).alias("propositions_count"),
        F.size(F.filter(propositions, lambda p: p["id"].isNull())).alias("propositions_without_id"),
        F.size(F.filter(propositions, lambda p: placement(p).isNull())).alias("propositions_without_placement"),
        F.size(F.filter(propositions, lambda p: F.coalesce(F.size(p["items"]), F.lit(0)) <= 0)).alias("propositions_without_items"),
        F.size(F.filter(items, lambda i: i["id"].isNull())).alias("items_without_id"),
        F.size(F.filter(ids, lambda i: i.isNotNull() & ~i.rlike(ID_PATTERN))).alias("ids_with_invalid_format"),
        (F.size(F.array_except(F.filter(F.transform(items, lambda i: i["id"]), lambda i: i.isNotNull()),
                               F.array(*map(F.lit, known_offers))))
         if known_offers is not None else F.lit(None).cast("int")).alias("unknown_offers"),
        propositions.alias("propositions"),
    )


def _record_hash(raw: Column) -> Column:
    """Identity of a record's content: equal text, equal hash (SHA-256, so distinct records never collide)."""
    return F.sha2(raw, 256)


def map_values(column: Column, mapping: dict[str, str]) -> Column:
    return F.try_element_at(F.create_map(*[F.lit(x) for pair in mapping.items() for x in pair]), column)


def primary_profile_id(identity_map: Column) -> Column:
    """The identity marked primary (any namespace, first in namespace order), else the first ECID."""
    identities = F.flatten(F.transform(F.map_entries(F.coalesce(identity_map, F.create_map())), lambda e: e["value"]))
    primary = F.filter(identities, lambda i: F.coalesce(i["primary"], F.lit(False)) & i["id"].isNotNull())
    return F.coalesce(F.get(primary, 0)["id"], F.get(F.try_element_at(identity_map, F.lit("ECID")), 0)["id"])


def route_records(parsed: DataFrame, record_suite: dict, parameters: dict) -> DataFrame:
    """Add `reason_codes`: every record-level expectation the record fails (empty array = valid)."""
    codes = [column for _, column in failure_predicates(record_suite, parameters)]
    return parsed.withColumn("reason_codes", F.filter(F.array(*codes), lambda c: c.isNotNull()))


def deduplicate(valid: DataFrame) -> DataFrame:
    """Label valid records `accepted`, `exact_duplicate` or `conflicting_duplicate` per event id.

    Identical copies of one record collapse to one; of differing records with the same id the earliest
    timestamp wins, then the smallest content hash, so the choice is the same on every run.
    """
    by_id = Window.partitionBy("event_id").orderBy("event_ts", "record_hash")
    return (
        valid.withColumn("_previous_hash", F.lag("record_hash").over(by_id))
        .withColumn("_version", F.dense_rank().over(by_id))
        .withColumn(
            "outcome",
            F.when(F.col("_previous_hash") == F.col("record_hash"), "exact_duplicate")
            .when(F.col("_version") == 1, "accepted")
            .otherwise("conflicting_duplicate"),
        )
        .drop("_previous_hash", "_version")
    )


def to_interactions(accepted: DataFrame, run_date: date, run_id: str) -> DataFrame:
    """One row per (event, proposition, item) of accepted impressions and conversions."""
    counted = accepted.filter(F.col("event_kind").isin(list(INTERACTIONS)))
    propositions = counted.select("*", F.explode("propositions").alias("p"))
    items = propositions.select("*", F.explode("p.items").alias("item"))
    return items.select(
        "event_id",
        "event_ts",
        F.to_date("event_ts").alias("event_date"),
        map_values(F.col("event_kind"), INTERACTIONS).alias("interaction"),
        "profile_id",
        F.col("p.id").alias("proposition_id"),
        F.coalesce(F.col("p.scopeDetails.placement.id"), F.col("p.scope")).alias("placement_id"),
        F.coalesce(F.col("p.scopeDetails.decisionPolicy.id"), F.col("p.scopeDetails.activity.id")).alias("decision_id"),
        F.col("item.id").alias("offer_id"),
        "channel",
        F.col("item.itemSelection.rankingDetail.trafficType").alias("traffic_type"),
        "source_file",
        F.lit(run_id).alias("run_id"),
        F.lit(run_date).alias("landing_date"),
    )


def with_raw_text(rejected: DataFrame, records: DataFrame) -> DataFrame:
    """Join the raw text back to rejected records by (source file, content hash)."""
    keys = rejected.select("source_file", "record_hash").distinct()
    texts = (
        records.withColumn("record_hash", _record_hash(F.col("raw")))
        .join(F.broadcast(keys), ["source_file", "record_hash"], "left_semi")
        .dropDuplicates(["source_file", "record_hash"])
    )
    return rejected.join(texts, ["source_file", "record_hash"], "left")


def reason_sentences(reasons: dict[str, str]) -> Column:
    """The `reason_codes` of a rejected row as one human sentence per code, joined by '; '."""
    return F.array_join(F.transform("reason_codes", lambda c: map_values(c, reasons)), "; ")


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


def day_summary(spark: SparkSession, counts: dict[str, int], trailing_mean: float | None, offers_over_limit: int) -> DataFrame:
    """The one-row frame the dataset-level suite validates."""
    accounted = counts["events_accepted"] + counts["exact_duplicates"] + counts["quarantined"]
    row = {
        "records_read": counts["records_read"],
        "records_accounted": accounted,
        "events_accepted": counts["events_accepted"],
        "quarantine_share": counts["quarantined"] / counts["records_read"] if counts["records_read"] else 0.0,
        "volume_ratio": counts["events_accepted"] / trailing_mean if trailing_mean else None,
        "offers_over_conversion_limit": offers_over_limit,
    }
    schema = "records_read long, records_accounted long, events_accepted long, quarantine_share double, " \
             "volume_ratio double, offers_over_conversion_limit long"
    return spark.createDataFrame([row], schema)


def offers_over_conversion_limit(interactions: DataFrame, tolerance: float, minimum: int) -> DataFrame:
    """Offers whose conversions on the day exceed their impressions by more than `tolerance`."""
    per_offer = interactions.groupBy("offer_id").agg(
        F.sum(F.when(F.col("interaction") == "impression", 1).otherwise(0)).alias("impressions"),
        F.countDistinct(F.when(F.col("interaction") == "conversion", F.concat_ws("|", "proposition_id", "offer_id"))).alias("conversions"),
    )
    return per_offer.filter(
        (F.col("conversions") >= minimum) & (F.col("conversions") > F.col("impressions") * (1 + tolerance))
    )


def record_parameters(settings: Settings, run_date: date) -> dict[str, datetime]:
    """The lateness window of a landing date, as the record-level suite's parameters."""
    start = datetime.combine(run_date, time.min, tzinfo=timezone.utc)
    return {
        "earliest_event_ts": start - timedelta(days=settings.lateness_days),
        "latest_event_ts": start + timedelta(days=1, minutes=settings.future_tolerance_minutes),
    }


def catalog_offer_ids(spark: SparkSession, settings: Settings) -> list[str] | None:
    """The registry's offer ids, or None before any catalog was applied."""
    from offerrank.registry import Registry

    catalog = Registry(spark, settings).catalog()
    return [offer.id for offer in catalog.offers] if catalog.offers else None


def label_records(routed: DataFrame, earlier_event_ids: DataFrame | None) -> DataFrame:
    """Every record with its `outcome` (accepted, exact_duplicate, quarantined) and final `reason_codes`."""
    valid = routed.filter(F.size("reason_codes") == 0)
    invalid = routed.filter(F.size("reason_codes") > 0).withColumn("outcome", F.lit("quarantined"))
    deduped = deduplicate(valid)
    if earlier_event_ids is not None:
        seen = earlier_event_ids.select("event_id", F.lit(True).alias("_seen")).distinct()
        deduped = deduped.join(seen, "event_id", "left").withColumn(
            "outcome",
            F.when((F.col("outcome") == "accepted") & F.col("_seen"), "duplicate_of_earlier_day").otherwise(F.col("outcome")),
        ).drop("_seen")
    deduped = deduped.withColumn(
        "reason_codes", F.when(F.col("outcome").isin(list(DEDUP_REASONS)), F.array("outcome")).otherwise(F.col("reason_codes"))
    ).withColumn("outcome", F.when(F.col("outcome").isin(list(DEDUP_REASONS)), "quarantined").otherwise(F.col("outcome")))
    return invalid.unionByName(deduped)


def _check_routing_agrees(outcomes: list[ExpectationOutcome], routed_counts: dict[str, int]) -> None:
    """GX's unexpected counts must equal the rows the job routed per code: the suite is the one rule source."""
    for outcome in outcomes:
        code = outcome.quarantine_code
        expected = sum(n for c, n in routed_counts.items() if c in PARSE_REASONS) if code == "$value" else routed_counts.get(code, 0)
        if (outcome.unexpected_count or 0) != expected:
            raise RuntimeError(
                f"record routing disagrees with Great Expectations for {outcome.expectation}({outcome.column}): "
                f"GX found {outcome.unexpected_count}, the job routed {expected}"
            )


def _failure_message(suite: dict, outcomes: list[ExpectationOutcome], summary: dict, parameters: dict) -> str | None:
    failed = [
        expectation["meta"]["failure"].format(**summary, **parameters)
        for expectation, outcome in zip(suite["expectations"], outcomes)
        if not outcome.success
    ]
    return "; ".join(failed) or None


def run_ingest(spark: SparkSession, settings: Settings, run_date: date, run_id: str | None = None,
               events_root: str | None = None) -> IngestResult:
    """Ingest and validate `run_date`'s landing folder; write the four tables (see the module docstring)."""
    run_id = run_id or f"manual__{run_date.isoformat()}"
    files = landing_files(events_root or settings.events_root, run_date)
    record_suite = load_suite(settings.expectations_dir, RECORD_SUITE)
    dataset_suite = load_suite(settings.expectations_dir, DATASET_SUITE)
    parameters = record_parameters(settings, run_date)

    records = read_records(spark, files)
    blank = F.trim(F.col("raw")) == ""
    known_offers = catalog_offer_ids(spark, settings)
    blank_lines = records.filter(blank).count()
    records = records.filter(~blank)
    # The raw text is the bulk of a day: the cache keeps its hash, and the text is read again where it is written.
    routed = route_records(parse_records(records, settings.max_record_bytes, known_offers), record_suite, parameters) \
        .drop("raw").persist(CACHE_LEVEL)
    quality = DataQualityRun(settings.dq_docs_dir)
    record_outcomes = quality.validate(routed.drop("propositions", "record_hash"), record_suite, parameters, f"{RECORD_SUITE}-{run_date}")
    routed_counts = {r.code: r["count"] for r in routed.select(F.explode("reason_codes").alias("code")).groupBy("code").count().collect()}
    _check_routing_agrees(record_outcomes, routed_counts)

    interactions_path = settings.table_path("interactions")
    earlier = read_table(spark, interactions_path)
    if earlier is not None and settings.lateness_days:
        earlier = earlier.filter(F.col("landing_date").between(run_date - timedelta(days=settings.lateness_days), run_date - timedelta(days=1)))
    labelled = label_records(routed, earlier).persist(CACHE_LEVEL)

    outcome_counts = {r.outcome: r["count"] for r in labelled.groupBy("outcome").count().collect()}
    by_reason = {r.code: r["count"] for r in labelled.filter(F.col("outcome") == "quarantined")
                 .select(F.explode("reason_codes").alias("code")).groupBy("code").count().collect()}
    counts = {
        "records_read": sum(outcome_counts.values()),
        "events_accepted": outcome_counts.get("accepted", 0),
        "exact_duplicates": outcome_counts.get("exact_duplicate", 0),
        "quarantined": outcome_counts.get("quarantined", 0),
    }
    interactions = to_interactions(labelled.filter(F.col("outcome") == "accepted"), run_date, run_id).persist(CACHE_LEVEL)
    over_limit = offers_over_conversion_limit(interactions, settings.conversion_tolerance, settings.conversion_check_min).count()

    dq_path = settings.table_path("dq_results")
    history = read_table(spark, dq_path)
    trailing_mean = None
    if history is not None:
        window = history.filter(
            F.col("success") & F.col("run_date").between(run_date - timedelta(days=settings.volume_trailing_days), run_date - timedelta(days=1))
        )
        trailing_mean = window.agg(F.avg("events_accepted")).first()[0]
    summary_frame = day_summary(spark, counts, trailing_mean, over_limit)
    dataset_parameters = {
        "min_events": settings.min_events_per_day,
        "max_quarantine_share": settings.max_quarantine_share,
        "min_volume_ratio": settings.min_volume_ratio,
        "max_volume_ratio": settings.max_volume_ratio,
        "conversion_tolerance": settings.conversion_tolerance,
    }
    dataset_outcomes = quality.validate(summary_frame, dataset_suite, dataset_parameters, f"{DATASET_SUITE}-{run_date}")
    summary = summary_frame.first().asDict()
    summary["volume_ratio"] = summary["volume_ratio"] if summary["volume_ratio"] is not None else float("nan")
    failure = _failure_message(dataset_suite, dataset_outcomes, summary, dataset_parameters)
    success = failure is None

    replace_partition(
        records.select(F.lit(run_date).alias("landing_date"), "source_file", F.get_json_object("raw", "$._id").alias("event_id"),
                       "raw", F.lit(run_id).alias("run_id")),
        settings.table_path("events_raw"), "landing_date", run_date,
    )
    reasons = {**PARSE_REASONS, **DEDUP_REASONS, **{e["meta"]["quarantine_code"]: e["meta"]["reason"] for e in record_suite["expectations"]}}
    quarantined = with_raw_text(labelled.filter(F.col("outcome") == "quarantined"), records)
    replace_partition(to_quarantine(quarantined, reasons, run_date, run_id),
                      settings.table_path("quarantine"), "run_date", run_date)
    published = interactions if success else interactions.limit(0)
    replace_partition(published, interactions_path, "landing_date", run_date)
    interactions_written = interactions.count() if success else 0

    result = IngestResult(
        run_date=run_date, run_id=run_id, blank_lines=blank_lines, quarantined_by_reason=by_reason,
        interactions_written=interactions_written, success=success, failure_message=failure,
        data_docs=quality.index_page, expectations=record_outcomes + dataset_outcomes, **counts,
    )
    replace_partition(_dq_row(spark, result), dq_path, "run_date", run_date)
    for cached in (routed, labelled, interactions):
        cached.unpersist()
    return result


_DQ_SCHEMA = T.StructType([
    T.StructField("run_date", T.DateType()),
    T.StructField("run_id", T.StringType()),
    T.StructField("records_read", T.LongType()),
    T.StructField("blank_lines", T.LongType()),
    T.StructField("events_accepted", T.LongType()),
    T.StructField("exact_duplicates", T.LongType()),
    T.StructField("quarantined", T.LongType()),
    T.StructField("quarantined_by_reason", T.MapType(T.StringType(), T.LongType())),
    T.StructField("interactions_written", T.LongType()),
    T.StructField("expectations", T.ArrayType(T.StructType([
        T.StructField("suite", T.StringType()),
        T.StructField("expectation", T.StringType()),
        T.StructField("column", T.StringType()),
        T.StructField("quarantine_code", T.StringType()),
        T.StructField("success", T.BooleanType()),
        T.StructField("unexpected_count", T.LongType()),
        T.StructField("observed", T.StringType()),
    ]))),
    T.StructField("success", T.BooleanType()),
    T.StructField("failure_message", T.StringType()),
    T.StructField("data_docs", T.StringType()),
])


def _dq_row(spark: SparkSession, result: IngestResult) -> DataFrame:
    row = asdict(result)
    return spark.createDataFrame([{name: row[name] for name in _DQ_SCHEMA.fieldNames()}], _DQ_SCHEMA)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/ingest.py --date YYYY-MM-DD [--events PATH] [--run-id ID]`."""
    from offerrank.spark import build_spark

    parser = argparse.ArgumentParser(prog="ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--events", help="landing root (default OFFERRANK_EVENTS_ROOT)")
    parser.add_argument("--run-id")
    parser.add_argument("--keep-going", action="store_true",
                        help="exit 0 when the day fails validation (Airflow's validate task then stops the run)")
    args = parser.parse_args(argv)
    settings = load_settings()
    result = run_ingest(build_spark(settings, "offerrank-ingest"), settings, args.date, args.run_id, args.events)
    print(result.summary())
    return 0 if result.success or args.keep_going else 1


if __name__ == "__main__":
    sys.exit(main())
