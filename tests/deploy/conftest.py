"""The deployment tests share the DAG tests' throw-away Airflow settings (set before anything imports Airflow)."""

from tests.dags.conftest import AIRFLOW_ENV, REPO  # noqa: F401  (importing it sets the environment)
