"""Weekly Delta maintenance: OPTIMIZE (compaction) and VACUUM of every warehouse table.

VACUUM keeps the files of at least `OFFERRANK_VACUUM_RETENTION_HOURS` (default 168, Delta's minimum) and never
fewer hours than reach back to the commit of the `OFFERRANK_KEEP_RANKING_VERSIONS`-th latest published
ranking, so time travel and `offerrank rankings rollback` to those versions keep working.
Run: `spark-submit jobs/maintain.py --as-of YYYY-MM-DD` (the `warehouse_maintenance` DAG does, weekly).
"""

from __future__ import annotations

import argparse
import logging
import math
from datetime import UTC, date, datetime, time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from offerrank.engines.delta_spark import Warehouse
from offerrank.settings import Settings, load_settings
from offerrank.tables import ALL_TABLES, OFFER_RANKINGS, RANKING_RUNS

log = logging.getLogger(__name__)


def retention_hours(spark: SparkSession, settings: Settings, as_of: datetime) -> int:
    """Hours of history VACUUM must keep so the last N published ranking versions stay readable."""
    warehouse = Warehouse(spark, settings)
    runs = warehouse.read(RANKING_RUNS)
    hours = settings.vacuum_retention_hours
    if runs is None:
        return hours
    oldest_kept = (
        runs.filter(F.col("rankings_table_version").isNotNull())
        .orderBy(F.col("rankings_table_version").desc())
        .limit(settings.keep_ranking_versions)
        .agg(F.min("rankings_table_version"))
        .first()
    )
    assert oldest_kept is not None  # an aggregate without grouping has exactly one row
    kept = oldest_kept[0]
    if kept is None:
        return hours
    history = spark.sql(f"DESCRIBE HISTORY {warehouse.sql_name(OFFER_RANKINGS)}")
    committed = history.filter(F.col("version") == kept).select("timestamp").first()
    if committed is None:
        return hours
    age = (as_of - committed.timestamp.replace(tzinfo=UTC)).total_seconds() / 3600
    return max(hours, math.ceil(age) + 1)


def run(spark: SparkSession, settings: Settings, as_of: date) -> dict[str, str]:
    """OPTIMIZE and VACUUM every existing table; returns what was done per table."""
    warehouse = Warehouse(spark, settings)
    hours = retention_hours(spark, settings, datetime.combine(as_of, time.max, tzinfo=UTC))
    done = {}
    for table_of in ALL_TABLES:
        if not warehouse.exists(table_of):
            continue
        name = warehouse.sql_name(table_of)
        metrics = spark.sql(f"OPTIMIZE {name}").select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        assert metrics is not None  # OPTIMIZE returns one row: the table's path and metrics
        spark.sql(f"VACUUM {name} RETAIN {hours} HOURS").collect()
        done[table_of.name] = (
            f"compacted {metrics.numFilesRemoved} files into {metrics.numFilesAdded}; "
            f"vacuumed files older than {hours} h"
        )
    return done


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `jobs/maintain.py --as-of YYYY-MM-DD`."""
    from offerrank.engines.process import configure_logging
    from offerrank.engines.spark import build_spark

    configure_logging()
    parser = argparse.ArgumentParser(prog="maintain", description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    for name, outcome in run(build_spark(settings, "offerrank-maintain"), settings, args.as_of).items():
        log.info("%s: %s", name, outcome)
    return 0


if __name__ == "__main__":
    from offerrank.engines.process import exit_cleanly

    exit_cleanly(main())
