"""The system tier: the real DAGs through Airflow, Airflow on PostgreSQL, a Spark standalone cluster, compose.

`airflow_env` is a throw-away Airflow home on SQLite for the session, put in the environment for the tests that
import Airflow in-process and handed to the subprocesses they start; the environment is restored afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.factories import REPO


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow-home")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
        # spark-submit and the jobs' Python come from this environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
