"""Delta writes through Spark (`offerrank.engines.delta_spark`): the statistics a table keeps for data skipping."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from offerrank.engines.delta_rs import open_table
from offerrank.engines.delta_spark import STATS_COLUMNS, Warehouse
from offerrank.schemas import Table
from offerrank.settings import load_settings

EVENTS = Table("events_stats", ("day",), stats_columns=("kind",))


def _added_file_stats(table_path: str) -> dict:
    last_commit = sorted(Path(table_path, "_delta_log").glob("*.json"))[-1]
    adds = [json.loads(line)["add"] for line in last_commit.read_text().splitlines() if '"add"' in line]
    return json.loads(adds[0]["stats"])


def test_a_table_keeps_statistics_of_its_declared_columns_only_also_when_created_before_declaring_them(spark, tmp_path):
    settings = load_settings(home=tmp_path)
    warehouse = Warehouse(spark, settings)
    rows = spark.createDataFrame([(date(2026, 11, 1), "e-1", "click", 3)], "day date, id string, kind string, n int")
    rows.write.format("delta").partitionBy("day").save(warehouse.path(EVENTS))  # as a release without the declaration
    assert set(_added_file_stats(warehouse.path(EVENTS))["minValues"]) == {"id", "kind", "n"}

    warehouse.replace_where(rows, EVENTS, {"day": date(2026, 11, 1)})

    assert open_table(settings, EVENTS).metadata().configuration[STATS_COLUMNS] == "kind"
    stats = _added_file_stats(warehouse.path(EVENTS))
    assert stats["minValues"] == {"kind": "click"} and stats["numRecords"] == 1
    assert warehouse.read(EVENTS).count() == 1
