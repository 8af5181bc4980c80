"""The DAG folder parses cleanly, fast, without pyspark; the DAGs have the expected shape and safety settings."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from tests.factories import REPO

PARSE_SCRIPT = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
errors = {k: str(v) for k, v in bag.import_errors.items()}
print(json.dumps({"cpu_seconds": time.process_time() - started, "errors": errors,
                  "dags": sorted(bag.dags), "pyspark": "pyspark" in sys.modules}))
"""


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_the_dag_folder_parses_fast_without_errors_or_pyspark(airflow_env):
    done = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(REPO / "dags")],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["offer_ranking", "warehouse_maintenance"]
    assert parsed["pyspark"] is False
    assert parsed["cpu_seconds"] < 2.0  # CPU time: a busy machine does not make parsing look slow


def test_offer_ranking_tasks_and_edges(dagbag):
    dag = dagbag.dags["offer_ranking"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "event_datasets": ["dataset_ingest.ingest", "dataset_ingest.wait_for_events"],
        "dataset_ingest.wait_for_events": ["dataset_ingest.ingest"],
        "dataset_ingest.ingest": ["validate"],
        "validate": ["profiles"],
        "profiles": ["aggregate"],
        "aggregate": ["ranking_units"],
        "ranking_units": ["rank"],
        "rank": ["publish"],
        "publish": ["report", "summary"],
        "report": [],
        "summary": [],
    }
    assert dag.catchup is False and "offerrank" in dag.tags and dag.doc_md
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 2 * * *", "UTC")
    assert [o.uri.rstrip("/") for o in dag.get_task("publish").outlets] == ["offerrank://offer_rankings"]
    assert [o.uri.rstrip("/") for o in dag.get_task("report").outlets] == ["offerrank://model_reports"]
    # the reports follow publish whatever its outcome, as a leaf of their own: a report failure fails the run,
    # never the publish
    assert dag.get_task("report").trigger_rule == "all_done"
    waits, ingest = dag.get_task("dataset_ingest.wait_for_events"), dag.get_task("dataset_ingest.ingest")
    # one wait and one ingest per event dataset, in a mapped group (ingest i follows wait i only); one that never
    # lands is skipped and its ingest records it, so the other datasets (and the gate, which reads every dataset's
    # validation) go on
    assert waits.get_closest_mapped_task_group() is ingest.get_closest_mapped_task_group() is not None
    assert waits.mode == "reschedule" and waits.soft_fail is True
    assert ingest.trigger_rule == dag.get_task("validate").trigger_rule == "all_done"
    # runs do not queue behind one waiting for its events; Spark steps and publishing are serialized across runs
    assert dag.max_active_runs > 1
    for name in ("dataset_ingest.ingest", "profiles", "aggregate", "publish"):
        assert dag.get_task(name).max_active_tis_per_dag == 1, name
    # a failed ranking method fails its own task; the others publish, its placements keep their last good lists
    assert dag.get_task("publish").trigger_rule == "all_done_min_one_success"
    assert set(dag.params.keys()) == {"run_date", "models", "dry_run", "full_refresh", "force"}


def test_the_spark_server_of_the_dag_steps_gets_offerrank_spark_settings(monkeypatch):
    """The DAG's Spark steps run on the Spark Connect server: its spark-submit starts the driver's JVM, so the
    driver's memory and every other Spark setting must be on its command line, the same as a session the CLI builds
    (Spark's 1 GB default driver died on a 1M-event day)."""
    from offerrank.engines.jars import cached_jars
    from offerrank.engines.spark_server import SERVER_CLASS, server_command
    from offerrank.settings import load_settings

    monkeypatch.setenv("OFFERRANK_SPARK_DRIVER_MEMORY", "3g")
    monkeypatch.setenv("OFFERRANK_SPARK_CONF", json.dumps({"spark.executor.memory": "5g"}))
    monkeypatch.setenv("OFFERRANK_SPARK_MASTER", "spark://master:7077")
    settings = load_settings()
    command = server_command(settings)
    confs = {command[i + 1] for i, arg in enumerate(command) if arg == "--conf"}
    assert {"spark.driver.memory=3g", "spark.executor.memory=5g", "spark.sql.shuffle.partitions=4"} <= confs
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert f"spark.connect.grpc.binding.port={settings.spark_connect_port}" in confs
    assert command[command.index("--class") + 1] == SERVER_CLASS
    assert command[command.index("--master") + 1] == "spark://master:7077"
    assert command[command.index("--jars") + 1].split(",") == [str(jar) for jar in cached_jars(settings)]


@pytest.mark.parametrize("dag_id", ["offer_ranking", "warehouse_maintenance"])
def test_retries_and_timeouts(dagbag, dag_id):
    for task in dagbag.dags[dag_id].tasks:
        assert task.execution_timeout is not None, task.task_id
        if task.task_id not in (
            "event_datasets",
            "validate",
            "ranking_units",
            "publish",
        ):  # deterministic gates: retrying cannot help
            assert task.retries >= 2 and task.retry_exponential_backoff, task.task_id


def test_bad_params_are_refused_with_a_message(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    params = copy.deepcopy(dagbag.dags["offer_ranking"].params)
    params["run_date"] = "2026-11-03"
    params["models"] = ["auto-web"]
    with pytest.raises(ParamValidationError, match="2026-13-45"):
        params["run_date"] = "2026-13-45"
    with pytest.raises(ParamValidationError, match="maybe"):
        params["dry_run"] = "maybe"
