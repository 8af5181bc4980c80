"""Delta's jars: the Maven coordinates of the installed pyspark/delta-spark pair and the cache folder Spark's own
Ivy resolution fetches them into, once; sessions and the Spark Connect server load the cached files, offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyspark.sql import SparkSession

from offerrank.settings import Settings


def delta_coordinates(settings: Settings) -> list[str]:
    """Maven coordinates of Delta for the installed pyspark/delta-spark pair, plus the extra packages."""
    from delta import configure_spark_with_delta_pip

    probe = configure_spark_with_delta_pip(SparkSession.builder, settings.spark_extra_packages)
    return probe._options["spark.jars.packages"].split(",")


def jars_folder(settings: Settings) -> Path:
    """Cache folder holding the resolved jars of exactly these coordinates."""
    key = hashlib.sha256(",".join(delta_coordinates(settings)).encode()).hexdigest()[:16]
    return settings.jars_cache / key


def cached_jars(settings: Settings) -> list[Path]:
    return sorted((jars_folder(settings) / "jars").glob("*.jar"))
