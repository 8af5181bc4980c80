"""JVM-free reads and writes of offerrank's Delta tables with the `deltalake` package (no Spark, no JVM).

Used where starting Spark would cost more than the work: Airflow's Python tasks, the channel lookup path
(`offerrank.serving.loaders`), the CLI's listings, the registry (`offerrank.catalog.registry`: its MERGE commits),
and the small tables of ranking and publishing (`ranking_stage`, `offer_rankings`, `ranking_runs`), which fit in
memory. The event-sized tables are written by Spark jobs through
`offerrank.engines.delta_spark`; both engines write the same Delta protocol, so either reads what the other wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from offerrank.errors import Refused
from offerrank.schemas import Table
from offerrank.settings import Settings
from offerrank.tables import latest_on_or_before, partition_predicate

if TYPE_CHECKING:
    pass


# Concurrent writers of one table (the DAG's rank tasks) retry a commit that lost the race this many times.
COMMIT_ATTEMPTS = 5
COMMIT_TOKEN = "offerrank.commit"  # commit-info key that identifies a commit of `write_frame`


def open_table(settings: Settings, table: Table, version: int | None = None):
    """The latest version of a Delta table (or `version`), or None before its first write."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(settings.table_path(table.name), version=version)
    except TableNotFoundError:
        return None


class ConcurrentCommit(Refused, RuntimeError):
    """Another writer committed the table after the version this write was based on."""


def write_frame(
    settings: Settings,
    table: Table,
    frame,
    mode: str = "append",
    where: dict[str, object] | None = None,
    read_version: int | None = None,
) -> int:
    """Write a pandas frame with the table's declared schema (or an Arrow table, as it is) in one commit; returns
    that commit's table version.

    `mode`: append, or overwrite (the whole table, or only the rows whose columns equal `where`'s values, or lie in
    its (first, last) ranges). A commit that loses
    a race with another writer of the same table is retried on the new version, unless the write is based on
    `read_version` (what the writer read to decide it): then a commit since that version is a ConcurrentCommit. The
    version is read from the commit itself (a token in its commit info), not from the table's latest version, which
    another writer may have moved on."""
    import uuid

    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    data = frame if isinstance(frame, pa.Table) else table.arrow_rows(frame)
    predicate = partition_predicate(where or {}) or None
    if predicate:  # the condition may name a column a new release added, which the schema merge adds only later
        add_missing_columns(settings, table)
    path, token = settings.table_path(table.name), uuid.uuid4().hex
    target = DeltaTable(path, version=read_version) if read_version is not None else path
    for attempt in range(COMMIT_ATTEMPTS if read_version is None else 1):
        try:
            write_deltalake(
                target,
                data,
                mode=mode,
                partition_by=list(table.partitions) or None,
                predicate=predicate,
                schema_mode="merge",  # a column a new release adds (nullable) joins the table's schema
                commit_properties=CommitProperties(custom_metadata={COMMIT_TOKEN: token}),
            )  # type: ignore[call-overload]  # the stubs tie `predicate` to a literal "overwrite"; `mode` is a str
            break
        except CommitFailedError as failed:  # e.g. two first writers both creating the table
            if read_version is not None:
                raise ConcurrentCommit(
                    f"{table.name} was committed by another writer after version {read_version} ({one_line(failed)})"
                ) from None
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
    return _version_of(path, token)


def add_missing_columns(settings: Settings, table: Table) -> None:
    """Add the declared columns a table written by an earlier release lacks (nullable, null in its rows), so a
    condition may name them; nothing before the table's first write."""
    from deltalake import Schema

    opened = open_table(settings, table)
    if opened is None:
        return
    present = set(opened.schema().to_arrow().names)
    missing = [column for column in Schema.from_arrow(table.arrow_schema()).fields if column.name not in present]
    if missing:
        opened.alter.add_columns(missing)


def delete_rows(settings: Settings, table: Table, condition: str) -> int:
    """Delete the rows matching the SQL `condition` in one commit (retried when it loses a race with another
    writer, like `write_frame`); returns how many were deleted (none before the table's first write)."""
    from deltalake.exceptions import CommitFailedError

    add_missing_columns(settings, table)
    for attempt in range(COMMIT_ATTEMPTS):
        opened = open_table(settings, table)
        if opened is None:
            return 0
        try:
            return int(opened.delete(condition)["num_deleted_rows"])
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
    return 0


def merge_frame(
    settings: Settings,
    table: Table,
    frame,
    keys: tuple[str, ...],
    read_version: int | None,
    delete_if_null: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Upsert a pandas frame's rows (or an Arrow table's) into a table by its key columns `keys` in one MERGE commit;
    a row whose column `delete_if_null` is null deletes the matching row instead. Returns that commit's version.

    The change is based on `read_version`, the version the writer read to decide it (None: there was no table, and
    this commit creates it with the frame's rows, less the deletions): a commit by another writer since then is a
    ConcurrentCommit, not retried. `metadata`: entries of the commit's commit info, e.g. Delta's `userMetadata`
    (what Spark's MERGE records from its session conf, and `DeltaTable.history` shows)."""
    import uuid

    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError

    data = frame if isinstance(frame, pa.Table) else table.arrow_rows(frame)
    path, token = settings.table_path(table.name), uuid.uuid4().hex
    properties = CommitProperties(custom_metadata={**(metadata or {}), COMMIT_TOKEN: token}, max_commit_retries=0)
    if read_version is None:
        try:
            write_deltalake(
                path,
                data.filter(pc.field(delete_if_null).is_valid()) if delete_if_null else data,
                mode="error",  # a table another writer created meanwhile is a conflict, not overwritten
                partition_by=list(table.partitions) or None,
                commit_properties=properties,
            )
        except DeltaError as failed:  # CommitFailedError, or "a table already exists"
            raise ConcurrentCommit(
                f"{table.name} was created by another writer meanwhile ({one_line(failed)})"
            ) from None
        return _version_of(path, token)
    target = DeltaTable(path, version=read_version)
    merger = target.merge(
        data,
        " AND ".join(f"t.{key} = s.{key}" for key in keys),
        source_alias="s",
        target_alias="t",
        commit_properties=properties,
    )
    if delete_if_null:
        merger = merger.when_matched_delete(f"s.{delete_if_null} IS NULL")
    merger = merger.when_matched_update_all().when_not_matched_insert_all(
        f"s.{delete_if_null} IS NOT NULL" if delete_if_null else None
    )
    try:
        merger.execute()
    except CommitFailedError as failed:
        raise ConcurrentCommit(
            f"{table.name} was committed by another writer after version {read_version} ({one_line(failed)})"
        ) from None
    return target.version()


def filesystem(uri: str):
    """pyarrow's file system of a folder or object-storage URI (Spark's s3a:// is s3:// here), and the path in it."""
    from pathlib import Path

    from pyarrow import fs

    if "://" not in uri:
        uri = str(Path(uri).resolve())
    return fs.FileSystem.from_uri(uri.replace("s3a://", "s3://", 1))


def write_file(uri: str, data: bytes) -> None:
    """Write one file (a report page) to a folder or object storage, creating its parent folders."""
    files, path = filesystem(uri)
    files.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with files.open_output_stream(path) as out:
        out.write(data)


def file_exists(uri: str) -> bool:
    """Whether a file is at `uri` (a path or an object-storage URI)."""
    from pyarrow.fs import FileType

    files, path = filesystem(uri)
    return files.get_file_info(path).type != FileType.NotFound


def _version_of(path: str, token: str) -> int:
    """The version of the commit carrying `token`: its commit file, searched from the latest version back (usually
    the first). (`DeltaTable.history` numbers entries from the loaded version, wrong while others commit.)"""
    from deltalake import DeltaTable

    files, root = filesystem(path)
    for version in range(DeltaTable(path).version(), -1, -1):
        with files.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as commit:
            if token.encode() in commit.read():
                return version
    raise LookupError(f"no commit {token} in {path}")


def read_arrow(table, columns: list[str] | None = None, partitions: list[tuple] | None = None, row_filter=None):
    """An open table as one pyarrow Table (optionally some columns, partitions, a pyarrow filter expression).

    Scans on the calling thread: pyarrow's scan thread pool can abort a short-lived process at exit
    ("terminate called without an active exception": delta-rs #2184, arrow #34314)."""
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=partitions)
    return dataset.to_table(columns=columns, filter=row_filter, use_threads=False)


def latest_partition(table, column: str, on_or_before: date, **equal: str) -> date | None:
    """The latest date of an open table's partition column `column` on or before `on_or_before`, among the
    partitions whose other partition columns equal `equal` (None when there is none)."""
    days = [
        date.fromisoformat(values[column])
        for values in table.partitions()
        if all(values[name] == value for name, value in equal.items())
    ]
    return latest_on_or_before(days, on_or_before)


def partition_write_times(table, column: str) -> dict[date, int]:
    """When each value of an open table's date partition `column` was last written (its newest file's modification
    time, ms since the epoch), from the table's log; empty when the table is None (not written yet)."""
    import pyarrow as pa

    if table is None:
        return {}
    files = pa.table(table.get_add_actions(flatten=True)).select([f"partition.{column}", "modification_time"])
    written: dict[date, int] = {}
    for day, at in zip(*(files.column(i).to_pylist() for i in range(2)), strict=True):
        written[day] = max(at, written.get(day, at))
    return written


def read_rows(
    table, columns: list[str] | None = None, partitions: list[tuple] | None = None, row_filter=None
) -> list[dict]:
    """Rows of an open table as dicts (see `read_arrow`)."""
    return read_arrow(table, columns, partitions, row_filter).to_pylist()


def one_line(error: BaseException) -> str:
    """An error as one short line: its type and first line (no backtraces of native libraries to callers)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def table_rows(settings: Settings, table: Table, partitions: Mapping[str, object] | None = None) -> list[dict]:
    """Every row of the latest version of a table (none before its first write), or of the partitions whose
    columns equal `partitions`."""
    opened = open_table(settings, table)
    if opened is None:
        return []
    selected = [(column, "=", str(value)) for column, value in partitions.items()] if partitions else None
    return read_rows(opened, partitions=selected)


def rows_between(settings: Settings, table: Table, column: str, low, high):
    """The rows of `table` whose (partition) `column` lies in [low, high] as a pandas frame; None before the
    table's first write."""
    import pyarrow.compute as pc

    opened = open_table(settings, table)
    if opened is None:
        return None
    return read_arrow(opened, row_filter=(pc.field(column) >= low) & (pc.field(column) <= high)).to_pandas()
