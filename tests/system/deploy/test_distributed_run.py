"""The distributed path for real, on loopback: Airflow on PostgreSQL with the LocalExecutor, triggered through
its REST API, submitting the nightly DAG's Spark jobs to a Spark standalone cluster; the published ranking must
equal the one `local[*]` publishes from the same input. Only settings differ between the two."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from deltalake import DeltaTable

from offerrank.nightly import run_day
from offerrank.settings import load_settings
from offerrank.warehouse import read_rows
from tests.factories import prepared_home

FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)
COMPARED = [
    "model_name",
    "decision_id",
    "placement_id",
    "channel",
    "segment",
    "rank",
    "offer_id",
    "score",
    "p_best",
    "traffic_share",
    "alpha",
    "beta",
    "impressions",
    "conversions",
    "reason",
    "as_of_date",
]


def published(home: Path) -> list[tuple]:
    rows = read_rows(DeltaTable(str(home / "warehouse" / "offer_rankings")), COMPARED)
    return sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in (row[c] for c in COMPARED)) for row in rows)


def test_nightly_dag_on_postgres_airflow_and_a_spark_cluster_publishes_what_local_publishes(spark, stack, tmp_path):
    local_home, cluster_home = tmp_path / "local", stack.workdir / "home"
    for home in (local_home, cluster_home):
        prepared_home(spark, home, FIRST)
    report = run_day(spark, load_settings(home=local_home), RUN, echo=lambda _: None)
    assert report.success, report.summary()

    master = stack.start_spark()
    database = stack.start_postgres()
    api = stack.start_airflow(
        database,
        master,
        {
            "OFFERRANK_HOME": str(cluster_home),
            "OFFERRANK_SPARK_CONF": json.dumps({"spark.cores.max": "1", "spark.executor.memory": "1g"}),
        },
    )
    run, tasks, elapsed = api.run_dag("offer_ranking", {"run_date": RUN.isoformat()}, timeout=900)
    print(f"offer_ranking on {master} via the REST API: {run['state']} in {elapsed:.0f}s; tasks {tasks}")
    assert run["state"] == "success", (tasks, [log.read_text()[-2000:] for log in api.logs])
    assert run["conf"] == {"run_date": "2026-11-02"}
    rank_tasks = [name for name in tasks if name.startswith("rank[")]
    assert tasks["publish"] == "success" and len(rank_tasks) == 5
    # the Spark jobs really ran on the cluster: the worker kept a folder per application it ran executors for; ranking
    # and publishing run in Airflow's tasks without Spark
    applications = list((stack.workdir / "spark" / "work").glob("app-*"))
    assert len(applications) == 3, applications  # ingest, profiles, aggregate
    assert published(cluster_home) == published(local_home)
