"""Benchmark: ingest + validate of generated event days, side by side with a plain Spark job and DuckDB.

For each size it generates one landing day (a small share of injected faults), then, each in its own
process so peak memory is measured per engine:
  - offerrank: `offerrank ingest` (Spark, GX, Delta writes) on the embedded default;
  - plain Spark: the same SparkSession settings; read the JSON lines with the event schema, drop duplicate ids,
    explode propositions and items, count per offer x placement x channel x event type, write Parquet;
  - DuckDB: the same flatten-and-count of the same files.
Prints wall time, events/second and peak memory (PSS) of each engine's process tree (Python + JVM), and
offerrank's time as a ratio of each of the other two. With `--nightly`, the rest of the nightly chain then runs on
the ingested day, each step its own `offerrank` command as in the DAG (profiles, aggregate, rank and publish), and
the wall time and peak memory of every step are printed beside the driver memory they were given. With
`--first-pass`, one warm Spark session then times, on the same files and to a no-op sink, plain Spark's job,
Spark's parse of the full event schema, offerrank's first pass (parse, record checks, routing, flattening) and the
full-schema parse done by DuckDB inside Spark's tasks: where ingest's time goes once the JVM's start is paid.

    python benchmarks/ingest_benchmark.py --events 1000000 10000000 [--nightly] [--first-pass]
        [--workdir /tmp/offerrank-bench]
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
    """Run `command`; return wall seconds, peak memory in MiB of its whole process tree (Python + JVM), stdout.

    Memory is the tree's proportional set size (PSS): the JVM forks itself for a moment to run `chmod` when Hadoop
    sets a local file's permissions, and summing resident sizes would count its 2 GB twice for that moment."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        root, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_full_info().pss for p in tree))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout = out.read()
        if process.returncode not in (0, 1) or not stdout.strip():
            sys.exit(f"{' '.join(command)} failed (exit {process.returncode}):\n{err.read()[-5000:]}")
        return elapsed, peak / 2**20, stdout


def offerrank(*args: str) -> list[str]:
    """The `offerrank` command line with `args`, run by this interpreter."""
    return [sys.executable, "-m", "offerrank.cli", *args]


def nightly_steps(env: dict[str, str]) -> None:
    """Run the nightly steps after ingest on the benchmark's day, each in its own process; print time and memory."""
    from offerrank.settings import load_settings

    driver_memory = load_settings(home=Path(env["OFFERRANK_HOME"])).spark_driver_memory
    print(f"{'':>11} {'step':>11} {'wall s':>8} {'peak MiB':>9}   (driver memory {driver_memory})")
    for step in ("profiles", "aggregate", "rank"):
        seconds, peak_mb, out = measured(offerrank(step, "--date", DAY.isoformat()), env)
        print(f"{'':>11} {step:>11} {seconds:>8.1f} {peak_mb:>9,.0f}   {out.strip().splitlines()[-1][:100]}")


def plain_spark_counts(spark, files: str):
    """The plain Spark job's counts per offer x placement x channel x event type of the JSON lines `files`."""
    from pyspark.sql import functions as F

    from offerrank.xdm import EVENT_SCHEMA

    events = spark.read.schema(EVENT_SCHEMA).json(files).dropDuplicates(["_id"])
    propositions = events.select(
        F.regexp_extract("channel._type", "[^/]+$", 0).alias("channel"),
        "eventType",
        F.explode("_experience.decisioning.propositions").alias("p"),
    )
    items = propositions.select(
        "channel",
        "eventType",
        F.coalesce("p.scopeDetails.placement.id", "p.scope").alias("placement_id"),
        F.explode("p.items.id").alias("offer_id"),
    )
    return items.groupBy("offer_id", "placement_id", "channel", "eventType").count()


def plain_spark_child(files: str, output: str) -> None:
    from pyspark.sql import functions as F

    from offerrank.settings import load_settings
    from offerrank.spark import build_spark

    spark = build_spark(load_settings(), "plain-spark")
    plain_spark_counts(spark, files).write.mode("overwrite").parquet(output)
    counts = spark.read.parquet(output)
    print(f"groups={counts.count()} items={counts.agg(F.sum('count')).first()[0]}")
    spark.stop()


def duckdb_type(spark_type) -> object:
    """A Spark type as the structure DuckDB's `json_transform` takes."""
    from pyspark.sql import types as T

    simple = {T.StringType: "VARCHAR", T.LongType: "BIGINT", T.DoubleType: "DOUBLE", T.BooleanType: "BOOLEAN"}
    if isinstance(spark_type, T.StructType):
        return {field.name: duckdb_type(field.dataType) for field in spark_type.fields}
    if isinstance(spark_type, T.ArrayType):
        return [duckdb_type(spark_type.elementType)]
    if isinstance(spark_type, T.MapType):
        return f"MAP({simple[type(spark_type.keyType)]}, {sql_type(duckdb_type(spark_type.valueType))})"
    return simple[type(spark_type)]


def sql_type(structure: object) -> str:
    """A `json_transform` structure as a DuckDB SQL type."""
    if isinstance(structure, dict):
        return "STRUCT(" + ", ".join(f'"{name}" {sql_type(inner)}' for name, inner in structure.items()) + ")"
    if isinstance(structure, list):
        return f"{sql_type(structure[0])}[]"
    return structure


def duckdb_parsed_batches(batches):
    """`mapInArrow`: each batch of JSON lines (`value`) parsed with the full event schema by DuckDB."""
    import json

    import duckdb
    import pyarrow as pa

    from offerrank.xdm import EVENT_SCHEMA

    structure = json.dumps(duckdb_type(EVENT_SCHEMA)).replace("'", "''")
    connection = duckdb.connect()
    for batch in batches:
        connection.register("lines", pa.Table.from_batches([batch]))
        parsed = connection.sql(
            f"SELECT UNNEST(CASE WHEN json_valid(value) THEN json_transform(value, '{structure}') END) FROM lines"
        )
        yield from parsed.to_arrow_table().to_batches()


def first_pass_child(files: str) -> None:
    """In one warm Spark session, the median seconds of: plain Spark's job (to a no-op sink), Spark's parse of the
    full event schema, offerrank's first pass (parse, record checks, routing, flattening) and the same full-schema
    parse by DuckDB inside Spark's tasks (`mapInArrow`)."""
    import statistics

    from pyspark.sql import functions as F

    from offerrank.jobs.ingest import read_records, record_parameters
    from offerrank.quality import load_suite
    from offerrank.quarantine import route_records
    from offerrank.registry import Registry
    from offerrank.settings import load_settings
    from offerrank.spark import build_spark
    from offerrank.xdm import EVENT_SCHEMA, flatten_records, parse_records

    settings = load_settings()
    spark = build_spark(settings, "first-pass")
    parameters = record_parameters(settings, DAY)
    known_offers = Registry(spark, settings).offer_ids_since(parameters["earliest_event_ts"])
    suite = load_suite(settings.expectations_dir, "events_records")
    records = read_records(spark, {"json": [files], "parquet": []})
    text = spark.read.text(files)
    variants = {
        "plain Spark job": lambda: plain_spark_counts(spark, files),
        "Spark parse, full schema": lambda: text.select(F.from_json("value", EVENT_SCHEMA).alias("j")).select("j.*"),
        "offerrank first pass": lambda: flatten_records(
            route_records(parse_records(records, settings.max_record_bytes, known_offers), suite, parameters)
        ),
        "DuckDB parse in Spark tasks": lambda: text.mapInArrow(duckdb_parsed_batches, EVENT_SCHEMA),
    }
    seconds = {name: [] for name in variants}
    for _ in range(4):  # the first round warms the JVM up and is not counted
        for name, frame in variants.items():
            started = time.perf_counter()
            frame().write.format("noop").mode("overwrite").save()
            seconds[name].append(time.perf_counter() - started)
    plain = statistics.median(seconds["plain Spark job"][1:])
    for name, measured_s in seconds.items():
        median = statistics.median(measured_s[1:])
        print(f"{'':>11} {name:>28} {median:>6.1f} s  {median / plain:.2f}x the plain job (warm, median of 3)")


def duckdb_child(files: str) -> None:
    import duckdb

    rows = duckdb.sql(DUCKDB_FLATTEN_AND_COUNT.format(files=files)).fetchall()
    print(f"groups={len(rows)} items={sum(r[-1] for r in rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-bench"))
    parser.add_argument("--nightly", action="store_true", help="then profiles, aggregate and rank the ingested day")
    parser.add_argument(
        "--first-pass",
        action="store_true",
        help="then, in one warm Spark session, plain Spark's job, Spark's and DuckDB's full-schema parse and "
        "offerrank's first pass over the same files",
    )
    parser.add_argument("--first-pass-child", help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-child", help=argparse.SUPPRESS)
    parser.add_argument("--plain-spark-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_child:
        duckdb_child(args.duckdb_child)
        return
    if args.first_pass_child:
        first_pass_child(args.first_pass_child)
        return
    if args.plain_spark_child:
        plain_spark_child(*args.plain_spark_child)
        return

    from offerrank.generator import generate

    print(f"{'events':>11} {'engine':>11} {'wall s':>8} {'events/s':>10} {'peak MiB':>9}")
    for count in args.events:
        home = args.workdir / f"{count}"
        shutil.rmtree(home, ignore_errors=True)
        generate(home / "sample", DAY, days=1, events_per_day=count, fault_rate=0.001)
        folder = home / "sample" / "events" / DAY.isoformat()
        env = {"OFFERRANK_HOME": str(home)}
        measured(offerrank("apply", "-f", str(home / "sample" / "catalog.yaml")), env)
        files, counts_out = f"{folder}/*.jsonl", str(home / "counts")
        engines = {
            "offerrank": measured(offerrank("ingest", "--date", DAY.isoformat()), env),
            "plain Spark": measured([sys.executable, __file__, "--plain-spark-child", files, counts_out], env),
            "DuckDB": measured([sys.executable, __file__, "--duckdb-child", files]),
        }
        for engine, (seconds, peak_mb, _) in engines.items():
            print(f"{count:>11,} {engine:>11} {seconds:>8.1f} {count / seconds:>10,.0f} {peak_mb:>9,.0f}")
        offerrank_s = engines["offerrank"][0]
        print(
            f"{count:>11,} offerrank / plain Spark {offerrank_s / engines['plain Spark'][0]:.2f}x, "
            f"offerrank / DuckDB {offerrank_s / engines['DuckDB'][0]:.1f}x"
        )
        for engine, (_, _, out) in engines.items():
            print(f"            {engine}: {out.strip().splitlines()[-1][:160]}")
        if args.first_pass:
            print(measured([sys.executable, __file__, "--first-pass-child", files], env)[2].rstrip())
        if args.nightly:
            nightly_steps(env)
        shutil.rmtree(home / "sample" / "events", ignore_errors=True)


if __name__ == "__main__":
    main()
