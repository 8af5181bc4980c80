"""The validation gate between ingest and publish: a run date's `dq_results` row of each event dataset says
whether the day may publish (at least one dataset passed) and which ranking methods are held back (their AI model
learns from a dataset that did not pass). Reads `dq_results` with deltalake (no JVM); the chain, the rank and publish
jobs and the DAG's tasks apply the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from offerrank.engines.delta_rs import table_rows
from offerrank.tables import DQ_RESULTS

if TYPE_CHECKING:
    from offerrank.catalog import Catalog
    from offerrank.settings import Settings


@dataclass(frozen=True)
class DayValidation:
    """A run date's validation: the `dq_results` row of each of the catalog's event datasets (None: it has none)."""

    run_date: date
    rows: dict[str, dict | None]

    def refusals(self) -> dict[str, str]:
        """Why each dataset that did not pass did not."""
        return {
            name: "no validation results for the date" if row is None else row["failure_message"]
            for name, row in self.rows.items()
            if row is None or not row["success"]
        }

    def refusal(self) -> str | None:
        """Why the run must stop before publishing: no dataset passed (None: at least one did)."""
        if not self.rows:
            return f"validation of {self.run_date} did not pass (the catalog names no event dataset)"
        refusals = self.refusals()
        if len(refusals) < len(self.rows):
            return None
        reasons = "; ".join(f"dataset {name}: {why}" for name, why in sorted(refusals.items()))
        return f"validation of {self.run_date} did not pass ({reasons})"

    @property
    def run_id(self) -> str | None:
        """The run that validated the date (of a dataset that passed, else of any)."""
        rows = sorted((row for row in self.rows.values() if row), key=lambda row: not row["success"])
        return rows[0]["run_id"] if rows else None

    def held_back(self, catalog: Catalog) -> dict[str, str]:
        """The ranking methods in use whose AI model learns from a dataset that did not pass, and why: their
        placements keep their last good lists."""
        refusals, held = self.refusals(), {}
        for method in catalog.ranking_methods():
            model = method.model(catalog)
            failed = [name for name in (model.datasets if model else ()) if name in refusals]
            if failed:
                why = "; ".join(f"{name}: {refusals[name]}" for name in failed)
                held[method.unit] = f"its model's dataset did not pass validation of {self.run_date} ({why})"
        return held


def day_validation(settings: Settings, catalog: Catalog, run_date: date) -> DayValidation:
    """The date's `dq_results` rows of the catalog's datasets (JVM-free)."""
    rows = {row.get("dataset"): row for row in table_rows(settings, DQ_RESULTS, {"run_date": run_date})}
    return DayValidation(run_date, {dataset.name: rows.get(dataset.name) for dataset in catalog.datasets})
