"""Benchmark: one nightly `offer_ranking` run through Airflow on PostgreSQL (LocalExecutor, triggered through the
REST API), with its Spark jobs on `local[*]` and then on a Spark standalone cluster on loopback (one worker with
the machine's cores), from the same input. Prints the wall time of each run, trigger to end.

    python benchmarks/distributed_benchmark.py [--events-per-day 200000] [--workdir /tmp/offerrank-distributed]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/system/deploy/stack.py: the loopback services

FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-distributed"))
    args = parser.parse_args()

    from offerrank.catalog import load_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.engines.spark import build_spark
    from offerrank.jobs.ingest import run as run_ingest
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate
    from tests.system.deploy.stack import Stack

    shutil.rmtree(args.workdir, ignore_errors=True)
    generate(args.workdir / "sample", FIRST, days=2, events_per_day=args.events_per_day)
    spark = build_spark(load_settings(home=args.workdir), "offerrank-distributed-benchmark")
    cores = os.cpu_count() or 2
    for name in ("local[*]", "standalone cluster"):
        workdir = args.workdir / name.split()[0].strip("[*]")
        home = workdir / "home"
        shutil.copytree(args.workdir / "sample", home / "sample")
        os.chmod(args.workdir, 0o755)
        os.chmod(workdir, 0o755)  # postgres (not root) reads its data folder below
        settings = load_settings(home=home)
        Registry(settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 24))
        assert run_ingest(spark, settings, FIRST).success  # the day before, as history
        stack = Stack(workdir)
        try:
            master = stack.start_spark(worker_cores=cores, worker_memory="8g") if name != "local[*]" else "local[*]"
            offerrank_env = {
                "OFFERRANK_HOME": str(home),
                "OFFERRANK_SPARK_CONF": json.dumps({"spark.executor.memory": "4g"}),
            }
            remote = stack.start_spark_connect(master, offerrank_env)
            api = stack.start_airflow(stack.start_postgres(), remote, offerrank_env)
            run, tasks, elapsed = api.run_dag("offer_ranking", {"run_date": RUN.isoformat()}, timeout=3600)
        finally:
            stack.stop()
        print(
            f"{name:<19} ({master}): {run['state']} in {elapsed:6.1f} s, {args.events_per_day:,} events on the day; "
            f"{sum(state == 'success' for state in tasks.values())}/{len(tasks)} tasks succeeded",
            flush=True,
        )
    spark.stop()


if __name__ == "__main__":
    main()
