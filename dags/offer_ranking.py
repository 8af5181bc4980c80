"""
### offer_ranking — the nightly ranking run

Every night at 02:00 UTC, for the previous day (the data interval), offerrank:

1. **waits** for the day's event files in the landing folder (reschedule mode, gives up after 6 hours);
2. **ingests** them with Spark into Delta (`events_raw`, `interactions`, `quarantine`, `dq_results`);
3. **validates**: stops the run here, with the reason in the log, when the day failed Great Expectations (the
   ingest step records it as a refused publish in `ranking_runs`, as `offerrank run` does);
4. loads the **profiles** snapshot the day uses (segment memberships, validated; a rejected snapshot is logged
   and the run goes on with the last good one);
5. **aggregates** daily offer facts (all traffic and per segment) and every active model's conversion rates;
6. **ranks**, one task per ranking method in use (each AI model, each formula, priority);
7. **publishes** all rankings in one Delta commit (Asset `offerrank://offer_rankings`), behind the publish gate;
8. writes a short **summary**.

Trigger it by hand with *Trigger DAG w/ config*: pick a run date, the models to run, a dry run (rank and check
without publishing) or a full refresh (recompute the daily facts of the whole look-back window).
Spark steps are submitted through the `spark_default` connection: `local[*]` or a cluster, by configuration.
The steps and their gates are those of `offerrank.nightly` (the same chain `offerrank run` runs in one session).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, chain, task

from offerrank import orchestration

RANKINGS = Asset("offerrank://offer_rankings")
RUN_DATE = "{{ params.run_date or ds }}"

with DAG(
    dag_id="offer_ranking",
    description="Nightly: ingest and validate events, aggregate conversion rates, rank offers, publish",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["offerrank", "ranking", "spark"],
    default_args={
        "owner": "offerrank",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
    user_defined_macros={"delta_jars": orchestration.delta_jars},
    params={
        "run_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Run date",
            pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
            description="The events' UTC date to rank from (YYYY-MM-DD). Empty: the data interval's date.",
        ),
        "models": Param(
            [],
            type="array",
            items={"type": "string"},
            title="AI models",
            description="Names of the AI models to run. Empty: all active models.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Validate and rank, but publish nothing: channels keep the current ranking.",
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Recompute the daily facts of the whole look-back window, not just the last days.",
        ),
    },
) as dag:
    spark_job = {"conn_id": "spark_default", "jars": "{{ delta_jars() }}", "verbose": False}

    @task.sensor(poke_interval=120, timeout=6 * 3600, mode="reschedule", soft_fail=False)
    def wait_for_events(params=None, ds=None) -> bool:
        """True once the day's landing folder has event files."""
        return orchestration.events_landed(orchestration.run_date_of(params["run_date"], ds))

    ingest = SparkSubmitOperator(
        task_id="ingest",
        application=orchestration.job("ingest"),
        name="offerrank-ingest",
        application_args=["--date", RUN_DATE, "--run-id", "{{ run_id }}", "--nightly"],
        **spark_job,
    )

    @task(retries=0)
    def validate(params=None, ds=None) -> dict:
        """Stop the run, with the reason, when the day failed validation."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return orchestration.validation_outcome(orchestration.run_date_of(params["run_date"], ds))
        except orchestration.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    profiles = SparkSubmitOperator(
        task_id="profiles",
        application=orchestration.job("profiles"),
        name="offerrank-profiles",
        application_args=["--date", RUN_DATE, "--keep-going"],
        **spark_job,
    )

    aggregate = SparkSubmitOperator(
        task_id="aggregate",
        application=orchestration.job("aggregate"),
        name="offerrank-aggregate",
        application_args=["--date", RUN_DATE, "--full-refresh", "{{ params.full_refresh }}"],
        **spark_job,
    )

    @task(retries=0)
    def ranking_units(params=None, ds=None, run_id=None) -> list[list[str]]:
        """One spark-submit argument list per ranking method to run."""
        from airflow.sdk.exceptions import AirflowFailException

        run_date = orchestration.run_date_of(params["run_date"], ds).isoformat()
        try:
            units = orchestration.ranking_units(params["models"])
        except orchestration.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None
        return [["--date", run_date, "--run-id", run_id, "--unit", unit] for unit in units]

    units = ranking_units()
    rank = SparkSubmitOperator.partial(
        task_id="rank",
        application=orchestration.job("rank"),
        name="offerrank-rank",
        map_index_template="{{ task.application_args[-1] }}",
        **spark_job,
    ).expand(application_args=units)

    publish = SparkSubmitOperator(
        task_id="publish",
        application=orchestration.job("publish"),
        name="offerrank-publish",
        outlets=[RANKINGS],
        application_args=["--date", RUN_DATE, "--run-id", "{{ run_id }}", "--dry-run", "{{ params.dry_run }}"],
        **spark_job,
    )

    @task
    def summary(params=None, ds=None, run_id=None) -> str:
        """Log what the run published and the top offers of each placement."""
        text = orchestration.run_summary(orchestration.run_date_of(params["run_date"], ds), run_id)
        print(text)
        return text

    steps = {
        "ingest": [ingest],
        "validate": [validate()],
        "profiles": [profiles],
        "aggregate": [aggregate],
        "rank": [units, rank],
        "publish": [publish],
    }
    chain(wait_for_events(), *[task for step in orchestration.STEPS for task in steps[step]], summary())
