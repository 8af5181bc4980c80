"""Typed settings: environment variables with the `OFFERRANK_` prefix, local defaults, CLI overrides.

Every path default lives under `OFFERRANK_HOME` (default `./var`), so one variable moves a whole
local installation; any single setting can point elsewhere (a Spark cluster, object storage).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All of offerrank's knobs; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="OFFERRANK_", extra="forbid")

    home: Path = Field(Path("var"), description="Root folder of the local defaults below.")
    warehouse: str = Field("", description="Root of the Delta tables: a folder or an s3a://, abfss://, gs:// URI.")
    profiles_root: str = Field("", description="Root of profile-segment snapshots, one folder per snapshot date.")
    landing_marker: str = Field(
        "",
        description="A file (e.g. _SUCCESS) a landing folder must hold before its events are read; empty: the first "
        "event file is enough.",
    )
    catalog_file: Path | None = Field(None, description="Catalog YAML (offers, placements, decisions, models).")
    actor: str = Field(
        "",
        description="Who the registry records as making a change (a service account, say); default: the OS user.",
    )
    ranking_managers: list[str] = Field(
        default_factory=list,
        description="The principals allowed to change the catalog, AI models and decisions (Adobe's Manage Ranking "
        "Strategies permission), a JSON list; empty: everyone.",
    )

    spark_master: str = Field("local[*]", description="Spark master URL: local[*], spark://host:7077, yarn, ...")
    spark_remote: str = Field(
        "",
        description="Spark Connect server the jobs run on: `local` (a server on this machine that the first job "
        "starts and later jobs reuse), `sc://host:15002`, or empty: each process starts its own Spark.",
    )
    spark_connect_port: int = Field(15002, description="Port of the local Spark Connect server (`local` remote).")
    spark_driver_memory: str = Field("2g", description="spark.driver.memory for sessions offerrank starts.")
    spark_shuffle_partitions: int = Field(
        4, ge=1, description="spark.sql.shuffle.partitions; small for 2-core machines."
    )
    spark_ui_enabled: bool = Field(False, description="Start the Spark UI (off by default: no port clashes in tests).")
    spark_local_ip: str = Field(
        "127.0.0.1", description="SPARK_LOCAL_IP for local masters when the env does not set it."
    )
    spark_python: str = Field(
        sys.executable, description="Python of Spark's Python workers (pandas UDFs); default: this one."
    )
    spark_extra_packages: list[str] = Field(
        default_factory=list, description="Extra Maven coordinates, e.g. org.apache.hadoop:hadoop-aws:3.4.1 for S3."
    )
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings as a JSON object.")
    expectations_dir: Path = Field(
        default_factory=lambda: packaged("expectations"), description="Folder of the versioned GX suites."
    )
    dq_docs_dir: str = Field(
        "", description="Folder of the Great Expectations data docs (default: <warehouse>/dq_docs)."
    )

    reports_dir: str = Field(
        "",
        description="Where model report pages are written: a folder or an s3://, gs://, abfs:// URI (default: "
        "<warehouse>/reports).",
    )

    lateness_days: int = Field(3, ge=0, description="How many days after its UTC date an event may still land.")
    future_tolerance_minutes: int = Field(10, ge=0, description="Clock skew allowed past the end of the landing date.")
    max_record_bytes: int = Field(1_000_000, ge=1024, description="Larger records are quarantined as oversized.")
    min_propensity: float = Field(
        1e-5,
        gt=0,
        lt=1,
        description="Events whose logged propensity is lower are quarantined (propensity_below_floor); the lookup "
        "never logs less than 1/20,000.",
    )
    keep_raw_events: bool = Field(
        False,
        description="Also keep every record's text in events_raw (a second read of the day's files); off, the "
        "landing folders are the copy as received and only quarantined records keep their text.",
    )
    max_quarantine_share: float = Field(
        0.05, ge=0, le=1, description="Largest share of quarantined records a valid day may have."
    )
    max_damaged_file_share: float = Field(
        0.1, ge=0, le=1, description="Largest share of a day's data files that may be damaged (cut short, corrupt)."
    )
    min_events_per_day: int = Field(1, ge=0, description="Fewest accepted events a valid day may have.")
    volume_trailing_days: int = Field(7, ge=1, description="Trailing days whose mean volume the day is compared with.")
    min_volume_ratio: float = Field(0.2, ge=0, description="Lowest accepted-events ratio to the trailing mean.")
    max_volume_ratio: float = Field(5.0, ge=0, description="Highest accepted-events ratio to the trailing mean.")
    conversion_tolerance: float = Field(
        0.1, ge=0, description="An offer's conversions may exceed its impressions by this share."
    )
    conversion_check_min: int = Field(
        20, ge=0, description="Conversions an offer needs on the day before that check applies."
    )

    prior_alpha: float = Field(
        1.0, gt=0, description="Beta prior alpha of an offer whose list and placement have no data yet."
    )
    prior_beta: float = Field(
        1.0, gt=0, description="Beta prior beta of an offer whose list and placement have no data yet."
    )
    prior_impressions: float = Field(
        10.0, gt=0, description="Impressions an offer's prior, its list's pooled conversion rate, weighs."
    )

    vacuum_retention_hours: int = Field(168, ge=168, description="Least history VACUUM keeps (Delta's minimum: 168 h).")
    keep_ranking_versions: int = Field(
        10, ge=1, description="Published rankings that VACUUM keeps readable by time travel."
    )

    lookup_refresh_seconds: float = Field(
        2.0, gt=0, description="How often channel lookups poll for a newly published ranking."
    )
    lookup_max_age_hours: float = Field(
        48.0,
        gt=0,
        description="A lookup is degraded (HTTP 503 on /healthz) once the ranking it serves is older than this.",
    )

    http_show_segment: bool = Field(
        False,
        description="Give the segment whose list answered in the HTTP lookup's answers; off: the HTTP lookup has no "
        "authentication, and the segment tells its caller a profile's membership (the library and CLI always give it).",
    )

    jars_cache: Path = Field(
        Path.home() / ".cache" / "offerrank" / "jars",
        description="Where Delta's jars are fetched once and reused offline.",
    )

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.warehouse:
            self.warehouse = str(self.home / "warehouse")
        if not self.profiles_root:
            self.profiles_root = str(self.home / "sample" / "profiles")
        if self.catalog_file is None:
            self.catalog_file = self.home / "sample" / "catalog.yaml"
        if not self.dq_docs_dir:
            self.dq_docs_dir = self.table_path("dq_docs")
        if not self.reports_dir:
            self.reports_dir = self.table_path("reports")
        self.jars_cache = self.jars_cache.expanduser().resolve()
        return self

    def table_path(self, name: str) -> str:
        """Location of the Delta table `name` under the warehouse root."""
        return f"{self.warehouse.rstrip('/')}/{name}"

    @property
    def spark_is_local(self) -> bool:
        return self.spark_master.startswith("local")

    def spark_session_conf(self) -> dict[str, str]:
        """Every Spark setting of an offerrank Spark application, however it starts: the SparkSession offerrank
        builds (`offerrank.engines.spark`) and the `--conf`s spark-submit gets from the DAG, where the driver's memory
        must be set before its JVM starts. `spark_conf` entries override the defaults."""
        partitions = str(self.spark_shuffle_partitions)
        conf = {
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            "spark.driver.memory": self.spark_driver_memory,
            "spark.sql.shuffle.partitions": partitions,
            "spark.ui.enabled": str(self.spark_ui_enabled).lower(),
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
            "spark.pyspark.python": self.spark_python,
            # Delta's default of 50 partitions for log replay dominates small-table latency on 2 cores.
            "spark.databricks.delta.snapshotPartitions": partitions,
            # VACUUM lists a table's files with this many tasks (Spark's default: 10,000): 45 s for a tiny table.
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": partitions,
            # Frames go to and from pandas through Arrow, as they always do on Spark Connect: one conversion path
            # however a job runs, and no row-by-row pickling.
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # Rows kept on local disk (`offerrank.engines.spark.kept_on_disk`) are written and read back by this
            # serializer: with Java's, every re-read of them (GX's scans, the labels, the writes) was slower, and
            # ingest of a 1M-event day took 7% longer.
            "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        }
        return conf | self.spark_conf


def packaged(folder: str) -> Path:
    """A data folder shipped as the sub-package `offerrank.<folder>` (the repo's `expectations/`), found through
    importlib.resources, so it works in an editable and in a regular install alike."""
    from importlib import resources

    return Path(str(resources.files(f"offerrank.{folder}")))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None keyword overrides (CLI flags) taking precedence."""
    values: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}  # validated
    return Settings(**values)


def parse_flag(text: str) -> bool:
    """A command-line boolean as Airflow renders it: true/false, 1/0, yes/no (any case)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", "none", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")
