"""The dataset layout check of `apply` and `catalog validate`: a dataset's newest event file must have the
proposition-interactions layout. Reads a few lines (or the Parquet schema) of the landing root's newest file. A
dataset with no event file yet is accepted with a warning (a new brand configures its models before its first
traffic); ingest checks each day's files as they land.
"""

from __future__ import annotations

import gzip
import io
import json

from offerrank.catalog.entities import CatalogError, Dataset
from offerrank.engines.landing import date_folders, open_file, scan


def check_dataset_layout(dataset: Dataset, sample_lines: int = 20) -> str | None:
    """Refuse a dataset whose actual files lack the proposition-interactions layout; the warning when it has no
    event file yet (None: checked)."""
    files = sorted(
        name for folder in date_folders(dataset.path) for names in scan(folder).files.values() for name in names
    )
    if not files:
        return (
            f"datasets[{dataset.name}]: no event files under {dataset.path} yet (expected <date>/*.jsonl or "
            "*.parquet): accepted; ingest checks the layout of each day's files as they land"
        )
    newest = files[-1]
    if newest.endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_file(newest) as handle:
            schema = pq.read_schema(handle)
        names = set(schema.names)
        decisioning = schema.field("_experience").type if "_experience" in names else None
        has_propositions = (
            decisioning is not None and "decisioning" in str(decisioning) and "propositions" in str(decisioning)
        )
    else:
        names, has_propositions = set(), False
        with open_file(newest) as raw:
            binary = gzip.open(raw) if newest.endswith(".gz") else raw
            for _, line in zip(range(sample_lines), io.TextIOWrapper(binary, encoding="utf-8", errors="replace")):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    names |= set(record)
                    has_propositions |= "propositions" in (record.get("_experience") or {}).get("decisioning", {})
    missing = [f for f in ("_id", "timestamp", "eventType") if f not in names]
    if missing or not has_propositions:
        lacking = ", ".join(missing + ([] if has_propositions else ["_experience.decisioning.propositions"]))
        raise CatalogError(
            f"datasets[{dataset.name}]: {newest} does not have the proposition-interactions layout (missing {lacking})"
        )
    return None
