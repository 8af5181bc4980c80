"""Benchmark: the nightly DAG through Airflow beside the same steps in one Spark session, on a big day.

Generates two days of N events each (fault rate 0.001), applies the sample catalog and ingests the first day, in
two homes with the same input. Then, for the second day:
1. `offerrank.nightly.run_day` in one SparkSession (ingest, validate, profiles, aggregate, rank, publish): the
   wall time of each step and their sum;
2. the `offer_ranking` DAG through Airflow (`dag.test()`, Airflow on SQLite, Spark steps by spark-submit on
   `local[*]`, default settings): the wall time of each task and of the whole run.
Prints both side by side, and the ratio DAG / in-session sum (target <= 1.5; and the DAG under 5 minutes).

    python benchmarks/nightly_dag_benchmark.py [--events-per-day 1000000] [--workdir /tmp/offerrank-dag-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)
RUN_DAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["offer_ranking"]
run = dag.test(run_conf={"run_date": sys.argv[2]})
tasks = [(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]", str(ti.state),
          (ti.end_date - ti.start_date).total_seconds() if ti.end_date and ti.start_date else None)
         for ti in sorted(run.get_task_instances(), key=lambda ti: ti.start_date or ti.end_date)]
print(json.dumps({"state": str(run.state), "tasks": tasks}))
"""


def prepared(home: Path, events_per_day: int, spark) -> None:
    from datetime import datetime

    from offerrank.catalog import load_catalog
    from offerrank.generator import generate
    from offerrank.jobs.ingest import run as run_ingest
    from offerrank.registry import Registry
    from offerrank.settings import load_settings

    generate(home / "sample", FIRST, days=2, seed=11, events_per_day=events_per_day, fault_rate=0.001)
    settings = load_settings(home=home)
    Registry(spark, settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 24))
    assert run_ingest(spark, settings, FIRST).success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-dag-bench"))
    args = parser.parse_args()

    from offerrank.nightly import run_day
    from offerrank.settings import load_settings
    from offerrank.spark import build_spark

    shutil.rmtree(args.workdir, ignore_errors=True)
    session_home, dag_home = args.workdir / "session", args.workdir / "dag"
    spark = build_spark(load_settings(home=session_home), "offerrank-dag-benchmark")
    for home in (session_home, dag_home):
        prepared(home, args.events_per_day, spark)
    report = run_day(spark, load_settings(home=session_home), RUN, echo=lambda _: None)
    assert report.success, report.summary()
    spark.stop()  # the DAG's spark-submits get the machine to themselves

    airflow_home = args.workdir / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OFFERRANK_HOME": str(dag_home),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAG, str(REPO / "dags"), RUN.isoformat()], env=env, capture_output=True, text=True
    )
    dag_wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"state"')]
    if not lines:
        sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
    outcome = json.loads(lines[-1])

    session_sum = sum(elapsed for _, elapsed, _ in report.steps)
    print(f"{args.events_per_day:,} events on {RUN} after a day of as many; {os.cpu_count()} cores")
    print("in one Spark session (offerrank run):")
    for name, elapsed, _ in report.steps:
        print(f"  {name:<16} {elapsed:7.1f} s")
    print(f"  {'sum':<16} {session_sum:7.1f} s")
    print(f"the offer_ranking DAG through Airflow ({outcome['state']}):")
    for task, state, elapsed in outcome["tasks"]:
        print(f"  {task:<16} {elapsed if elapsed is not None else float('nan'):7.1f} s  {state}")
    print(f"  {'whole run':<16} {dag_wall:7.1f} s (dag.test in its own process, Airflow's start included)")
    print(f"DAG / in-session sum: {dag_wall / session_sum:.2f} (target <= 1.5); DAG under 5 min: {dag_wall < 300}")


if __name__ == "__main__":
    main()
