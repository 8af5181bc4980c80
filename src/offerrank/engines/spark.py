"""The one place that builds offerrank's SparkSession (Delta enabled, settings applied).

Delta's jars are resolved by Spark's own Ivy resolution (`configure_spark_with_delta_pip`) into a cache
folder keyed by the coordinates; once there, sessions load the cached jar files directly, offline.
"""

from __future__ import annotations

import os

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from offerrank.engines.jars import cached_jars, delta_coordinates, jars_folder
from offerrank.settings import Settings

# How jobs cache a day's rows: on local disk (the OS page cache keeps what fits), never in the heap. With
# MEMORY_AND_DISK a 10M-event day died of `OutOfMemoryError` in a 2 GB driver: cached blocks filled the storage share
# of the heap while the columnar cache builder grew its batch buffers outside Spark's memory accounting.
CACHE_LEVEL = StorageLevel.DISK_ONLY


def kept_on_disk(frame: DataFrame) -> DataFrame:
    """`frame`, computed by the first action that reads it, its rows kept on local disk (`CACHE_LEVEL`) for the
    next ones: a local checkpoint, whose rows are written as they are computed. Spark's columnar cache
    (`persist`) gathers compression statistics of every string column of every batch: for ingest's first pass,
    a third more time than the whole pass otherwise takes, where the later reads of the rows cost little more
    for being read whole. The lineage is cut: on a cluster, a lost executor fails the job (the Airflow task's
    retry runs it again) instead of recomputing the lost part. `release_kept` frees the blocks."""
    return frame.localCheckpoint(eager=False, storageLevel=CACHE_LEVEL)


def release_kept(frame: DataFrame) -> None:
    """Delete the disk blocks of a `kept_on_disk` frame now. A Spark Connect server frees them when the client
    drops the frame; an in-process session would wait for the JVM's next garbage collection."""
    from pyspark.sql.classic.dataframe import DataFrame as ClassicFrame

    if isinstance(frame, ClassicFrame):
        frame._jdf.queryExecution().logical().rdd().unpersist(False)


def build_spark(settings: Settings, app_name: str = "offerrank") -> SparkSession:
    """Get or create the SparkSession for `settings` (fetches Delta's jars on first use only): a session on the
    Spark Connect server of `spark_remote`, else one in this process."""
    if settings.spark_remote:
        return connect_session(settings)
    if settings.spark_is_local:
        os.environ.setdefault("SPARK_LOCAL_IP", settings.spark_local_ip)
    # PySpark starts its Python workers with PYSPARK_PYTHON (else whatever `python3` is on PATH).
    os.environ.setdefault("PYSPARK_PYTHON", settings.spark_python)
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the master comes from --master; PythonRunner sets PYSPARK_GATEWAY_PORT for the driver it
    # starts.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(settings.spark_master)
    for key, value in settings.spark_session_conf().items():
        builder = builder.config(key, value)
    jars = cached_jars(settings)
    if jars:
        builder = builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    else:
        builder = builder.config("spark.jars.packages", ",".join(delta_coordinates(settings))).config(
            "spark.jars.ivy", str(jars_folder(settings))
        )
    return builder.getOrCreate()


def connect_session(settings: Settings) -> SparkSession:
    """A session on the Spark Connect server of `settings.spark_remote`, with offerrank's runtime SQL settings (the
    server was started with the others)."""
    from offerrank.engines.spark_server import remote_url

    spark = SparkSession.builder.remote(remote_url(settings)).getOrCreate()
    for key, value in settings.spark_session_conf().items():
        if spark.conf.isModifiable(key):
            spark.conf.set(key, value)
    return spark


def release_connect_session() -> None:
    """End this process's Spark Connect session, if any: the server drops its state now, not at the idle timeout."""
    from pyspark.sql.utils import is_remote

    if not is_remote():  # no Connect session was made in this process: nothing to end, no Connect client to import
        return
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.getActiveSession()
    if session is not None:
        session.stop()
