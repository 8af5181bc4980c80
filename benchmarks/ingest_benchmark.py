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
same first pass done by DuckDB inside Spark's tasks (routing left to Spark): where ingest's time goes once the JVM's
start is paid, and what moving the parse out of Spark would save.

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

    from offerrank.events.xdm import EVENT_SCHEMA

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

    from offerrank.engines.spark import build_spark
    from offerrank.settings import load_settings

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


# JSON types (as DuckDB's `json_structure` names them) that Spark's parser reads as each Spark type unchanged
EXACT_SHAPES = {
    "string": {"VARCHAR"},
    "bigint": {"BIGINT", "UBIGINT"},
    "double": {"DOUBLE", "BIGINT", "UBIGINT"},
    "boolean": {"BOOLEAN"},
}
# offerrank's first pass (`parse_records` and `flatten_records`) in DuckDB, for the records whose shape fits; the
# others (`fast` false) are left to Spark, as a product would have to: DuckDB reads some text Spark's JSON parser
# rejects (trailing commas) and turns values Spark refuses (a string for a number) into the field's type
DUCKDB_SHAPES = """
CREATE OR REPLACE TEMP TABLE parsed AS
SELECT record_id, source_file, record_hash, raw,
       CASE WHEN json_valid(raw) AND NOT regexp_matches(raw, ',\\s*[}\\]]') THEN try(json_structure(raw)) END AS shape
FROM lines
"""
DUCKDB_FIRST_PASS = """
WITH typed AS (
  SELECT record_id, source_file, record_hash, raw, CASE WHEN list_contains($fitting, shape)
         THEN json_transform(raw, '{structure}') END AS j
  FROM parsed),
records AS (
  SELECT record_id, source_file, record_hash, CASE WHEN j IS NULL THEN raw END AS raw, j IS NOT NULL AS fast,
         j._id AS event_id, j.timestamp AS timestamp_text, j.eventType AS event_type,
         list_transform(list_filter(map_entries(j._experience.decisioning.propositionEventType),
                                    lambda e: e.value = 1), lambda e: e.key) AS kinds,
         coalesce(nullif(string_split(j.channel._type, '/')[-1], ''), j._experience.decisioning.channelType) AS channel,
         coalesce(list_filter(flatten(map_values(j.identityMap)),
                              lambda i: coalesce(i.primary, false) AND i.id IS NOT NULL)[1].id,
                  j.identityMap['ECID'][1].id) AS profile_id,
         j.device.type AS device, j.placeContext.localTime AS local_time,
         coalesce(j._experience.decisioning.propositions, []) AS propositions
  FROM typed),
checked AS (
  SELECT * EXCLUDE (kinds), CASE WHEN len(kinds) = 1 THEN kinds[1] END AS proposition_kind,
         flatten(list_transform(propositions, lambda p: coalesce(p.items, []))) AS items
  FROM records),
counted AS (
  SELECT * EXCLUDE (items),
         len(propositions)::INT AS propositions_count,
         len(list_filter(propositions, lambda p: p.id IS NULL))::INT AS propositions_without_id,
         len(list_filter(propositions, lambda p: coalesce(p.scopeDetails.placement.id, p.scope) IS NULL))::INT
           AS propositions_without_placement,
         len(list_filter(propositions, lambda p: coalesce(len(p.items), 0) <= 0))::INT AS propositions_without_items,
         len(list_filter(items, lambda i: i.id IS NULL))::INT AS items_without_id,
         len(list_filter(
           list_concat(list_transform(propositions, lambda p: p.id),
                       list_transform(propositions, lambda p: coalesce(p.scopeDetails.placement.id, p.scope)),
                       list_transform(propositions, lambda p: coalesce(p.scopeDetails.decisionPolicy.id,
                                                                       p.scopeDetails.activity.id)),
                       list_transform(items, lambda i: i.id)),
           lambda x: x IS NOT NULL AND NOT regexp_full_match(x, $id_pattern)))::INT AS ids_with_invalid_format,
         len(list_filter(items, lambda i: NOT (i.itemSelection.rankingDetail.propensity BETWEEN 0 AND 1)))::INT
           AS items_with_invalid_propensity,
         len(list_distinct(list_filter(list_transform(items, lambda i: i.id),
                                       lambda i: i IS NOT NULL AND NOT list_contains($known_offers, i))))::INT
           AS unknown_offers
  FROM checked),
by_proposition AS (
  SELECT * EXCLUDE (propositions),
         unnest(CASE WHEN len(propositions) = 0 THEN [NULL] ELSE propositions END) AS p,
         unnest(CASE WHEN len(propositions) = 0 THEN [NULL] ELSE generate_series(0, len(propositions) - 1) END)
           AS proposition_index
  FROM counted),
by_item AS (
  SELECT * EXCLUDE (p), p.id AS proposition_id, coalesce(p.scopeDetails.placement.id, p.scope) AS placement_id,
         coalesce(p.scopeDetails.decisionPolicy.id, p.scopeDetails.activity.id) AS decision_id,
         unnest(CASE WHEN coalesce(len(p.items), 0) = 0 THEN [NULL] ELSE p.items END) AS item,
         unnest(CASE WHEN coalesce(len(p.items), 0) = 0 THEN [NULL] ELSE generate_series(0, len(p.items) - 1) END)
           AS item_index
  FROM by_proposition)
SELECT * EXCLUDE (item, proposition_index, item_index), item_index::INT AS item_index,
       coalesce(proposition_index, 0) + coalesce(item_index, 0) = 0 AS record_row,
       item.id AS offer_id, item.itemSelection.rankingDetail.trafficType AS traffic_type,
       item.itemSelection.rankingDetail.propensity AS propensity
FROM by_item
"""
DUCKDB_FIRST_PASS_ROWS = (
    "record_id bigint, source_file string, record_hash struct<high: bigint, low: bigint>, raw string, fast boolean, "
    "event_id string, timestamp_text string, event_type string, channel string, profile_id string, device string, "
    "local_time string, proposition_kind string, propositions_count int, propositions_without_id int, "
    "propositions_without_placement int, propositions_without_items int, items_without_id int, "
    "ids_with_invalid_format int, items_with_invalid_propensity int, unknown_offers int, proposition_id string, "
    "placement_id string, decision_id string, item_index int, record_row boolean, offer_id string, "
    "traffic_type string, propensity double"
)


def shape_fits(shape: object, spark_type) -> bool:
    """Whether a record's `json_structure` has, at each field of `spark_type`, a JSON type that Spark's parser reads
    as that field's type unchanged (`json_structure` names a field of mixed types `JSON`, so it never fits)."""
    from pyspark.sql import types as T

    if shape == "NULL":
        return True
    if isinstance(spark_type, T.StructType):
        fields = {field.name: field.dataType for field in spark_type.fields}
        return isinstance(shape, dict) and all(shape_fits(v, fields[k]) for k, v in shape.items() if k in fields)
    if isinstance(spark_type, T.ArrayType):
        return isinstance(shape, list) and shape_fits(shape[0], spark_type.elementType)
    if isinstance(spark_type, T.MapType):
        return isinstance(shape, dict) and all(shape_fits(v, spark_type.valueType) for v in shape.values())
    return shape in EXACT_SHAPES[spark_type.simpleString()]


def duckdb_first_pass(known_offers: list[str]):
    """`mapInArrow`: each batch of records (`record_id`, `source_file`, `record_hash`, `raw`) through
    `DUCKDB_FIRST_PASS`, a row per (record, proposition, item)."""

    def batches(records):
        import json

        import duckdb
        import pyarrow as pa

        from offerrank.catalog import ID_PATTERN
        from offerrank.events.xdm import EVENT_SCHEMA

        structure = json.dumps(duckdb_type(EVENT_SCHEMA)).replace("'", "''")
        query = DUCKDB_FIRST_PASS.format(structure=structure)
        connection = duckdb.connect(config={"threads": 1})  # one per Spark task: Spark runs a task per core
        id_pattern = ID_PATTERN.removeprefix("^").removesuffix("$")
        fits: dict[str, bool] = {}
        for batch in records:
            connection.register("lines", pa.Table.from_batches([batch]))
            connection.execute(DUCKDB_SHAPES)
            for (shape,) in connection.sql("SELECT DISTINCT shape FROM parsed WHERE shape IS NOT NULL").fetchall():
                if shape not in fits:
                    fits[shape] = shape_fits(json.loads(shape), EVENT_SCHEMA)
            parameters = {
                "fitting": [shape for shape, fitting in fits.items() if fitting],
                "id_pattern": id_pattern,
                "known_offers": known_offers,
            }
            yield from connection.sql(query, params=parameters).to_arrow_table().to_batches()

    return batches


def first_pass_child(files: str) -> None:
    """In one warm Spark session, the median seconds of: plain Spark's job (to a no-op sink), Spark's parse of the
    full event schema, offerrank's first pass (parse, record checks, routing, flattening) and the same first pass
    with the parse, the record checks and the flattening done by DuckDB inside Spark's tasks (`mapInArrow`)."""
    import statistics

    from pyspark.sql import functions as F

    from offerrank.catalog.registry import Registry
    from offerrank.engines.quality import load_suite
    from offerrank.engines.spark import build_spark
    from offerrank.events.day_checks import record_parameters
    from offerrank.events.quarantine import route_records
    from offerrank.events.records import read_records
    from offerrank.events.xdm import (
        EVENT_KINDS,
        EVENT_SCHEMA,
        flatten_records,
        hour_of,
        map_values,
        parse_records,
        record_hash,
    )
    from offerrank.settings import load_settings

    def with_spark_columns(rows):
        """The columns of `parse_records` that `DUCKDB_FIRST_PASS` leaves to Spark (its timestamp parsing)."""
        event_ts = F.try_to_timestamp("timestamp_text")
        return rows.select(
            "*",
            F.when(F.col("fast"), "ok").otherwise("left_to_spark").alias("parse_status"),
            event_ts.alias("event_ts"),
            map_values(F.col("event_type"), EVENT_KINDS).alias("event_kind"),
            hour_of(F.col("local_time"), event_ts).alias("hour"),
        )

    settings = load_settings()
    spark = build_spark(settings, "first-pass")
    parameters = record_parameters(settings, DAY)
    known_offers = Registry(settings).offer_ids_since(parameters["earliest_event_ts"])
    suite = load_suite(settings.expectations_dir, "events_records")
    records = read_records(spark, {"json": [files], "parquet": []})
    text = spark.read.text(files)
    keyed = records.select(
        F.monotonically_increasing_id().alias("record_id"),
        "source_file",
        record_hash(F.col("raw")).alias("record_hash"),
        "raw",
    )
    variants = {
        "plain Spark job": lambda: plain_spark_counts(spark, files),
        "Spark parse, full schema": lambda: text.select(F.from_json("value", EVENT_SCHEMA).alias("j")).select("j.*"),
        "offerrank first pass": lambda: flatten_records(
            route_records(parse_records(records, settings.max_record_bytes, known_offers), suite, parameters)
        ),
        "DuckDB first pass in Spark tasks": lambda: route_records(
            with_spark_columns(keyed.mapInArrow(duckdb_first_pass(known_offers), DUCKDB_FIRST_PASS_ROWS)),
            suite,
            parameters,
        ),
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
        print(f"{'':>11} {name:>32} {median:>6.1f} s  {median / plain:.2f}x the plain job (warm, median of 3)")


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
        help="then, in one warm Spark session, plain Spark's job, Spark's full-schema parse and offerrank's "
        "first pass, in Spark and in DuckDB inside Spark's tasks, over the same files",
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

    from offerrank.sim.generator import generate

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
