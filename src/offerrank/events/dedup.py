"""The de-duplication rules of the ingest: which of the records that share an event id is the event, and which are
quarantined as its duplicates. DataFrame in, DataFrame out: no table is read or written here (the ids other landing
dates accepted come in as a DataFrame; `label_records` materializes the few contested ids once, to choose whether
they are broadcast).

- identical copies of one record (same content hash) collapse to one: `exact_duplicate`, counted, not quarantined;
- of differing records with the same id the earliest timestamp wins, then the smallest content hash:
  `conflicting_duplicate` (quarantined);
- an id already accepted from another landing date of the lateness window counts once, whichever day was ingested
  first: `duplicate_of_earlier_day` / `duplicate_of_later_day` (quarantined).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from offerrank.events.xdm import record_hash

# Up to this many event ids with copies (in the day or on other days) are broadcast to the day's records; more (a
# day delivered twice) are joined by shuffle.
BROADCAST_CONTESTED_IDS = 1_000_000
DEDUP_REASONS = {
    "conflicting_duplicate": "another record with the same _id and different content won "
    "(earliest timestamp, then content hash order)",
    "duplicate_of_earlier_day": "the _id was already ingested from an earlier landing date",
    "duplicate_of_later_day": "the _id was already ingested from a later landing date (days ingested out of order)",
}


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


def tally(grouped: Iterable) -> tuple[dict[str, int], dict[str, int]]:
    """(counts, quarantined by reason code) of labelled records from their collected counts per (`outcome`,
    `reason_codes`): records read, events accepted, exact duplicates and records quarantined."""
    outcome_counts: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for row in grouped:
        outcome_counts[row.outcome] += row["count"]
        if row.outcome == "quarantined":
            by_reason.update(dict.fromkeys(row.reason_codes, row["count"]))
    counts = {
        "records_read": sum(outcome_counts.values()),
        "events_accepted": outcome_counts.get("accepted", 0),
        "exact_duplicates": outcome_counts.get("exact_duplicate", 0),
        "quarantined": outcome_counts.get("quarantined", 0),
    }
    return counts, dict(by_reason)
