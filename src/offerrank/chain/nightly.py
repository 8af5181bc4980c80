"""The nightly chain, defined once: its steps in order, the run-date rule and the gates between steps.

    ingest -> validate -> profiles -> aggregate -> rank (one unit per ranking method) -> publish -> report

`offerrank run --date D` runs the chain in one SparkSession (`run_day`); the Airflow DAG `offer_ranking` has one
task per step of `STEPS` (ingest and the wait for its landing folder mapped per event dataset, plus a summary),
each calling the same job `run`. Both paths apply the same gates and so write the same `ranking_runs` history
(`DayValidation`): each event dataset is validated on its own; a day on which no dataset passed is recorded as a
refused publish and stops the chain before profiles; otherwise the ranking methods whose AI model learns from a
dataset that did not pass are held back (their placements keep their last good lists, and the publish says why);
a publish the gate refuses is recorded by the publish job. The model reports follow publish whatever its outcome
(they read the day's facts, not the ranking), and a report failure never undoes a publish. Importing this module
is cheap (no pyspark): the DAG file uses it at parse time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from offerrank.errors import Refused
from offerrank.events.validation_gate import DayValidation, day_validation
from offerrank.tables import manual_run_id

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from offerrank.settings import Settings

log = logging.getLogger(__name__)


STEPS = ("ingest", "validate", "profiles", "aggregate", "rank", "publish", "report")
AFTER_PUBLISH = "report"  # the step that runs after publish even when the gate refused it


class RunRefused(Refused, ValueError):
    """A run that must stop with a message (bad parameters, a day that failed validation)."""


def run_date_of(param: str | None, interval_start: str, *, today: date, force: bool = False) -> date:
    """The run's date: the `run_date` param when given (YYYY-MM-DD), else the data interval's start date; refused
    when it is not over yet (see `check_run_date`; `today`: the UTC date, read by the task)."""
    text = param or interval_start
    try:
        run_date = date.fromisoformat(text)
    except ValueError:
        raise RunRefused(f"run_date must be a date like 2026-11-03, not {text!r}") from None
    check_run_date(run_date, today, force)
    return run_date


def check_run_date(run_date: date, today: date, force: bool = False) -> None:
    """RunRefused for a run date on or after `today` (UTC, read by the entry point: the CLI or the task), unless
    `force`: its day is not over, so the frequency-cap counts it publishes would be dated that day, and the lookup,
    which adds what it served after the counts' date, would forget what it served on it: every cap would reset."""
    if run_date >= today and not force:
        raise RunRefused(
            f"run date {run_date} is not over yet (today is {today}, UTC): its frequency-cap counts would be dated "
            f"{run_date} and the lookup would forget what it served that day, resetting every cap; run it once the "
            "day is over, or force it (`--force`, the DAG's `force`)"
        )


def record_validation_refusal(
    settings: Settings, validation: DayValidation, run_id: str, refused_at: datetime
) -> str | None:
    """After the chain's ingest step: a day on which no dataset passed is a refused publish in `ranking_runs`,
    stamped `refused_at` (now, read by the entry point); returns the refusal (None: the chain goes on)."""
    from offerrank.jobs.publish import Publisher

    refusal = validation.refusal()
    if refusal is not None:
        Publisher(settings).record(
            run_date=validation.run_date,
            run_id=run_id,
            status="refused",
            reason=refusal,
            validation_run_id=validation.run_id,
            placements=0,
            offers=0,
            published_at=refused_at,
        )
    return refusal


@dataclass
class RunReport:
    run_date: date
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    success: bool = True

    def step(self, name: str, action: Callable[[], str], echo: Callable[[str], None]) -> None:
        echo(f"[{self.run_date}] {name} ...")
        started = time.perf_counter()
        outcome = action()
        elapsed = time.perf_counter() - started
        self.steps.append((name, elapsed, outcome))
        echo(f"[{self.run_date}] {name} done in {elapsed:.1f}s: {outcome}")

    def summary(self) -> str:
        lines = [f"run {self.run_date}: {'succeeded' if self.success else 'FAILED'}"]
        indent = "\n" + " " * 21  # an outcome of several lines (one per model report) stays in its column
        lines += [
            f"  {name:<10} {elapsed:6.1f}s  {outcome.replace(chr(10), indent)}" for name, elapsed, outcome in self.steps
        ]
        return "\n".join(lines)


def run_day(
    spark: SparkSession,
    settings: Settings,
    run_date: date,
    run_id: str | None = None,
    *,
    clock: Callable[[], datetime],
    echo: Callable[[str], None] = log.info,
) -> RunReport:
    """Run every step of the chain for `run_date` in this session (the run id, when none is given, is
    `manual_run_id`); stops at a failed gate. `clock`: the entry point's wall clock, read when a validation refusal
    is recorded, when the lists are staged and when they are published (hours after the run started, on a big day).
    Each step's start and outcome go to `echo` (default: this module's log)."""
    from offerrank.catalog.registry import Registry
    from offerrank.engines.delta_rs import one_line
    from offerrank.jobs import aggregate, ingest, profiles, publish, rank
    from offerrank.jobs import report as model_reports

    run_id = run_id or manual_run_id(run_date)
    report = RunReport(run_date)

    def ingest_step() -> str:
        return ingest.run(spark, settings, run_date, run_id, list(catalog.datasets)).summary()

    def validate_step() -> str:
        validation = day_validation(settings, catalog, run_date)
        refusal = record_validation_refusal(settings, validation, run_id, clock())
        if refusal is not None:
            report.success = False
            return f"stopped: {refusal}; channels keep the last good ranking"
        held = validation.held_back(catalog)
        return "passed" + "".join(f"; {unit} held back: {why}" for unit, why in held.items())

    def profiles_step() -> str:
        try:
            return profiles.run(spark, settings, run_date, catalog.contextual_attributes()).summary()
        except profiles.SnapshotRejected as rejected:  # the run goes on with the last good snapshot
            return f"REJECTED: {rejected}"

    def rank_step() -> str:  # a method that fails or is held back keeps its last good lists
        return rank.run(settings, catalog, run_date, run_id, clock())

    def publish_step() -> str:
        try:
            return publish.run(settings, catalog, run_date, run_id, clock()).summary()
        except publish.PublishRefused as refused:
            report.success = False
            return f"refused: {refused}; channels keep the last good ranking"

    def report_step() -> str:
        try:
            return model_reports.run(settings, catalog, run_date)
        except Exception as failed:  # the ranking stays published; the run says the reports failed
            report.success = False
            return f"FAILED: {one_line(failed)}"

    catalog = Registry(settings).catalog()
    actions = {
        "ingest": ingest_step,
        "validate": validate_step,
        "profiles": profiles_step,
        "aggregate": lambda: str(aggregate.run(spark, settings, catalog, run_date)),
        "rank": rank_step,
        "publish": publish_step,
        "report": report_step,
    }
    for name in STEPS:
        if not report.success and name != AFTER_PUBLISH:
            break
        report.step(name, actions[name], echo)
    return report
