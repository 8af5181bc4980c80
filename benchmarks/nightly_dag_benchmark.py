"""Benchmark: the nightly DAG through Airflow beside the same steps in one Spark session, on a big day.

Generates two days of N events each (fault rate 0.001) and applies the sample catalog, in two homes with the same
input. Then runs both days:
1. with `offerrank.chain.nightly.run_day` in one SparkSession (ingest, validate, profiles, aggregate, rank, publish):
   the wall time of each step of the second day and their sum;
2. with the `offer_ranking` DAG through Airflow (`dag.test()`, Airflow on SQLite, default settings, the Spark steps
   on the local Spark Connect server, which the first night's first step starts and the second night reuses, as
   on a machine that runs the DAG every night): the wall time of each task and of the whole second run.
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
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)
SERVER_PORT = 15012  # the benchmark's own local Spark Connect server, not a developer's on the default port
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
    from offerrank.catalog.registry import Registry
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate

    generate(home / "sample", FIRST, days=2, seed=11, events_per_day=events_per_day, fault_rate=0.001)
    settings = load_settings(home=home)
    Registry(settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 24))


def dag_run(env: dict[str, str], run_date: date) -> tuple[float, dict]:
    """The offer_ranking DAG for `run_date` through `dag.test()` in its own process: wall time and outcome."""
    started = time.perf_counter()
    command = [sys.executable, "-c", RUN_DAG, str(REPO / "dags"), run_date.isoformat()]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"state"')]
    if not lines:
        sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
    return wall, json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-dag-bench"))
    args = parser.parse_args()

    from offerrank.chain.nightly import run_day
    from offerrank.engines.spark import build_spark
    from offerrank.engines.spark_server import stop_local_server
    from offerrank.settings import load_settings

    shutil.rmtree(args.workdir, ignore_errors=True)
    session_home, dag_home = args.workdir / "session", args.workdir / "dag"
    spark = build_spark(load_settings(home=session_home), "offerrank-dag-benchmark")
    for home in (session_home, dag_home):
        prepared(home, args.events_per_day, spark)
    for day in (FIRST, RUN):
        report = run_day(
            spark, load_settings(home=session_home), day, clock=lambda: datetime.now(UTC), echo=lambda _: None
        )
        assert report.success, report.summary()
    spark.stop()  # the DAG's Spark server gets the machine to itself

    airflow_home = args.workdir / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "OFFERRANK_SPARK_REMOTE": "local",
        "OFFERRANK_SPARK_CONNECT_PORT": str(SERVER_PORT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OFFERRANK_HOME": str(dag_home),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    try:
        first_wall, first = dag_run(env, FIRST)
        dag_wall, outcome = dag_run(env, RUN)
    finally:
        stop_local_server(load_settings(spark_connect_port=SERVER_PORT))

    session_sum = sum(elapsed for _, elapsed, _ in report.steps)
    print(f"{args.events_per_day:,} events on {RUN} after a day of as many; {os.cpu_count()} cores")
    print("in one Spark session (offerrank run):")
    for name, elapsed, _ in report.steps:
        print(f"  {name:<16} {elapsed:7.1f} s")
    print(f"  {'sum':<16} {session_sum:7.1f} s")
    print(f"the DAG's first night ({first['state']}): {first_wall:.1f} s, the Spark Connect server's start included")
    print(f"the offer_ranking DAG through Airflow ({outcome['state']}):")
    for task, state, elapsed in outcome["tasks"]:
        print(f"  {task:<16} {elapsed if elapsed is not None else float('nan'):7.1f} s  {state}")
    print(f"  {'whole run':<16} {dag_wall:7.1f} s (dag.test in its own process, Airflow's start included)")
    print(f"DAG / in-session sum: {dag_wall / session_sum:.2f} (target <= 1.5); DAG under 5 min: {dag_wall < 300}")


if __name__ == "__main__":
    main()
