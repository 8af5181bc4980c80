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


# --- a warehouse with a catalog and hand-made published rankings, for the lookup path ----------------------

RANKINGS_SCHEMA = ("ranking_version long, model_name string, decision_id string, placement_id string, channel string, "
                   "rank int, offer_id string, score double, p_best double, traffic_share double, alpha double, beta double, "
                   "impressions long, conversions long, reason string, as_of_date date, run_id string, published_at timestamp, "
                   "segment string")
AI_PLACEMENTS = {("dp-web-home", "home-hero", "web"): ["offer-004", "offer-009", "offer-013", "offer-019", "offer-023"],
                 ("dp-newsletter", "newsletter-top", "email"): ["offer-006", "offer-008", "offer-014"]}
PRIORITY_PLACEMENTS = {("dp-web-home", "product-sidebar", "web"): ["offer-019", "offer-017", "offer-013"]}


def ranking_rows(version: int) -> list[tuple]:
    """A complete ranking whose order and posteriors differ by `version` (rotated offers, alpha grows)."""
    from datetime import date, datetime

    rows = []
    for (decision, placement, channel), offers in {**AI_PLACEMENTS, **PRIORITY_PLACEMENTS}.items():
        ai = (decision, placement, channel) in AI_PLACEMENTS
        turn = version % len(offers)
        for rank, offer in enumerate(offers[turn:] + offers[:turn], 1):
            alpha, beta = (10.0 * version + 20 - rank, 400.0) if ai else (None, None)
            rows.append((version, "auto-web" if ai else "priority", decision, placement, channel, rank, offer,
                         alpha / (alpha + beta) if ai else 100.0 - rank, None, None, alpha, beta, 400, 10,
                         "model" if ai else "priority", date(2026, 11, version), f"run-{version}", datetime(2026, 11, version, 3), "*"))
    return rows


def publish_rows(spark, settings, rows: list[tuple]) -> int:
    """Replace `offer_rankings` in one commit, as the publish step does; returns the new table version."""
    from delta.tables import DeltaTable

    path = settings.table_path("offer_rankings")
    spark.createDataFrame(rows, RANKINGS_SCHEMA).write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    return DeltaTable.forPath(spark, path).history(1).first().version


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
