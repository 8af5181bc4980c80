"""The session offerrank builds: the real Delta path through delta-spark (create, MERGE, time travel, history),
and rows kept on local disk between a job's reads."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from offerrank.engines.jars import cached_jars
from offerrank.engines.spark import kept_on_disk, release_kept


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


def test_a_frame_kept_on_disk_is_computed_once_and_its_blocks_are_released(spark):
    def stored_blocks() -> int:  # other tests' cached frames (Delta's snapshots) stay put meanwhile
        return sum(rdd.numCachedPartitions() for rdd in spark.sparkContext._jsc.sc().getRDDStorageInfo())

    before = stored_blocks()
    frame = kept_on_disk(spark.range(1000, numPartitions=4).withColumn("draw", F.rand()))
    first = sorted(frame.collect())
    assert sorted(frame.collect()) == first  # random draws read back, not drawn again
    assert len(first) == 1000
    assert stored_blocks() == before + 4

    release_kept(frame)
    assert stored_blocks() == before
