"""The nightly chain's jobs, importable as `offerrank.jobs`: one `run(...)` per job that reads, calls pure
transformations and writes; the CLI, the nightly chain and Airflow call the same `run`.

The Spark jobs (ingest, profiles, aggregate, maintain) hold DataFrame-in/DataFrame-out transformations and a `main()`
that parses spark-submit's arguments, so each module also runs as a file under spark-submit; the DAG's Spark tasks
call the same `main` in the task, on the Spark Connect server (`offerrank.chain.tasks.run_job`). `rank` and `publish`
handle a few rows per offer in memory (pandas, `deltalake`): they start no JVM."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def job_session(name: str):
    """A spark-submit job's SparkSession, settings (from the environment) and the registry's catalog."""
    from offerrank.catalog.registry import Registry
    from offerrank.engines.spark import build_spark
    from offerrank.settings import load_settings

    settings = load_settings()
    spark = build_spark(settings, f"offerrank-{name}")
    return spark, settings, Registry(settings).catalog()
