"""Shared fixtures: one Spark session for the whole run, settings pointing at a temporary home."""

from __future__ import annotations

import pytest

from offerrank.settings import Settings, load_settings
from offerrank.spark import build_spark
from tests.factories import publish_rows, ranking_rows


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(home=tmp_path_factory.mktemp("offerrank-home"), spark_shuffle_partitions=2)


@pytest.fixture(scope="session")
def spark(settings: Settings):
    session = build_spark(settings, app_name="offerrank-tests")
    yield session
    session.stop()


# --- a warehouse with a catalog and hand-made published rankings, for the lookup path ----------------------

@pytest.fixture(scope="session")
def ranked_warehouse(spark, tmp_path_factory) -> Settings:
    """A warehouse holding the sample catalog and ranking version 1 (home-hero, newsletter-top, product-sidebar)."""
    from datetime import date, datetime

    from offerrank.catalog import load_catalog
    from offerrank.generator import generate
    from offerrank.registry import Registry

    home = tmp_path_factory.mktemp("lookup-home")
    generate(home / "sample", date(2026, 11, 1), days=1, seed=5, events_per_day=200)
    settings = load_settings(home=home, spark_shuffle_partitions=2)
    Registry(spark, settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 1))
    publish_rows(spark, settings, ranking_rows(1))
    return settings
