"""Load the profile-segment snapshot a run date uses: which profiles belong to which segments (audiences).

Reads  `<profiles_root>/<snapshot date>/*.json*` — the latest snapshot folder on or before the run date, JSON
       lines in the layout of an XDM Individual Profile export: `identityMap` (the same identity rule as the
       events: the primary identity, else the first ECID) and `segmentMembership.ups.<segment id>.status`.
Writes, replacing only that snapshot's partition:
  profile_segments    one row per (snapshot_date, profile_id, segment) whose status is realized or existing
  profile_quarantine  every membership (or unreadable line) that failed validation, its reason codes and why
Validated with the GX suite `expectations/profile_segments.json`; when more than `max_quarantine_share` of the
memberships fail, only the quarantine is written and the runs keep using the last good snapshot.
Run: `offerrank profiles --date D` or `spark-submit jobs/profiles.py --date D`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from offerrank.landing import scan
from offerrank.quality import DataQualityRun, load_suite
from offerrank.quarantine import quarantine_reasons, reason_sentences, route_records
from offerrank.settings import Settings, load_settings
from offerrank.spark import CACHE_LEVEL
from offerrank.storage import Warehouse
from offerrank.tables import PROFILE_QUARANTINE, PROFILE_SEGMENTS, latest_on_or_before
from offerrank.xdm import EVENT_SCHEMA, parse_json_lines, primary_profile_id

SUITE = "profile_segments"
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


class SnapshotRejected(RuntimeError):
    """Too many of the snapshot's memberships failed validation; the last good snapshot stays in use."""


@dataclass
class ProfilesResult:
    snapshot_date: date | None
    profiles: int = 0
    memberships: int = 0
    quarantined: int = 0

    def summary(self) -> str:
        if self.snapshot_date is None:
            return "no profile snapshot on or before the run date: segment facts are skipped"
        return (
            f"profile snapshot {self.snapshot_date}: {self.memberships:,} memberships of {self.profiles:,} profiles "
            f"loaded, {self.quarantined:,} quarantined"
        )


def snapshot_folder(profiles_root: str, run_date: date) -> tuple[date, Path] | None:
    """The latest `<profiles_root>/YYYY-MM-DD` folder on or before `run_date` (None when there is none)."""
    dated = {}
    for folder in Path(profiles_root).glob("????-??-??"):
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if folder.is_dir():
            dated[day] = folder
    latest = latest_on_or_before(dated, run_date)
    return (latest, dated[latest]) if latest else None


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


def run(spark: SparkSession, settings: Settings, run_date: date) -> ProfilesResult:
    """Validate and load the snapshot `run_date` uses (see the module docstring)."""
    found = snapshot_folder(settings.profiles_root, run_date)
    if found is None:
        return ProfilesResult(None)
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
    routed = route_records(memberships(records, settings.max_record_bytes), suite, {}).persist(CACHE_LEVEL)
    outcomes = DataQualityRun(settings.dq_docs_dir).validate(routed.drop("raw"), suite, {}, f"{SUITE}-{snapshot_date}")
    total = routed.count()
    rejected = routed.filter(F.size("reason_codes") > 0)
    quarantined = rejected.count()
    warehouse = Warehouse(spark, settings)
    warehouse.replace_partition(
        rejected.select(
            F.lit(snapshot_date).alias("snapshot_date"),
            "source_file",
            "raw",
            "profile_id",
            "segment",
            "status",
            "reason_codes",
            reason_sentences(quarantine_reasons(suite)).alias("reasons"),
        ),
        PROFILE_QUARANTINE,
        snapshot_date,
    )
    if total and quarantined / total > settings.max_quarantine_share:
        routed.unpersist()
        failed = {o.quarantine_code: o.unexpected_count for o in outcomes if not o.success}
        raise SnapshotRejected(
            f"profile snapshot {snapshot_date}: {quarantined:,} of {total:,} memberships failed validation ({failed}, "
            f"see profile_quarantine); more than the allowed {settings.max_quarantine_share:.0%}, so the last good "
            f"snapshot stays in use"
        )
    members = (
        routed.filter((F.size("reason_codes") == 0) & F.col("status").isin(*MEMBER_STATUSES))
        .withColumn("snapshot_date", F.lit(snapshot_date))
        .select(*PROFILE_SEGMENTS.column_names)
        .distinct()
    )
    warehouse.replace_partition(members, PROFILE_SEGMENTS, snapshot_date)
    written = warehouse.read(PROFILE_SEGMENTS).filter(F.col("snapshot_date") == snapshot_date)
    counts = written.agg(F.count("*").alias("memberships"), F.countDistinct("profile_id").alias("profiles")).first()
    routed.unpersist()
    return ProfilesResult(
        snapshot_date, profiles=counts.profiles, memberships=counts.memberships, quarantined=quarantined
    )


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/profiles.py --date YYYY-MM-DD`."""
    from offerrank.spark import build_spark

    parser = argparse.ArgumentParser(prog="profiles", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 when the snapshot is rejected (the run goes on with the last good snapshot)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        print(run(build_spark(settings, "offerrank-profiles"), settings, args.date).summary())
    except SnapshotRejected as rejected:
        print(f"WARNING: {rejected}", file=sys.stderr)
        return 0 if args.keep_going else 1
    return 0


if __name__ == "__main__":
    from offerrank.process import exit_cleanly

    exit_cleanly(main())
