"""
### warehouse_maintenance — weekly Delta OPTIMIZE and VACUUM

Every Sunday at 04:00 UTC: compacts the small files of every offerrank Delta table and removes files no
longer referenced, keeping enough history that the last `OFFERRANK_KEEP_RANKING_VERSIONS` published rankings
stay readable by time travel and `offerrank rankings rollback`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, task

from offerrank.chain import tasks

log = logging.getLogger(__name__)

with DAG(
    dag_id="warehouse_maintenance",
    description="Weekly: Delta OPTIMIZE and VACUUM of the offerrank warehouse",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 4 * * 0", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 4, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["offerrank", "maintenance", "spark"],
    default_args={
        "owner": "offerrank",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=3),
    },
) as dag:

    @task
    def optimize_and_vacuum(data_interval_end=None) -> None:
        """OPTIMIZE and VACUUM every table (the Spark job `maintain`, on the nightly DAG's Spark)."""
        tasks.run_job("maintain", ["--as-of", data_interval_end.date().isoformat()])

    optimize_and_vacuum()
