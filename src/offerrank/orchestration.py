"""What the Airflow DAGs call at run time: JVM-free checks and reads (deltalake), and the Spark jobs' paths.

Importing this module is cheap (no pyspark, no Airflow): the DAG files import it at parse time.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from offerrank.settings import Settings, load_settings
from offerrank.warehouse import catalog_from_rows, table_rows, top_offer_lines

JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"


class RunRefused(ValueError):
    """A run that must stop with a message (bad parameters, a day that failed validation)."""


def job(name: str) -> str:
    """Path of a Spark job file, as spark-submit takes it."""
    return str(JOBS_DIR / f"{name}.py")


def delta_jars() -> str:
    """Comma-separated cached Delta jars for spark-submit --jars (rendered when a task runs, not at parse time)."""
    from offerrank.spark import cached_jars

    return ",".join(str(jar) for jar in cached_jars(load_settings()))


def run_date_of(param: str | None, interval_start: str) -> date:
    """The run's date: the `run_date` param when given (YYYY-MM-DD), else the data interval's start date."""
    text = param or interval_start
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RunRefused(f"run_date must be a date like 2026-11-03, not {text!r}") from None


def events_landed(run_date: date, settings: Settings | None = None) -> bool:
    """True once the date's landing folder holds at least one event file."""
    folder = Path((settings or load_settings()).events_root) / run_date.isoformat()
    return folder.is_dir() and any(p.suffix in (".jsonl", ".json", ".parquet") for p in folder.iterdir())


def validation_outcome(run_date: date, settings: Settings | None = None) -> dict:
    """The date's `dq_results` row; RunRefused with the stored reason when it failed or is missing."""
    rows = [r for r in table_rows(settings or load_settings(), "dq_results") if r["run_date"] == run_date]
    if not rows:
        raise RunRefused(f"no validation results for {run_date}: the ingest step did not complete")
    row = rows[0]
    if not row["success"]:
        raise RunRefused(f"validation of {run_date} failed: {row['failure_message']} (data docs: {row['data_docs']})")
    return {k: row[k] for k in ("records_read", "events_accepted", "exact_duplicates", "quarantined", "interactions_written")}


def ranking_units(models: list[str] | None = None, settings: Settings | None = None) -> list[str]:
    """The ranking methods to run (one mapped task each), limited to `models` when the trigger names some."""
    from offerrank.jobs.rank import ranking_units as units_of

    settings = settings or load_settings()
    units = units_of(catalog_from_rows(table_rows(settings, "registry")))
    if not units:
        raise RunRefused("the registry has no active decision to rank: run `offerrank apply -f catalog.yaml` first")
    if models:
        known = {u.partition(":")[2] for u in units if u.startswith("ai_model:")}
        unknown = sorted(set(models) - known)
        if unknown:
            raise RunRefused(f"models {', '.join(unknown)} are not active AI models assigned to a decision (known: {', '.join(sorted(known))})")
        units = [u for u in units if not u.startswith("ai_model:") or u.partition(":")[2] in models]
    return units


def run_summary(run_date: date, run_id: str, settings: Settings | None = None, top: int = 3) -> str:
    """A few lines on what the run published (or why not) and the top offers of each placement."""
    settings = settings or load_settings()
    attempts = [r for r in table_rows(settings, "ranking_runs") if r["run_id"] == run_id and r["run_date"] == run_date]
    lines = [f"run {run_id} for {run_date}:"]
    for attempt in attempts:
        lines.append(f"  {attempt['status']}: ranking version {attempt['ranking_version']}, {attempt['placements']} placements, "
                     f"{attempt['offers']} offers {attempt['reason'] or ''}".rstrip())
    return "\n".join(lines + top_offer_lines(settings, top))
