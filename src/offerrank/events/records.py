"""An event dataset's landing day (`DatasetDay`) and the reading of its landing folder: its data files (JSON lines,
optionally gzipped, or Parquet with the same nested columns) as one row per record, its raw text, whatever the
format (see `offerrank.engines.landing` for what a folder may hold); and the `events_raw` rows of those records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.engines.landing import LINK_NOT_FOLLOWED, LandingFolder, is_link, landed, landing_folder, open_file, scan
from offerrank.errors import Unavailable


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


class NotLanded(Unavailable, FileNotFoundError):
    """A dataset's landing folder of the date has no events yet (or lacks its completeness marker)."""


def landing_files(root: str, run_date: date, marker: str = "") -> LandingFolder:
    """The date folder's event files by format; a missing or empty folder, a symbolic link, or a folder without its
    completeness marker when one is set, is NotLanded."""
    folder = landing_folder(root, run_date)
    if is_link(folder):
        raise NotLanded(f"{folder} is {LINK_NOT_FOLLOWED}")
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


def to_events_raw(records: DataFrame, day: DatasetDay) -> DataFrame:
    """The `events_raw` rows of a day's records: each as received, with its event id when it has one."""
    return records.select(
        F.lit(day.run_date).alias("landing_date"),
        "source_file",
        F.get_json_object("raw", "$._id").alias("event_id"),
        "raw",
        F.lit(day.run_id).alias("run_id"),
        F.lit(day.dataset).alias("dataset"),
    )
