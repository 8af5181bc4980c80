"""The DAGs end to end through Airflow itself: `dag.test()` on SQLite, the Spark steps on the local Spark Connect
server that the first of them starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime

import pytest
import yaml
from deltalake import DeltaTable

from offerrank.catalog import load_catalog
from offerrank.catalog.registry import Registry
from offerrank.chain.tasks import run_summary
from offerrank.engines.delta_rs import read_rows
from offerrank.settings import load_settings
from offerrank.sim.generator import SEGMENTS, generate
from tests.factories import REPO, SMALL_INPUT_SPARK_CONF, prepared_home

BIG_DAY = 300_000  # events a day of the dataset `events`
# The runs on days of a few thousand events (the bad day, the maintenance) set the small-input Spark settings on
# their sessions of the shared Connect server (runtime SQL settings): the big day's run keeps the defaults.
SMALL_DAY_ENV = {"OFFERRANK_SPARK_CONF": json.dumps(SMALL_INPUT_SPARK_CONF), "OFFERRANK_SPARK_SHUFFLE_PARTITIONS": "1"}

RUN_DAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[3]]
run = dag.test(run_conf={"run_date": sys.argv[2]})
names = {ti: ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]" for ti in run.get_task_instances()}
tasks = {name: str(ti.state) for ti, name in names.items()}
seconds = {name: round(ti.duration or 0, 1) for ti, name in names.items()}
print(json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tasks, "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def airflow_home(spark, airflow_env, tmp_path_factory):
    home = tmp_path_factory.mktemp("dag-home")
    # A day of BIG_DAY events (11-02, the good day), with the default settings (a 2 GB driver): a memory regression
    # of a job fails here. The DAG's first run: no history, so the day's volume is not judged against another.
    generate(home / "sample", date(2026, 11, 2), days=1, seed=9, events_per_day=BIG_DAY)
    # a second event dataset, `partner`, that `auto-email` learns from, smaller: one wait and ingest each
    generate(home / "small", date(2026, 11, 1), days=2, seed=9, events_per_day=3_000)
    (home / "small" / "events").rename(home / "sample" / "partner")
    generate(home / "bad", date(2026, 11, 3), days=1, seed=9, events_per_day=3_000, fault_rate=0.5)
    shutil.copytree(home / "bad" / "events" / "2026-11-03", home / "sample" / "partner" / "2026-11-03")
    (home / "bad" / "events" / "2026-11-03").rename(home / "sample" / "events" / "2026-11-03")
    data = yaml.safe_load((home / "sample" / "catalog.yaml").read_text())
    data["datasets"].append({"name": "partner", "path": "partner"})
    next(m for m in data["ai_models"] if m["name"] == "auto-email")["datasets"] = ["partner"]
    (home / "sample" / "catalog.yaml").write_text(yaml.safe_dump(data))
    Registry(load_settings(home=home)).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 24))
    env = {**os.environ, **airflow_env, "OFFERRANK_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return home, env


def run_dag(env, run_date: str, dag_id: str = "offer_ranking") -> dict:
    """The DAG's run through `dag.test()`: its state, run id, task states and seconds, and its `output`."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAG, str(REPO / "dags"), run_date, dag_id], env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"state"')]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1])
    print(f"{dag_id} for {run_date}: {result['state']}; task seconds {result['seconds']}")
    return result | {"output": done.stdout + done.stderr}


def rankings_version(home) -> int | None:
    path = home / "warehouse" / "offer_rankings"
    return DeltaTable(str(path)).version() if path.exists() else None


def test_a_good_day_publishes_a_new_ranking_version(airflow_home):
    home, env = airflow_home
    before = rankings_version(home)
    result = run_dag(env, "2026-11-02")
    assert result["state"] == "success", result
    assert result["tasks"]["publish"] == "success" and result["tasks"]["summary"] == "success"
    ingests = {name: state for name, state in result["tasks"].items() if name.startswith("dataset_ingest.ingest[")}
    assert ingests == {"dataset_ingest.ingest[0]": "success", "dataset_ingest.ingest[1]": "success"}  # per dataset
    read = {
        r["dataset"]: r["records_read"]
        for r in read_rows(DeltaTable(str(home / "warehouse" / "dq_results")))
        if r["run_date"] == date(2026, 11, 2)
    }
    assert read["events"] >= BIG_DAY and 3_000 <= read["partner"] < BIG_DAY
    assert rankings_version(home) == (before + 1 if before is not None else 0)
    rows = read_rows(DeltaTable(str(home / "warehouse" / "offer_rankings")))
    assert {r["as_of_date"] for r in rows} == {date(2026, 11, 2)} and len(
        {(r["decision_id"], r["placement_id"]) for r in rows}
    ) == 7
    assert {r["segment"] for r in rows if r["model_name"] == "personalized-mobile"} == {"*", *SEGMENTS}
    # the report task wrote each active model's report rows and page, which the summary links
    assert result["tasks"]["report"] == "success"
    reports = read_rows(DeltaTable(str(home / "warehouse" / "model_report")))
    assert {(r["model_name"], r["window_end"]) for r in reports if r["segment"] == "*"} == {
        (name, date(2026, 11, 2)) for name in ("auto-web", "auto-email", "personalized-mobile")
    }
    page = home / "warehouse" / "reports" / "auto-web" / "2026-11-02.html"
    summary = run_summary(date(2026, 11, 2), result["run_id"], load_settings(home=home))
    assert f"model report of auto-web: {page}" in summary
    # every model's page is small and loads the one plotly.js of the reports folder
    (script,) = (home / "warehouse" / "reports").rglob("*.js")
    assert page.stat().st_size < 200_000 and script.parent == page.parent.parent
    assert f'src="../{script.name}"' in page.read_text()


def test_a_bad_day_stops_at_validation_and_publishes_nothing(airflow_home):
    home, env = airflow_home
    before = rankings_version(home)
    result = run_dag({**env, **SMALL_DAY_ENV}, "2026-11-03")
    assert result["state"] == "failed"
    assert result["tasks"]["dataset_ingest.ingest[0]"] == result["tasks"]["dataset_ingest.ingest[1]"] == "success"
    assert result["tasks"]["validate"] == "failed"
    assert {result["tasks"][name] for name in ("profiles", "aggregate", "publish", "summary")} == {"upstream_failed"}
    assert result["tasks"]["report"] == "skipped"  # no report of a day that failed validation
    assert rankings_version(home) == before
    dq = {
        r["dataset"]: r
        for r in read_rows(DeltaTable(str(home / "warehouse" / "dq_results")))
        if r["run_date"] == date(2026, 11, 3)
    }
    assert sorted(dq) == ["events", "partner"]
    assert not any(r["success"] for r in dq.values()) and "quarantined" in dq["events"]["failure_message"]
    # the chain's gate recorded the day as a refused publish, as `offerrank run` does
    (refused,) = [
        r for r in read_rows(DeltaTable(str(home / "warehouse" / "ranking_runs"))) if r["run_date"] == date(2026, 11, 3)
    ]
    assert (refused["status"], refused["ranking_version"]) == ("refused", None)
    assert refused["reason"] == (
        f"validation of 2026-11-03 did not pass (dataset events: {dq['events']['failure_message']}; "
        f"dataset partner: {dq['partner']['failure_message']})"
    )


def test_the_weekly_maintenance_runs_its_job_on_the_same_spark_server(spark, airflow_home, tmp_path):
    _, env = airflow_home  # Airflow's database, and the Spark Connect server of the other runs
    # a warehouse of its own, with the tables of a small ingested day: the DAG's wiring is under test here (OPTIMIZE
    # and VACUUM themselves are tested in the integration tier), not the compaction of a 300,000-event day
    prepared_home(spark, tmp_path, date(2026, 11, 1))
    result = run_dag(
        {**env, **SMALL_DAY_ENV, "OFFERRANK_HOME": str(tmp_path)}, "2026-11-03", dag_id="warehouse_maintenance"
    )
    assert result["state"] == "success" and result["tasks"] == {"optimize_and_vacuum": "success"}, result
    # OPTIMIZE and VACUUM, as SQL on the Connect session, went over every table of the warehouse
    for table in ("registry", "interactions", "quarantine", "dq_results"):
        assert f"{table}: compacted" in result["output"], table
    assert "vacuumed files older than 168 h" in result["output"]
