"""Delta table I/O shared by the jobs: partition replacement for idempotent reruns, tolerant reads."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read_table(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at `path`, or None before its first write."""
    return spark.read.format("delta").load(path) if table_exists(spark, path) else None


def replace_partition(frame: DataFrame, path: str, column: str, value: object, partitioned: bool = True) -> None:
    """Atomically replace the rows with `column = value` by `frame` (one Delta commit; creates the table)."""
    writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", f"{column} = '{value}'")
    if partitioned:
        writer = writer.partitionBy(column)
    writer.save(path)


def replace_range(frame: DataFrame, path: str, column: str, first: object, last: object) -> None:
    """Atomically replace the rows with `first <= column <= last` by `frame`, partitioned by `column`."""
    (
        frame.write.format("delta").mode("overwrite")
        .option("replaceWhere", f"{column} >= '{first}' AND {column} <= '{last}'")
        .partitionBy(column)
        .save(path)
    )
