"""The tables a lookup reads, with `deltalake` (no JVM): `offer_rankings` (its latest version: one complete
ranking), `registry` (the catalog), `profile_segments` and `profile_attributes` (the snapshot the ranking's date
used) and `offer_cap_counts` (the latest date's counts). Each `..._of` loader takes the open table (None when it does
not exist) and the snapshot being served, and returns that snapshot's part as it is while its source has not
changed, so a refresh reads only what is new. Writes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from offerrank.catalog import Catalog
from offerrank.catalog.stored import catalog_from_rows
from offerrank.engines.delta_rs import latest_partition, read_arrow, read_rows
from offerrank.serving.answers import PUBLISHED_FIELDS
from offerrank.serving.caps import NO_CAP_COUNTS, CapCounts
from offerrank.serving.profiles import NO_ATTRIBUTES, NO_PROFILES, AttributeIndex, ProfileIndex
from offerrank.serving.snapshot import Snapshot
from offerrank.tables import ALL_SEGMENTS, OFFER_RANKINGS, PARAMETER_COLUMNS

# What a lookup loads of the published ranking: what it indexes by, the posteriors, and every published field.
SERVED_COLUMNS = [
    "ranking_version",
    "model_name",
    "decision_id",
    "placement_id",
    "channel",
    "segment",
    "alpha",
    "beta",
    "as_of_date",
    "run_id",
    "published_at",
    "rank",
    *PUBLISHED_FIELDS,
    *PARAMETER_COLUMNS,
]


def ranked_segments(ranking: pa.Table) -> set[str]:
    """The segments a ranking has per-segment lists for (besides all traffic)."""
    return set(pc.unique(ranking["segment"]).to_pylist()) - {ALL_SEGMENTS} if ranking.num_rows else set()


def audience_segments(catalog: Catalog | None) -> set[str]:
    """The segments offers are restricted to."""
    return {segment for offer in catalog.offers for segment in offer.segments} if catalog else set()


def ranking_of(table, current: Snapshot) -> tuple[pa.Table | None, int | None, datetime | None]:
    """The served columns of `offer_rankings`' latest version (the current ones while it has not changed)."""
    if table is None:
        return None, None, None
    version = table.version()
    if version == current.table_version:
        return current.ranking, version, current.committed_at
    present = {column.name for column in table.schema().fields}
    ranking = read_arrow(table, [name for name in SERVED_COLUMNS if name in present])
    for name in ["run_id", *PARAMETER_COLUMNS]:  # an older table version: no run id per list, no parameters
        if name not in present:
            ranking = ranking.append_column(
                name, pa.nulls(ranking.num_rows, OFFER_RANKINGS.arrow_schema().field(name).type)
            )
    return ranking, version, _commit_time(table)


def catalog_of(table, current: Snapshot) -> tuple[Catalog | None, int | None]:
    """The registry's catalog (the current one while the registry has not changed)."""
    if table is None:
        return None, None
    version = table.version()
    return (current.catalog if version == current.registry_version else catalog_from_rows(read_rows(table))), version


def profiles_of(table, segments: set[str], as_of: date | None, current: Snapshot) -> ProfileIndex:
    """The memberships of `segments` the ranking of `as_of` used (the current index while none of that changed)."""
    if table is None or not segments:
        return NO_PROFILES
    source = (table.version(), frozenset(segments), as_of)
    if current.profiles.source == source:
        return current.profiles
    return load_profiles(table, segments, as_of or date.max, source)


def load_profiles(table, segments: set[str], as_of: date, source=None) -> ProfileIndex:
    """The memberships of `segments` in the latest snapshot on or before `as_of` in `profile_segments`."""
    latest = latest_partition(table, "snapshot_date", as_of)
    if latest is None:
        return ProfileIndex(source=source)
    import pyarrow.dataset as ds

    memberships = read_arrow(
        table,
        ["profile_id", "segment"],
        [("snapshot_date", "=", latest.isoformat())],
        ds.field("segment").isin(sorted(segments)),
    )
    return ProfileIndex.build(memberships, source)


def attributes_of(table, names: list[str], as_of: date | None, current: Snapshot) -> AttributeIndex:
    """The contextual models' profile attributes in the snapshot the ranking of `as_of` used (the current index
    while none of that changed)."""
    if table is None or not names:
        return NO_ATTRIBUTES
    source = (table.version(), tuple(names), as_of)
    if current.attributes.source == source:
        return current.attributes
    latest = latest_partition(table, "snapshot_date", as_of or date.max)
    if latest is None:
        return AttributeIndex(names=names, source=source)
    import pyarrow.dataset as ds

    rows = read_arrow(
        table,
        ["profile_id", "attribute", "value"],
        [("snapshot_date", "=", latest.isoformat())],
        ds.field("attribute").isin(names),
    )
    return AttributeIndex.build(rows, names, source)


def cap_counts_of(table, current: Snapshot) -> CapCounts:
    """The latest date's frequency-capping counts (the current ones while the table has not changed)."""
    if table is None:
        return NO_CAP_COUNTS
    version = table.version()
    if version == current.cap_counts.source:
        return current.cap_counts
    dates = [date.fromisoformat(p["as_of_date"]) for p in table.partitions()]
    if not dates:
        return CapCounts(source=version)
    as_of = max(dates)
    rows = read_arrow(table, ["offer_id", "cap", "profile_id", "events"], [("as_of_date", "=", as_of.isoformat())])
    events = {
        (offer_id, cap, profile_id): events
        for offer_id, cap, profile_id, events in zip(*(rows[name].to_pylist() for name in rows.column_names))
    }
    return CapCounts(as_of, events, version)


def _commit_time(table) -> datetime:
    millis = table.history(1)[0]["timestamp"]
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
