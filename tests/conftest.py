"""Shared fixtures: one Spark session for the whole run, settings pointing at a temporary home."""

from __future__ import annotations

import pytest

from offerrank.settings import Settings, load_settings
from offerrank.spark import build_spark


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(home=tmp_path_factory.mktemp("offerrank-home"), spark_shuffle_partitions=2)


@pytest.fixture(scope="session")
def spark(settings: Settings):
    session = build_spark(settings, app_name="offerrank-tests")
    yield session
    session.stop()
