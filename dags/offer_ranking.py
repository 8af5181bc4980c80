"""
### offer_ranking — the nightly ranking run

Every night at 02:00 UTC, for the previous day (the data interval), offerrank:

1. **waits**, per event dataset of the catalog (mapped), for the day's event files in its landing folder (reschedule
   mode; after 6 hours it gives up on that dataset, which ingest then records as not landed);
2. **ingests** each dataset on its own with Spark into Delta (`events_raw`, `interactions`, `quarantine`,
   `dq_results`, each row with its dataset), one mapped task per dataset;
3. **validates**: stops the run here, with the reasons in the log, when no dataset passed Great Expectations
   (recorded as a refused publish in `ranking_runs`, as `offerrank run` does); otherwise the ranking methods whose
   AI model learns from a dataset that did not pass are held back, and their placements keep their last good lists;
4. loads the **profiles** snapshot the day uses (segment memberships and the contextual models' profile
   attributes, validated; a rejected snapshot is logged and the run goes on with the last good one);
5. **aggregates** daily offer facts (all traffic and per segment) and every active model's conversion rates, and
   trains the contextual models due that night (a weekly one on Mondays; the others keep their last training);
6. **ranks**, one task per ranking method in use (each AI model, each formula, priority), in memory;
7. **publishes** all rankings in one Delta commit (Asset `offerrank://offer_rankings`), behind the publish gate;
   a refusal fails the task with its reason, and channels keep the last good ranking;
8. **reports** on every active AI model (tables `model_report_daily`, `model_report`, `model_report_offers` and an
   HTML page per model, Asset `offerrank://model_reports`): its lift over random serving, per offer and segment;
   it runs after publish whatever its outcome (the day's facts are what it reads), so a report failure never
   blocks a publish;
9. writes a short **summary**, with a link to each model's report page.

Trigger it by hand with *Trigger DAG w/ config*: pick a run date, the models to run, a dry run (rank and check
without publishing) or a full refresh (recompute the daily facts of the whole look-back window). A run date that is
not over yet in UTC (today) is refused, the run failing at its first task: its frequency-cap counts would forget
what the lookups serve for the rest of the day; `force` runs it anyway.
Spark steps (ingest, profiles, aggregate) run their job in the task on the Spark Connect server of
`OFFERRANK_SPARK_REMOTE` (`local`: one this machine starts on first use and keeps; it runs on `OFFERRANK_SPARK_MASTER`,
`local[*]` or a cluster), so no step starts a JVM; ranking and publishing handle a few rows per offer and run in the
task, without Spark.
The steps and their gates are those of `offerrank.chain.nightly` (the same chain `offerrank run` runs in one session).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, chain, task, task_group

from offerrank.chain import tasks

log = logging.getLogger(__name__)

RANKINGS = Asset("offerrank://offer_rankings")
REPORTS = Asset("offerrank://model_reports")
WAIT_FOR_EVENTS = timedelta(hours=6)


def run_date_of(params: dict, ds: str) -> date:
    """The run's date (the `run_date` param, else the data interval's): the task reads the clock, and a date that
    is not over yet in UTC is refused unless the run is forced (its cap counts would reset every frequency cap)."""
    return tasks.run_date_of(params["run_date"], ds, today=datetime.now(UTC).date(), force=params.get("force", False))


with DAG(
    dag_id="offer_ranking",
    description="Nightly: ingest and validate events, aggregate conversion rates, rank offers, publish",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Runs do not wait behind each other: a run waiting for its events holds no worker slot (reschedule mode), and
    # what must not overlap is serialized per task below (one Spark step and one publish at a time).
    max_active_runs=4,
    tags=["offerrank", "ranking", "spark"],
    default_args={
        "owner": "offerrank",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
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
            None,
            type=["null", "array"],
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
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Run a date that is not over yet in UTC (today or later): its frequency-cap counts then "
            "forget what the lookups serve for the rest of that day.",
        ),
    },
) as dag:
    # one Spark step at a time: steps of different dates write overlapping partitions (the aggregate's late-click
    # window) and two days' jobs would not fit a small machine's memory
    def spark_step(**options):
        return task(max_active_tis_per_dag=1, **options)

    @task(retries=0)
    def event_datasets(params=None, ds=None) -> list[str]:
        """The catalog's event datasets: one mapped wait and ingest each (a run date refused fails the run here)."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            run_date_of(params, ds)
            return tasks.event_datasets()
        except tasks.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    # a dataset that never lands is skipped (soft fail) and its ingest records it as not landed: the others go on
    @task.sensor(
        poke_interval=120,
        timeout=WAIT_FOR_EVENTS.total_seconds(),
        mode="reschedule",
        soft_fail=True,
        map_index_template="{{ dataset }}",
    )
    def wait_for_events(dataset: str, params=None, ds=None, ti=None) -> bool:
        """True once the dataset's landing folder of the day has event files; until then, says where and until
        when it waits."""
        from airflow.sdk import get_current_context

        get_current_context()["dataset"] = dataset
        run_date = run_date_of(params, ds)
        if tasks.events_landed(run_date, dataset):
            return True
        log.info("%s", tasks.waiting_message(run_date, dataset, ti.start_date, WAIT_FOR_EVENTS))
        return False

    # runs whatever became of the wait: a dataset that did not land is recorded as such
    @spark_step(map_index_template="{{ dataset }}", trigger_rule="all_done")
    def ingest(dataset: str, params=None, ds=None, run_id=None) -> None:
        """Ingest and validate the dataset's landing day (the Spark job `ingest`)."""
        from airflow.sdk import get_current_context

        get_current_context()["dataset"] = dataset
        run_date = run_date_of(params, ds)
        tasks.run_job("ingest", tasks.ingest_arguments(dataset, run_date, run_id))

    @task_group
    def dataset_ingest(dataset: str) -> None:
        """One event dataset's day: wait for its landing folder, then ingest it (each dataset on its own: one that
        is late holds up no other's ingest)."""
        wait_for_events(dataset) >> ingest(dataset)

    # after every dataset's ingest, whatever its outcome: the gate reads each dataset's validation
    @task(retries=0, trigger_rule="all_done")
    def validate(params=None, ds=None, run_id=None) -> dict:
        """Stop the run, with the reasons, when no dataset passed validation; say which models are held back."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return tasks.validation_outcome(run_date_of(params, ds), run_id=run_id, refused_at=datetime.now(UTC))
        except tasks.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    @spark_step()
    def profiles(params=None, ds=None) -> None:
        """Validate and load the profile snapshot of the run's date (the Spark job `profiles`)."""
        run_date = run_date_of(params, ds)
        tasks.run_job("profiles", ["--date", run_date.isoformat(), "--keep-going"])

    @spark_step()
    def aggregate(params=None, ds=None) -> None:
        """Daily offer facts and every active model's rates (the Spark job `aggregate`)."""
        run_date = run_date_of(params, ds)
        arguments = ["--date", run_date.isoformat(), "--full-refresh", str(params["full_refresh"])]
        tasks.run_job("aggregate", arguments)

    @task(retries=0)
    def ranking_units(params=None) -> list[str]:
        """The ranking methods to run: one mapped rank task each (one held back by its dataset says so)."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return tasks.ranking_units(params["models"] or [])
        except tasks.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    @task(map_index_template="{{ ranking_unit }}")
    def rank(unit: str, params=None, ds=None, run_id=None) -> str:
        """Stage one ranking method's lists (in memory, no Spark: a ranking is a few rows per offer); a method that
        cannot rank fails its own task only."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        get_current_context()["ranking_unit"] = unit
        try:
            return tasks.stage_ranking(run_date_of(params, ds), run_id, unit, datetime.now(UTC))
        except tasks.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    # publishes when at least one method ranked: the placements of a failed method keep their last good lists
    @task(retries=0, outlets=[RANKINGS], max_active_tis_per_dag=1, trigger_rule="all_done_min_one_success")
    def publish(params=None, ds=None, run_id=None) -> str:
        """Publish the run's staged lists in one commit behind the gate; a refusal fails the task with its reason."""
        from airflow.sdk.exceptions import AirflowFailException

        run_date = run_date_of(params, ds)
        try:
            return tasks.publish_ranking(run_date, run_id, params["dry_run"], datetime.now(UTC))
        except tasks.RunRefused as refused:
            raise AirflowFailException(str(refused)) from None

    # after publish, published or not; a day that failed validation has no report (the task is skipped, saying why)
    @task(outlets=[REPORTS], trigger_rule="all_done")
    def report(params=None, ds=None) -> str:
        """Write the model reports of the run's date: the report tables and each active model's page."""
        from airflow.sdk.exceptions import AirflowSkipException

        try:
            text = tasks.write_reports(run_date_of(params, ds))
        except tasks.RunRefused as refused:
            raise AirflowSkipException(f"no model report: {refused}") from None
        log.info("%s", text)
        return text

    @task
    def summary(params=None, ds=None, run_id=None) -> str:
        """Log what the run published and the top offers of each placement."""
        text = tasks.run_summary(run_date_of(params, ds), run_id)
        log.info("%s", text)
        return text

    ingests = dataset_ingest.expand(dataset=event_datasets())
    steps = {
        "ingest": [ingests],
        "validate": [validate()],
        "profiles": [profiles()],
        "aggregate": [aggregate()],
        "rank": [units := ranking_units(), rank.expand(unit=units)],
        "publish": [published := publish()],
    }
    chained = [task for step in tasks.STEPS if step != tasks.AFTER_PUBLISH for task in steps[step]]
    chain(*chained, summary())
    published >> report()  # its own leaf: a report failure fails the run, never the publish before it
