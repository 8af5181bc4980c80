"""The dataset-level checks of an event landing day: the record suite's lateness window, the one summary row the
dataset suite validates (volume, quarantine share, conversions over impressions, damaged files), the sentence of
its failures, and the day's outcome (`IngestResult`: its fields but the file lists are its `dq_results` row, see
`offerrank.tables.DQ_RESULTS`), with the warning of event ids another dataset accepted for the same date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from offerrank.engines.quality import ExpectationOutcome
from offerrank.settings import Settings

# A day whose accepted event ids are at least this share another dataset's of the same date is reported: event ids
# are unique, so one landing root configured twice (or one export copied) is the likely cause.
SHARED_IDS_WARNING_SHARE = 0.01
RECORD_SUITE = "events_records"  # the record-level suite: each failing record is quarantined with its code
DATASET_SUITE = "events_dataset"  # the dataset-level suite, on the day's summary row


@dataclass
class IngestResult:
    dataset: str
    run_date: date
    run_id: str
    records_read: int
    blank_lines: int
    events_accepted: int
    exact_duplicates: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    interactions_written: int
    success: bool
    failure_message: str | None
    data_docs: str
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # what the landing folder held besides data files, and why
    damaged_files: list[str] = field(default_factory=list)  # data files quarantined whole, and why
    shared_ids: list[str] = field(default_factory=list)  # warnings: event ids other datasets accepted for the date

    def summary(self) -> str:
        reasons = ", ".join(f"{code} {count:,}" for code, count in sorted(self.quarantined_by_reason.items())) or "none"
        verdict = "passed" if self.success else f"FAILED: {self.failure_message}"
        skipped = f"; skipped files: {', '.join(self.skipped_files)}" if self.skipped_files else ""
        damaged = f"; damaged files, quarantined whole: {', '.join(self.damaged_files)}" if self.damaged_files else ""
        shared = "".join(f"; WARNING: {warning}" for warning in self.shared_ids)
        return (
            f"ingest {self.dataset} {self.run_date}: {self.records_read:,} records read = "
            f"{self.events_accepted:,} accepted + {self.exact_duplicates:,} exact duplicates + "
            f"{self.quarantined:,} quarantined ({reasons}); "
            f"{self.interactions_written:,} interactions; validation {verdict}; data docs {self.data_docs}"
            f"{skipped}{damaged}{shared}"
        )


@dataclass
class IngestRun:
    """The ingest of one date's event datasets, one result each."""

    results: list[IngestResult]

    @property
    def success(self) -> bool:
        """Whether every dataset passed validation."""
        return all(result.success for result in self.results)

    def summary(self) -> str:
        return "\n".join(result.summary() for result in self.results)


def day_summary(
    counts: dict[str, int], trailing_mean: float | None, offers_over_limit: int, damaged_file_share: float
) -> dict[str, int | float]:
    """The one row the dataset-level suite validates (`volume_ratio` NaN: no trailing days to compare with)."""
    accounted = counts["events_accepted"] + counts["exact_duplicates"] + counts["quarantined"]
    row = {
        "records_read": counts["records_read"],
        "records_accounted": accounted,
        "events_accepted": counts["events_accepted"],
        "quarantine_share": counts["quarantined"] / counts["records_read"] if counts["records_read"] else 0.0,
        "volume_ratio": counts["events_accepted"] / trailing_mean if trailing_mean else float("nan"),
        "offers_over_conversion_limit": offers_over_limit,
        "damaged_file_share": damaged_file_share,
    }
    return row


def trailing_mean(history: pd.DataFrame | None, dataset: str) -> float | None:
    """The mean of the events the dataset accepted on the passing days of `history` (`dq_results` rows of the
    trailing days; None: no such day)."""
    if history is None:
        return None
    passed = history[history["success"].eq(True) & (history["dataset"] == dataset)]
    return float(passed["events_accepted"].mean()) if len(passed) else None


def dataset_parameters(settings: Settings) -> dict[str, int | float]:
    """The dataset-level suite's parameters (its thresholds, from the settings)."""
    return {
        "min_events": settings.min_events_per_day,
        "max_quarantine_share": settings.max_quarantine_share,
        "max_damaged_file_share": settings.max_damaged_file_share,
        "min_volume_ratio": settings.min_volume_ratio,
        "max_volume_ratio": settings.max_volume_ratio,
        "conversion_tolerance": settings.conversion_tolerance,
    }


def shared_event_ids(accepted: DataFrame, others: DataFrame) -> DataFrame:
    """Per other dataset, how many of the day's distinct accepted event ids it accepted too (`others`: `dataset`,
    `event_id` of the other datasets' interactions of the date); datasets sharing none are left out."""
    day_ids = accepted.select("event_id").distinct()
    return others.select("dataset", "event_id").distinct().join(day_ids, "event_id").groupBy("dataset").count()


def shared_ids_warnings(shared: dict[str, int], events_accepted: int, run_date: date) -> list[str]:
    """The warnings of the datasets that share at least `SHARED_IDS_WARNING_SHARE` of the day's accepted events."""
    return [
        f"{count:,} of the {events_accepted:,} accepted events were also accepted by dataset {other!r} for "
        f"{run_date}: the same events counted twice? (one landing root configured twice, or a copied export)"
        for other, count in sorted(shared.items())
        if events_accepted and count / events_accepted >= SHARED_IDS_WARNING_SHARE
    ]


def interactions_per_offer(interactions: DataFrame) -> DataFrame:
    """Per offer: its interaction rows, impressions and distinct converted (proposition, offer) pairs."""
    return interactions.groupBy("offer_id").agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("interaction") == "impression", 1).otherwise(0)).alias("impressions"),
        # within an offer's rows, its distinct converted pairs are its distinct converted propositions
        F.countDistinct(F.when(F.col("interaction") == "conversion", F.col("proposition_id"))).alias("conversions"),
    )


def offers_over_conversion_limit(per_offer: pd.DataFrame, tolerance: float, minimum: int) -> int:
    """How many offers' conversions on the day exceed their impressions by more than `tolerance`."""
    over = (per_offer["conversions"] >= minimum) & (
        per_offer["conversions"] > per_offer["impressions"] * (1 + tolerance)
    )
    return int(over.sum())


def lateness_window(settings: Settings, run_date: date) -> dict[str, datetime]:
    """The earliest and latest event time a landing date accepts."""
    start = datetime.combine(run_date, time.min, tzinfo=UTC)
    return {
        "earliest_event_ts": start - timedelta(days=settings.lateness_days),
        "latest_event_ts": start + timedelta(days=1, minutes=settings.future_tolerance_minutes),
    }


def record_parameters(settings: Settings, run_date: date) -> dict[str, datetime | float]:
    """The record-level suite's parameters: the lateness window of a landing date, the propensity floor."""
    return {**lateness_window(settings, run_date), "min_propensity": settings.min_propensity}


def failure_message(suite: dict, outcomes: list[ExpectationOutcome], summary: dict, parameters: dict) -> str | None:
    """The dataset suite's failure sentences of the failed `outcomes`, joined (None: all passed)."""
    failed = [
        expectation["meta"]["failure"].format(**summary, **parameters)
        for expectation, outcome in zip(suite["expectations"], outcomes)
        if not outcome.success
    ]
    return "; ".join(failed) or None
