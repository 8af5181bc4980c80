"""Benchmark: ingest + validate of generated event days, side by side with DuckDB's flatten-and-count.

For each size it generates one landing day (a small share of injected faults), then, each in its own
process so peak memory is measured per engine:
  - offerrank: `offerrank ingest` (Spark, GX, Delta writes) on the embedded default;
  - DuckDB: read the same JSON lines, unnest propositions and items, count per offer x placement x channel.
Prints events/second, wall time and peak RSS (largest process: the Spark JVM, or DuckDB) and the ratio.

    python benchmarks/ingest_benchmark.py --events 1000000 10000000 [--workdir /tmp/offerrank-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil

DAY = date(2026, 11, 1)
DUCKDB_FLATTEN_AND_COUNT = """
SELECT item.id AS offer_id,
       coalesce(p.scopeDetails.placement.id, p.scope) AS placement_id,
       regexp_extract(channel._type, '[^/]+$') AS channel,
       eventType,
       count(*) AS n
FROM (
    SELECT channel, eventType, unnest(_experience.decisioning.propositions) AS p
    FROM read_json('{files}', format = 'newline_delimited', ignore_errors = true, maximum_object_size = 16777216,
                   columns = {{_id: 'VARCHAR', timestamp: 'VARCHAR', eventType: 'VARCHAR',
                              channel: 'STRUCT(_type VARCHAR)',
                              _experience: 'STRUCT(decisioning STRUCT(propositions STRUCT(id VARCHAR, scope VARCHAR,
                                 scopeDetails STRUCT(placement STRUCT(id VARCHAR)), items STRUCT(id VARCHAR)[])[]))'}})
), LATERAL (SELECT unnest(p.items) AS item)
GROUP BY ALL
"""


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `command`; return wall seconds, peak RSS in MiB of its whole process tree (Python + JVM), stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        root, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout = out.read()
        if process.returncode not in (0, 1) or not stdout.strip():
            sys.exit(f"{' '.join(command)} failed (exit {process.returncode}):\n{err.read()[-5000:]}")
        return elapsed, peak / 2**20, stdout


def duckdb_child(files: str) -> None:
    import duckdb

    rows = duckdb.sql(DUCKDB_FLATTEN_AND_COUNT.format(files=files)).fetchall()
    print(f"groups={len(rows)} items={sum(r[-1] for r in rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-bench"))
    parser.add_argument("--duckdb-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_child:
        duckdb_child(args.duckdb_child)
        return

    from offerrank.generator import generate

    print(f"{'events':>11} {'engine':>10} {'wall s':>8} {'events/s':>10} {'peak MiB':>9}  ratio")
    for count in args.events:
        home = args.workdir / f"{count}"
        shutil.rmtree(home, ignore_errors=True)
        generate(home / "sample", DAY, days=1, events_per_day=count, fault_rate=0.001)
        folder = home / "sample" / "events" / DAY.isoformat()
        env = {"OFFERRANK_HOME": str(home)}
        measured([sys.executable, "-m", "offerrank.cli", "apply", "-f", str(home / "sample" / "catalog.yaml")], env)
        spark_s, spark_mb, out = measured(
            [sys.executable, "-m", "offerrank.cli", "ingest", "--date", DAY.isoformat()], env
        )
        duck_s, duck_mb, duck_out = measured([sys.executable, __file__, "--duckdb-child", f"{folder}/*.jsonl"])
        print(
            f"{count:>11,} {'offerrank':>10} {spark_s:>8.1f} {count / spark_s:>10,.0f} {spark_mb:>9,.0f}  "
            f"{spark_s / duck_s:.2f}x DuckDB"
        )
        print(f"{count:>11,} {'duckdb':>10} {duck_s:>8.1f} {count / duck_s:>10,.0f} {duck_mb:>9,.0f}")
        print(f"            {out.strip().splitlines()[-1][:160]}")
        print(f"            duckdb: {duck_out.strip()}")
        shutil.rmtree(home / "sample" / "events", ignore_errors=True)


if __name__ == "__main__":
    main()
