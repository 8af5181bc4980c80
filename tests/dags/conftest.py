"""Airflow for the DAG tests: a throw-away AIRFLOW_HOME on SQLite, set before anything imports Airflow."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_ENV = {
    "AIRFLOW_HOME": tempfile.mkdtemp(prefix="offerrank-airflow-"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
    # spark-submit and the job's Python come from this environment
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
}
os.environ.update(AIRFLOW_ENV)
