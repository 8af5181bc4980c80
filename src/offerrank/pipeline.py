"""The nightly chain for one run date: ingest -> validate -> profiles -> aggregate -> rank -> publish, with progress lines.

Used by `offerrank run`; Airflow runs the same steps as separate tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from pyspark.sql import SparkSession

from offerrank.settings import Settings


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
        lines += [f"  {name:<10} {elapsed:6.1f}s  {outcome}" for name, elapsed, outcome in self.steps]
        return "\n".join(lines)


def load_profiles(spark: SparkSession, settings: Settings, run_date: date) -> str:
    """The profiles step: a rejected snapshot is reported, and the run goes on with the last good one."""
    from offerrank.jobs.profiles import SnapshotRejected, run_profiles

    try:
        return run_profiles(spark, settings, run_date).summary()
    except SnapshotRejected as rejected:
        return f"REJECTED: {rejected}"


def run_day(spark: SparkSession, settings: Settings, run_date: date, run_id: str | None = None,
            published_at: datetime | None = None, echo: Callable[[str], None] = print) -> RunReport:
    """Run the whole chain for `run_date`; stops after a failed validation or a refused publish."""
    from offerrank.jobs.aggregate import run_aggregate
    from offerrank.jobs.ingest import run_ingest
    from offerrank.jobs.rank import PublishRefused, run_rank
    from offerrank.registry import Registry

    report = RunReport(run_date)
    ingested = {}

    def ingest() -> str:
        result = run_ingest(spark, settings, run_date, run_id)
        ingested["result"] = result
        return result.summary()

    report.step("ingest", ingest, echo)
    catalog = Registry(spark, settings).catalog()
    if ingested["result"].success:
        report.step("profiles", lambda: load_profiles(spark, settings, run_date), echo)
        report.step("aggregate", lambda: str(run_aggregate(spark, settings, catalog, run_date)), echo)

    def publish() -> str:
        try:
            return run_rank(spark, settings, catalog, run_date, run_id, published_at).summary()
        except PublishRefused as refused:
            report.success = False
            return f"refused: {refused}; channels keep the last good ranking"

    report.step("publish", publish, echo)
    report.success = report.success and ingested["result"].success
    return report
