"""Load the profile-segment snapshot a run date uses: which profiles belong to which segments (audiences).

Reads  `<profiles_root>/<snapshot date>/*.json*` — the latest snapshot folder on or before the run date (with
       `OFFERRANK_LANDING_MARKER` set, the latest that holds the marker, as for events), JSON
       lines in the layout of an XDM Individual Profile export: `identityMap` (the same identity rule as the
       events: the primary identity, else the first ECID) and `segmentMembership.ups.<segment id>.status`.
       and the profile attributes the active contextual models declare (paths such as `person.ageBand`).
Writes, replacing only that snapshot's partition:
  profile_segments    one row per (snapshot_date, profile_id, segment) whose status is realized or existing
  profile_attributes  one row per (snapshot_date, profile_id, attribute) with a valid value (missing: no row)
  profile_quarantine  every membership, attribute value (or unreadable line) that failed validation, its reason
                      codes and why
Validated with the GX suites `expectations/profile_segments.json` and `profile_attributes.json`; when more than
`max_quarantine_share` of the memberships fail, only the quarantine is written and the runs keep using the last
good snapshot; when more than that share of the attribute values fail, the memberships load and the last good
attributes stay in use.
Run: `offerrank profiles --date D` or `spark-submit jobs/profiles.py --date D`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from offerrank.catalog import Feature
from offerrank.engines.delta_spark import Warehouse
from offerrank.engines.landing import date_folders, landed, scan
from offerrank.engines.quality import DataQualityRun, load_suite
from offerrank.engines.spark import CACHE_LEVEL
from offerrank.errors import Refused, exit_code
from offerrank.events.quarantine import quarantine_reasons, reason_sentences, route_records
from offerrank.events.xdm import EVENT_SCHEMA, parse_json_lines, primary_profile_id
from offerrank.settings import Settings
from offerrank.tables import PROFILE_ATTRIBUTES, PROFILE_QUARANTINE, PROFILE_SEGMENTS, latest_on_or_before

log = logging.getLogger(__name__)

SUITE = "profile_segments"
ATTRIBUTE_SUITE = "profile_attributes"
MEMBER_STATUSES = ("realized", "existing")
PROFILE_SCHEMA = T.StructType(
    [
        EVENT_SCHEMA["identityMap"],
        T.StructField(
            "segmentMembership",
            T.StructType(
                [
                    T.StructField(
                        "ups",
                        T.MapType(
                            T.StringType(),
                            T.StructType(
                                [
                                    T.StructField("status", T.StringType()),
                                    T.StructField("lastQualificationTime", T.StringType()),
                                ]
                            ),
                        ),
                    ),
                ]
            ),
        ),
    ]
)


class SnapshotRejected(Refused, RuntimeError):
    """Too many of the snapshot's memberships failed validation; the last good snapshot stays in use."""


@dataclass
class ProfilesResult:
    snapshot_date: date | None
    profiles: int = 0
    memberships: int = 0
    attribute_values: int = 0
    quarantined: int = 0
    attributes_rejected: bool = False  # more than the allowed share of attribute values failed: none loaded
    unfinished: str = ""  # the newer snapshot folders left alone for lack of their completeness marker, and why

    def summary(self) -> str:
        if self.snapshot_date is None:
            loaded = "no profile snapshot on or before the run date: segment facts are skipped"
        else:
            loaded = (
                f"profile snapshot {self.snapshot_date}: {self.memberships:,} memberships of {self.profiles:,} "
                f"profiles and {self.attribute_values:,} attribute values loaded, {self.quarantined:,} quarantined"
                + ("; attribute values REJECTED: the last good ones stay in use" if self.attributes_rejected else "")
            )
        return f"{loaded}; {self.unfinished}" if self.unfinished else loaded


def snapshot_folder(profiles_root: str, run_date: date, marker: str = "") -> tuple[date, str] | None:
    """The latest `<profiles_root>/YYYY-MM-DD` folder on or before `run_date` that has landed (with a completeness
    `marker` set, one that holds it: as for events), None when there is none."""
    dated = {
        day: folder for day, folder in snapshot_folders(profiles_root, run_date) if not marker or landed(folder, marker)
    }
    latest = latest_on_or_before(dated, run_date)
    return (latest, dated[latest]) if latest else None


def snapshot_folders(profiles_root: str, run_date: date) -> list[tuple[date, str]]:
    """The `<profiles_root>/YYYY-MM-DD` folders on or before `run_date` (never a symbolic link), oldest first."""
    dated = []
    for folder in date_folders(profiles_root):
        try:
            day = date.fromisoformat(folder.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            continue
        if day <= run_date:
            dated.append((day, folder))
    return dated


def memberships(records: DataFrame, max_record_bytes: int) -> DataFrame:
    """One row per (line, segment): `parse_status`, `profile_id`, `segment`, `status`; an unreadable line keeps
    one row."""
    parsed = parse_json_lines(records, PROFILE_SCHEMA, max_record_bytes)
    readable = F.col("parse_status") == "ok"
    return (
        parsed.select(
            "source_file",
            "raw",
            "parse_status",
            F.when(readable, primary_profile_id(F.col("j.identityMap"))).alias("profile_id"),
            F.explode_outer(F.when(readable, F.col("j.segmentMembership.ups"))).alias("segment", "membership"),
        )
        .select(
            "source_file", "raw", "parse_status", "profile_id", "segment", F.col("membership.status").alias("status")
        )
        .filter(~readable | F.col("segment").isNotNull())
    )


def attribute_values(records: DataFrame, attributes: list[Feature], max_record_bytes: int) -> DataFrame:
    """One row per (readable line with an identity, declared attribute with a value): `profile_id`, `attribute`,
    `value` (as text; an object or list as JSON), `kind` (numeric when the model buckets it, else categorical) and
    `allowed` (yes, or no when the value is not one of the attribute's declared values)."""
    if not attributes:
        return records.sparkSession.createDataFrame(
            [],
            "source_file string, raw string, profile_id string, attribute string, value string, kind string, "
            "allowed string",
        )
    parsed = parse_json_lines(records, PROFILE_SCHEMA, max_record_bytes).filter(F.col("parse_status") == "ok")
    declared = F.explode(
        F.array(
            *[
                F.struct(
                    F.lit(feature.name).alias("attribute"),
                    F.get_json_object("raw", f"$.{feature.name}").alias("value"),
                    F.lit("numeric" if feature.buckets else "categorical").alias("kind"),
                    F.lit(list(feature.values) or None).cast("array<string>").alias("values"),
                )
                for feature in attributes
            ]
        )
    )
    rows = parsed.select(
        "source_file", "raw", primary_profile_id(F.col("j.identityMap")).alias("profile_id"), declared.alias("a")
    )
    value = F.col("a.value")
    return rows.filter(F.col("profile_id").isNotNull() & value.isNotNull()).select(
        "source_file",
        "raw",
        "profile_id",
        "a.attribute",
        "a.value",
        "a.kind",
        F.when(F.col("a.values").isNull() | F.array_contains("a.values", value), "yes")
        .otherwise("no")
        .alias("allowed"),
    )


def run(spark: SparkSession, settings: Settings, run_date: date, attributes: Sequence[Feature] = ()) -> ProfilesResult:
    """Validate and load the snapshot `run_date` uses, with the profile `attributes` of contextual models (see the
    module docstring)."""
    marker = settings.landing_marker
    found = snapshot_folder(settings.profiles_root, run_date, marker)
    newer = [day for day, _ in snapshot_folders(settings.profiles_root, run_date) if found is None or day > found[0]]
    unfinished = (
        f"snapshot {', '.join(map(str, newer))} not loaded: no {marker} marker yet (its producer has not finished)"
        if newer and marker
        else ""
    )
    if found is None:
        return ProfilesResult(None, unfinished=unfinished)
    snapshot_date, folder = found
    files = scan(folder).files["json"]
    if not files:
        raise FileNotFoundError(f"profile snapshot folder {folder} holds no *.jsonl / *.json files")
    suite = load_suite(settings.expectations_dir, SUITE)
    records = (
        spark.read.text(files)
        .select(F.col("_metadata.file_path").alias("source_file"), F.col("value").alias("raw"))
        .filter(F.trim("raw") != "")
    )
    attribute_suite = load_suite(settings.expectations_dir, ATTRIBUTE_SUITE)
    routed = route_records(memberships(records, settings.max_record_bytes), suite, {}).persist(CACHE_LEVEL)
    values = route_records(
        attribute_values(records, list(attributes), settings.max_record_bytes), attribute_suite, {}
    ).persist(CACHE_LEVEL)
    with DataQualityRun(settings.dq_docs_dir) as quality:
        outcomes = quality.validate(routed.drop("raw"), suite, {}, f"{SUITE}-{snapshot_date}")
        if attributes:
            outcomes += quality.validate(values.drop("raw"), attribute_suite, {}, f"{ATTRIBUTE_SUITE}-{snapshot_date}")
    memberships_read, values_read = routed.count(), values.count()

    def rejected_rows(frame: DataFrame, checked_by: dict, *columns: str) -> DataFrame:
        reasons = reason_sentences(quarantine_reasons(checked_by)).alias("reasons")
        return frame.filter(F.size("reason_codes") > 0).select(
            "source_file", "raw", "profile_id", *columns, "reason_codes", reasons
        )

    rejected_values = rejected_rows(values, attribute_suite, "attribute", "value")
    # a membership has no attribute and value, an attribute value no segment and status
    rejected = rejected_rows(routed, suite, "segment", "status").unionByName(rejected_values, allowMissingColumns=True)
    quarantined, values_rejected = rejected.count(), rejected_values.count()
    warehouse = Warehouse(spark, settings)
    warehouse.replace_partition(
        rejected.select(F.lit(snapshot_date).alias("snapshot_date"), "*"), PROFILE_QUARANTINE, snapshot_date
    )
    limit = settings.max_quarantine_share
    memberships_rejected = quarantined - values_rejected
    if memberships_read and memberships_rejected / memberships_read > limit:
        routed.unpersist()
        values.unpersist()
        failed = {o.quarantine_code: o.unexpected_count for o in outcomes if not o.success}
        raise SnapshotRejected(
            f"profile snapshot {snapshot_date}: {memberships_rejected:,} of {memberships_read:,} memberships failed "
            f"validation ({failed}, see profile_quarantine); more than the allowed {limit:.0%}, so the last good "
            f"snapshot stays in use"
        )
    # too many bad attribute values (a model's `values` list out of date, say): the last good attributes stay in
    # use, the snapshot's segments are loaded
    attributes_rejected = bool(values_read and values_rejected / values_read > limit)
    members = (
        routed.filter((F.size("reason_codes") == 0) & F.col("status").isin(*MEMBER_STATUSES))
        .withColumn("snapshot_date", F.lit(snapshot_date))
        .select(*PROFILE_SEGMENTS.column_names)
        .distinct()
    )
    warehouse.replace_partition(members, PROFILE_SEGMENTS, snapshot_date)
    valid_values = (
        values.filter(F.size("reason_codes") == 0)
        .withColumn("snapshot_date", F.lit(snapshot_date))
        .select(*PROFILE_ATTRIBUTES.column_names)
        .dropDuplicates(["profile_id", "attribute"])  # a profile exported twice: one value per attribute
    )
    if not attributes_rejected:
        warehouse.replace_partition(valid_values, PROFILE_ATTRIBUTES, snapshot_date)
    segments = warehouse.read(PROFILE_SEGMENTS)
    assert segments is not None, f"{PROFILE_SEGMENTS.name} written just above"
    written = segments.filter(F.col("snapshot_date") == snapshot_date)
    counts = written.agg(F.count("*").alias("memberships"), F.countDistinct("profile_id").alias("profiles")).first()
    assert counts is not None  # an aggregate without grouping has exactly one row
    attribute_count = 0 if attributes_rejected else valid_values.count()
    routed.unpersist()
    values.unpersist()
    return ProfilesResult(
        snapshot_date,
        profiles=counts.profiles,
        memberships=counts.memberships,
        attribute_values=attribute_count,
        quarantined=quarantined,
        attributes_rejected=attributes_rejected,
        unfinished=unfinished,
    )


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/profiles.py --date YYYY-MM-DD`."""
    from offerrank.engines.process import configure_logging
    from offerrank.jobs import job_session

    configure_logging()
    parser = argparse.ArgumentParser(prog="profiles", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 when the snapshot is rejected (the run goes on with the last good snapshot)",
    )
    args = parser.parse_args(argv)
    spark, settings, catalog = job_session("profiles")
    try:
        log.info("%s", run(spark, settings, args.date, catalog.contextual_attributes()).summary())
    except SnapshotRejected as rejected:
        log.warning("%s", rejected)
        return 0 if args.keep_going else exit_code(rejected)
    return 0


if __name__ == "__main__":
    from offerrank.engines.process import exit_cleanly

    exit_cleanly(main())
