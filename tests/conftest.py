"""Shared fixtures: one Spark session for the whole run, settings pointing at a temporary home; the test tiers.

Each test is marked with its tier, the first folder under `tests/`: `unit` (pure functions, no Spark session),
`integration` (Spark jobs and the chain on real Delta tables), `system` (Airflow, PostgreSQL, a Spark cluster).
`./dev.sh test --fast` runs the unit tier.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offerrank.engines.spark import build_spark
from offerrank.settings import Settings, load_settings
from tests.factories import SMALL_INPUT_SPARK_CONF, TESTS, publish_rows, ranking_rows

TIERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, and order the slowest files first (the system tier, its loopback cluster
    first)."""
    tiers = {}
    for item in items:
        tier = tiers[item.nodeid] = Path(str(item.path)).relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tiers {', '.join(TIERS)}")
        item.add_marker(tier)
    slowest_first = {"system": 0, "integration": 1, "unit": 2}
    # stable: the tests of one file keep their order; within a tier, files in reverse path order (deploy/ first)
    items.sort(key=lambda item: (slowest_first[tiers[item.nodeid]], [-ord(c) for c in str(item.path)]))


# The system tests that run the DAGs or start the deployment's services (Airflow, PostgreSQL, a Spark cluster).
SERVICE_FOLDERS = ("system/dags", "system/deploy")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With workers (`--dist loadscope`, as `./dev.sh test` runs): the tests of `SERVICE_FOLDERS` are one unit of
    work, run test after test by one worker (two Airflow stacks or DAG runs side by side would fight for the
    cores), while the other workers take the other tests a whole file at a time (a file's fixtures are built
    once)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ServicesInOneUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            folder = Path(path).relative_to("tests").parent.as_posix()
            return "services" if folder in SERVICE_FOLDERS else path

    return ServicesInOneUnit(config, log)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        home=tmp_path_factory.mktemp("offerrank-home"), spark_shuffle_partitions=1, spark_conf=SMALL_INPUT_SPARK_CONF
    )


@pytest.fixture(scope="session")
def spark(settings: Settings):
    session = build_spark(settings, app_name="offerrank-tests")
    yield session
    session.stop()


# --- a warehouse with a catalog and hand-made published rankings, for the lookup path ----------------------


@pytest.fixture(scope="session")
def ranked_warehouse(tmp_path_factory) -> Settings:
    """A warehouse holding the sample catalog and ranking version 1 (home-hero, newsletter-top, product-sidebar)."""
    from datetime import date, datetime

    from offerrank.catalog import load_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.sim.generator import generate

    home = tmp_path_factory.mktemp("lookup-home")
    generate(home / "sample", date(2026, 11, 1), days=1, seed=5, events_per_day=200)
    settings = load_settings(home=home)
    Registry(settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 1))
    publish_rows(settings, ranking_rows(1))
    return settings
