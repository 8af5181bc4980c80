"""Delta table I/O through Spark and delta-spark: every job's reads and writes of the tables in `offerrank.tables`.

Only DataFrame and SQL calls, so the same code runs on an in-process session and on a Spark Connect server; the
table's log (existence, version) is read with `deltalake`, without a Spark job.

Writes replace partitions (idempotent reruns), overwrite a whole table in one commit, or append; each is one Delta
commit. Reads are tolerant of a table that was never written (None).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession

from offerrank.schemas import Table
from offerrank.settings import Settings
from offerrank.tables import DATASET_TABLES, WarehouseOutdated, partition_predicate

STATS_COLUMNS = "delta.dataSkippingStatsColumns"


class Warehouse:
    """The Delta tables of one warehouse root, through one SparkSession."""

    def __init__(self, spark: SparkSession, settings: Settings):
        self.spark = spark
        self.settings = settings

    def path(self, table: Table) -> str:
        return self.settings.table_path(table.name)

    def exists(self, table: Table) -> bool:
        return self.version(table) is not None

    def sql_name(self, table: Table) -> str:
        """The table as Spark SQL names it (delta.`<path>`), for MERGE, UPDATE and maintenance."""
        return f"delta.`{self.path(table)}`"

    def read(self, table: Table, version: int | None = None) -> DataFrame | None:
        """The table (at `version`, else the latest), or None before its first write."""
        if not self.exists(table):
            return None
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(table))

    def _existing(self, table: Table) -> DataFrame:
        """The latest version of a table known to exist."""
        frame = self.read(table)
        assert frame is not None, f"{table.name} exists"
        return frame

    def require_datasets(self, *tables: Table) -> None:
        """WarehouseOutdated when one of `tables`, written before event datasets existed, has no `dataset` column."""
        from offerrank.engines.delta_rs import open_table

        opened = {table.name: open_table(self.settings, table) for table in tables}  # the log only: no Spark job
        outdated = [
            name for name, t in opened.items() if t is not None and "dataset" not in t.schema().to_arrow().names
        ]
        if outdated:
            raise WarehouseOutdated(
                f"{', '.join(outdated)} predate event datasets (no `dataset` column): run `offerrank upgrade "
                "--dataset NAME` once, NAME being the catalog dataset their rows came from"
            )

    def adopt_dataset(self, dataset: str) -> dict[str, int]:
        """Give the rows written before event datasets existed (no `dataset`) the dataset `dataset`, adding the
        column where a table lacks it; returns the rows updated per table."""
        updated = {}
        for table in DATASET_TABLES:
            if not self.exists(table):
                continue
            if "dataset" not in self._existing(table).columns:
                self.spark.sql(f"ALTER TABLE {self.sql_name(table)} ADD COLUMNS (dataset STRING)")
            before = self._existing(table).filter("dataset IS NULL").count()
            if before:
                self.spark.sql(f"UPDATE {self.sql_name(table)} SET dataset = '{dataset}' WHERE dataset IS NULL")
            updated[table.name] = before
        return updated

    def frame(self, rows, table: Table) -> DataFrame:
        """A pandas frame of `table`'s rows as a Spark DataFrame with its schema (through Arrow, so the same on a
        Spark Connect session)."""
        return self.spark.createDataFrame(table.arrow_rows(rows), table.spark_schema())

    def replace_partition(self, frame: DataFrame, table: Table, value: object) -> None:
        """Atomically replace the rows of the table's (one) partition column = `value` by `frame`."""
        (column,) = table.partitions
        self.replace_where(frame, table, {column: value})

    def replace_where(self, frame: DataFrame, table: Table, values: Mapping[str, object]) -> None:
        """Atomically replace the rows whose partition columns equal `values` (one commit; creates the table)."""
        self._write(frame, table, "overwrite", replaceWhere=partition_predicate(values))

    def replace_range(self, frame: DataFrame, table: Table, first: object, last: object) -> None:
        """Atomically replace the rows with `first <= partition column <= last` by `frame`."""
        (column,) = table.partitions
        self._write(frame, table, "overwrite", replaceWhere=partition_predicate({column: (first, last)}))

    def overwrite(self, frame: DataFrame, table: Table) -> int:
        """Replace the whole table in one commit; returns the table version of that commit."""
        self._write(frame, table, "overwrite", overwriteSchema="true")
        version = self.version(table)
        assert version is not None  # just written
        return version

    def append(self, frame: DataFrame, table: Table) -> None:
        self._write(frame, table, "append")

    def version(self, table: Table) -> int | None:
        """The table's latest version (None before its first write), from its log: no Spark job."""
        from offerrank.engines.delta_rs import open_table

        opened = open_table(self.settings, table)
        return None if opened is None else opened.version()

    def _declare_stats_columns(self, table: Table) -> None:
        """Give a table created before it declared its statistics columns the declaration (a write's options set
        table properties only when the write creates the table)."""
        from offerrank.engines.delta_rs import open_table

        opened = open_table(self.settings, table)
        wanted = ",".join(table.stats_columns)
        if opened is not None and opened.metadata().configuration.get(STATS_COLUMNS) != wanted:
            self.spark.sql(f"ALTER TABLE {self.sql_name(table)} SET TBLPROPERTIES ('{STATS_COLUMNS}' = '{wanted}')")

    def _write(self, frame: DataFrame, table: Table, mode: str, **options: str) -> None:
        if "overwriteSchema" not in options:  # a column a new release adds (nullable) joins the table's schema
            options["mergeSchema"] = "true"
        if table.stats_columns:
            self._declare_stats_columns(table)
            options[STATS_COLUMNS] = ",".join(table.stats_columns)  # taken when the write creates the table
        writer = frame.write.format("delta").mode(mode)
        for key, value in options.items():
            writer = writer.option(key, value)
        if table.partitions:
            writer = writer.partitionBy(*table.partitions)
        writer.save(self.path(table))
