"""What the Airflow DAGs call at run time: JVM-free checks and reads (deltalake), and the Spark jobs' files.

Importing this module is cheap (no pyspark, no Airflow): the DAG files import it at parse time. The chain's rules
(run date, validation gate) are those of `offerrank.chain.nightly`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from offerrank.catalog.stored import registry_catalog
from offerrank.chain.nightly import (
    AFTER_PUBLISH,
    STEPS,
    RunRefused,
    record_validation_refusal,
    run_date_of,
)
from offerrank.engines.delta_rs import table_rows
from offerrank.errors import OfferrankError
from offerrank.events.validation_gate import day_validation
from offerrank.serving.published import top_offer_lines
from offerrank.settings import Settings, load_settings
from offerrank.tables import RANKING_RUNS

log = logging.getLogger(__name__)

__all__ = [
    "AFTER_PUBLISH",
    "STEPS",
    "RunRefused",
    "event_datasets",
    "events_landed",
    "ingest_arguments",
    "JobFailed",
    "publish_ranking",
    "ranking_units",
    "run_date_of",
    "run_summary",
    "run_job",
    "stage_ranking",
    "validation_outcome",
    "waiting_message",
    "write_reports",
]


class JobFailed(OfferrankError, RuntimeError):
    """A Spark job exited non-zero (what it printed says why)."""


def run_job(name: str, arguments: list[str]) -> None:
    """Run Spark job `name` in this task, with the arguments its spark-submit entry point takes, on the Spark
    Connect server of `OFFERRANK_SPARK_REMOTE` (else on a Spark of its own, as spark-submit would start)."""
    from importlib import import_module

    from offerrank.engines.spark import release_connect_session

    log.info("running the %s job: %s", name, " ".join(arguments))
    try:
        code = import_module(f"offerrank.jobs.{name}").main(arguments)
    finally:
        release_connect_session()
    if code:
        raise JobFailed(f"the {name} job exited with {code}")


def event_datasets(settings: Settings | None = None) -> list[str]:
    """The names of the registry catalog's event datasets: one mapped wait and ingest each."""
    names = [dataset.name for dataset in registry_catalog(settings or load_settings()).datasets]
    if not names:
        raise RunRefused("the registry's catalog has no event dataset: run `offerrank apply -f catalog.yaml` first")
    return names


def ingest_arguments(dataset: str, run_date: date, run_id: str) -> list[str]:
    """The arguments of a dataset's ingest job (one mapped task per dataset)."""
    return ["--date", run_date.isoformat(), "--run-id", run_id, "--nightly", "--dataset", dataset]


def _landing_folder(run_date: date, dataset: str, settings: Settings) -> str:
    from offerrank.engines.landing import landing_folder

    return landing_folder(registry_catalog(settings).dataset(dataset, "the registry's catalog").path, run_date)


def events_landed(run_date: date, dataset: str, settings: Settings | None = None) -> bool:
    """True once the dataset's date folder holds an event file, or its completeness marker when one is set."""
    from offerrank.engines.landing import landed

    settings = settings or load_settings()
    return landed(_landing_folder(run_date, dataset, settings), settings.landing_marker)


def waiting_message(run_date: date, dataset: str, since: datetime | None, timeout: timedelta) -> str:
    """What a run waiting for a dataset's events tells the UI's log: the folder, since when and until when."""
    settings = load_settings()
    marker = settings.landing_marker
    waiting = f"waiting for event files of dataset {dataset} in {_landing_folder(run_date, dataset, settings)}" + (
        f" and its {marker} marker" if marker else ""
    )
    if since is None:
        return waiting
    until = since + timeout
    return (
        f"{waiting} since {since:%Y-%m-%d %H:%M} UTC; until {until:%Y-%m-%d %H:%M} UTC, then the dataset is "
        "recorded as not landed and the models that learn from it keep their last good lists (other datasets and "
        "runs go on meanwhile)"
    )


def validation_outcome(
    run_date: date,
    *,
    run_id: str | None = None,
    refused_at: datetime | None = None,
    settings: Settings | None = None,
) -> dict:
    """Each event dataset's outcome of the date (its counts, or why it did not pass); when no dataset passed,
    RunRefused with the reasons (recorded as run `run_id`'s refused publish at `refused_at`, now, when both are
    given: the nightly run's gate)."""
    settings = settings or load_settings()
    catalog = registry_catalog(settings)
    validation = day_validation(settings, catalog, run_date)
    if run_id is not None and refused_at is not None:
        refusal = record_validation_refusal(settings, validation, run_id, refused_at)
    else:
        refusal = validation.refusal()
    if refusal is not None:
        raise RunRefused(refusal)
    refusals = validation.refusals()
    counts = ("records_read", "events_accepted", "exact_duplicates", "quarantined", "interactions_written")
    outcome: dict[str, object] = {
        name: {key: row[key] for key in counts}
        for name, row in validation.rows.items()
        if row is not None and name not in refusals  # a dataset without a row is among the refusals
    }
    outcome |= {name: f"did not pass: {why}" for name, why in refusals.items()}
    outcome |= {f"held back: {unit}": why for unit, why in validation.held_back(catalog).items()}
    return outcome


def ranking_units(models: list[str] | None = None, settings: Settings | None = None) -> list[str]:
    """The ranking methods to run (one mapped task each), limited to `models` when the trigger names some."""
    catalog = registry_catalog(settings or load_settings())
    methods = catalog.ranking_methods()
    if not methods:
        raise RunRefused("the registry has no active decision to rank: run `offerrank apply -f catalog.yaml` first")
    if models:
        known = {model.name for method in methods if (model := method.model(catalog)) is not None}
        unknown = sorted(set(models) - known)
        if unknown:
            raise RunRefused(
                f"models {', '.join(unknown)} are not active AI models assigned to a decision "
                f"(known: {', '.join(sorted(known))})"
            )
        methods = [m for m in methods if (model := m.model(catalog)) is None or model.name in models]
    return [method.unit for method in methods]


def stage_ranking(run_date: date, run_id: str, unit: str, staged_at: datetime, settings: Settings | None = None) -> str:
    """Stage ranking method `unit`'s lists of the run, stamped `staged_at` (now, read by the task), or say it is held
    back (see `rank.stage_or_hold`); RunRefused when the method cannot rank. The placements of a method held back or
    refused keep their last good lists at publish."""
    from offerrank.jobs.rank import RankingFailed, held_back, stage_or_hold

    settings = settings or load_settings()
    catalog = registry_catalog(settings)
    try:
        held = held_back(settings, catalog, run_date)
        return stage_or_hold(settings, catalog, run_date, run_id, unit, held, staged_at)
    except RankingFailed as failed:
        raise RunRefused(f"{unit} failed: {failed}; its placements keep their last good lists") from None


def publish_ranking(
    run_date: date, run_id: str, dry_run: bool, published_at: datetime, settings: Settings | None = None
) -> str:
    """Publish the run's staged lists behind the gate, stamped `published_at` (now, read by the task); RunRefused
    with the gate's reason."""
    from offerrank.jobs.publish import PublishRefused, run

    settings = settings or load_settings()
    try:
        return run(settings, registry_catalog(settings), run_date, run_id, published_at, dry_run).summary()
    except PublishRefused as refused:
        raise RunRefused(f"ranking refused: {refused}; channels keep the last good ranking") from None


def write_reports(run_date: date, settings: Settings | None = None) -> str:
    """The model reports of a date that passed validation (tables and pages); RunRefused before then."""
    from offerrank.jobs.report import run

    settings = settings or load_settings()
    validation_outcome(run_date, settings=settings)
    return run(settings, registry_catalog(settings), run_date)


def report_lines(run_date: date, settings: Settings) -> list[str]:
    """Where the run's model report pages are (the `report` task writes them)."""
    from offerrank.jobs.report import page_path

    models = registry_catalog(settings).active_models()
    return [f"model report of {m.name}: {page_path(settings, m.name, run_date)}" for m in models]


def run_summary(run_date: date, run_id: str, settings: Settings | None = None, top: int = 3) -> str:
    """A few lines on what the run published (or why not) and the top offers of each placement."""
    settings = settings or load_settings()
    attempts = [r for r in table_rows(settings, RANKING_RUNS) if r["run_id"] == run_id and r["run_date"] == run_date]
    lines = [f"run {run_id} for {run_date}:"]
    for attempt in attempts:
        lines.append(
            f"  {attempt['status']}: ranking version {attempt['ranking_version']}, "
            f"{attempt['placements']} placements, {attempt['offers']} offers {attempt['reason'] or ''}".rstrip()
        )
    return "\n".join(lines + top_offer_lines(settings, top) + report_lines(run_date, settings))
