"""The catalog the `registry` table holds, read with deltalake (no JVM): what the DAG's tasks, the lookup and the
CLI's read-only commands use. Reads `registry`; writes nothing.
"""

from __future__ import annotations

import json

from offerrank.catalog.model import KINDS, Catalog, build_catalog
from offerrank.engines.delta_rs import table_rows
from offerrank.settings import Settings
from offerrank.tables import REGISTRY


def catalog_from_rows(rows, source: str = "registry") -> Catalog:
    """The catalog held by rows of the `registry` table (`source` names it in errors)."""
    data: dict[str, list] = {kind: [] for kind in KINDS}
    for row in sorted(rows, key=lambda r: (r["kind"], r["id"])):
        data[row["kind"]].append(json.loads(row["spec"]))
    return build_catalog(data, source)


def registry_catalog(settings: Settings) -> Catalog:
    """The catalog the registry holds now, read without Spark."""
    return catalog_from_rows(table_rows(settings, REGISTRY))
