"""JVM-free reads of offerrank's Delta tables with the `deltalake` package (no Spark, no JVM).

Used where starting Spark would cost more than the read: Airflow's Python tasks, the channel lookup path
(`offerrank.lookup`), the CLI's listings. Writes always go through Spark and delta-spark.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from offerrank.settings import Settings
from offerrank.tables import OFFER_RANKINGS, Table

if TYPE_CHECKING:
    from offerrank.catalog import Catalog


def open_table(settings: Settings, table: Table):
    """The latest version of a Delta table, or None before its first write."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(settings.table_path(table.name))
    except TableNotFoundError:
        return None


def read_rows(
    table, columns: list[str] | None = None, partitions: list[tuple] | None = None, row_filter=None
) -> list[dict]:
    """Rows of an open table (optionally some columns, partitions, a pyarrow filter expression).

    Scans on the calling thread: pyarrow's scan thread pool can abort a short-lived process at exit
    ("terminate called without an active exception": delta-rs #2184, arrow #34314)."""
    dataset = table.to_pyarrow_dataset(partitions=partitions)
    return dataset.to_table(columns=columns, filter=row_filter, use_threads=False).to_pylist()


def table_rows(settings: Settings, table: Table) -> list[dict]:
    """Every row of the latest version of a table (none before its first write)."""
    opened = open_table(settings, table)
    return read_rows(opened) if opened is not None else []


def catalog_from_rows(rows: list[dict]) -> Catalog:
    """The catalog held by rows of the `registry` table."""
    from offerrank.catalog import KINDS, build_catalog

    data: dict[str, list] = {kind: [] for kind in KINDS}
    for row in sorted(rows, key=lambda r: (r["kind"], r["id"])):
        data[row["kind"]].append(json.loads(row["spec"]))
    return build_catalog(data, "registry")


def top_offer_lines(settings: Settings, top: int) -> list[str]:
    """The published ranking's top offers of each placement, one line each, under a heading line."""
    rows = sorted(
        (r for r in table_rows(settings, OFFER_RANKINGS) if r["rank"] <= top),
        key=lambda r: (r["decision_id"], r["placement_id"], r["channel"], r["segment"], r["rank"]),
    )
    if not rows:
        return ["no ranking was published yet"]
    lines = [
        f"published ranking version {rows[0]['ranking_version']} (as of {rows[0]['as_of_date']}): "
        f"top {top} offers per placement"
    ]
    for row in rows:
        share = f"{row['traffic_share']:6.1%}" if row["traffic_share"] is not None else "     -"
        score = f"{row['score']:.4f}" if row["score"] is not None else "-"
        lines.append(
            f"  {row['decision_id']:<16} {row['placement_id']:<18} {row['channel']:<9} {row['segment']:<16} "
            f"#{row['rank']} "
            f"{row['offer_id']:<10} score {score:<8} traffic {share}  {row['reason']}"
        )
    return lines
