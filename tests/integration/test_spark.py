"""The real Delta path through delta-spark: create, MERGE, time travel, history."""

from __future__ import annotations

from delta.tables import DeltaTable

from offerrank.spark import cached_jars


def test_delta_jars_are_cached_for_offline_reuse(spark, settings):
    jar_names = [jar.name for jar in cached_jars(settings)]
    assert any(name.startswith("io.delta_delta-spark_") for name in jar_names), jar_names


def test_delta_round_trip_merge_time_travel_history(spark, settings):
    path = settings.table_path("round_trip")
    spark.createDataFrame([("offer-1", 10), ("offer-2", 20)], "offer_id string, impressions long").write.format(
        "delta"
    ).mode("overwrite").save(path)

    updates = spark.createDataFrame([("offer-2", 25), ("offer-3", 5)], "offer_id string, impressions long")
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("u"), "t.offer_id = u.offer_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    current = {r.offer_id: r.impressions for r in spark.read.format("delta").load(path).collect()}
    assert current == {"offer-1": 10, "offer-2": 25, "offer-3": 5}

    original = {
        r.offer_id: r.impressions for r in spark.read.format("delta").option("versionAsOf", 0).load(path).collect()
    }
    assert original == {"offer-1": 10, "offer-2": 20}

    history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert [(h.version, h.operation) for h in history] == [(0, "WRITE"), (1, "MERGE")]
    assert history[1].operationMetrics["numTargetRowsUpdated"] == "1"
    assert history[1].operationMetrics["numTargetRowsInserted"] == "1"
