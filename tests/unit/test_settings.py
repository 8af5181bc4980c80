"""Settings: local defaults under OFFERRANK_HOME, environment overrides, CLI flags over the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from offerrank.settings import load_settings


def test_defaults_live_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFERRANK_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.warehouse == str(tmp_path / "warehouse")
    assert settings.catalog_file == tmp_path / "sample" / "catalog.yaml"
    assert settings.spark_master == "local[*]"
    assert settings.table_path("interactions") == f"{tmp_path}/warehouse/interactions"


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("OFFERRANK_WAREHOUSE", "s3a://bucket/warehouse/")
    monkeypatch.setenv("OFFERRANK_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("OFFERRANK_SPARK_CONF", '{"spark.hadoop.fs.s3a.endpoint": "http://minio:9000"}')
    settings = load_settings(spark_master="local[2]", warehouse=None)
    assert settings.warehouse == "s3a://bucket/warehouse/"
    assert settings.table_path("quarantine") == "s3a://bucket/warehouse/quarantine"
    assert settings.spark_master == "local[2]"
    assert settings.spark_conf == {"spark.hadoop.fs.s3a.endpoint": "http://minio:9000"}
    assert not load_settings(spark_master="yarn").spark_is_local


def test_bad_values_are_refused_with_the_setting_named(monkeypatch):
    monkeypatch.setenv("OFFERRANK_SPARK_SHUFFLE_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="spark_shuffle_partitions"):
        load_settings()
