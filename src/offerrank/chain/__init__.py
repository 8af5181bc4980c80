"""The nightly chain: its steps and gates, and what the Airflow DAGs' tasks call."""
