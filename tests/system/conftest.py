"""The system tier: the real DAGs through Airflow, Airflow on PostgreSQL, a Spark standalone cluster, compose.

`airflow_env` is a throw-away Airflow home on SQLite for the session, put in the environment for the tests that
import Airflow in-process and handed to the subprocesses they start; the environment is restored afterwards.
`browser` is headless Chromium (Debian's package) driven by Playwright; screenshots go to `var/screenshots/`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from offerrank.engines.spark_server import stop_local_server
from offerrank.settings import load_settings
from tests.factories import REPO, free_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "var" / "screenshots"
# Chromium as root in a sandbox with a closed network: no sandbox, no background connections to Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium (./dev.sh test installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow-home")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # spark-submit and the jobs' Python come from this environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # the DAG's Spark steps run on a local Spark Connect server that the first step starts (on a port of its own: a
    # developer's server keeps 15002), stopped at the end of the session; only the DAG runs' subprocesses get these,
    # so the tests' own Spark stays in-process
    spark_server = {"OFFERRANK_SPARK_REMOTE": "local", "OFFERRANK_SPARK_CONNECT_PORT": str(free_port())}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env | spark_server
    stop_local_server(load_settings(spark_connect_port=spark_server["OFFERRANK_SPARK_CONNECT_PORT"]))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
