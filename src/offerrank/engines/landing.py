"""What counts as a landing folder's data files: one rule for the sensor, ingest, the profile snapshot and the
catalog's dataset check.

A landing root is a local folder (or a `file://` URI) or an object-store URI (`s3a://`, `s3://`, `gs://`,
`abfss://`, listed through pyarrow's file systems); it holds one folder per UTC date. A data file is a regular file
named `*.json`, `*.jsonl` (optionally `.gz`) or `*.parquet`. Anything else in the folder is skipped and reported,
never read: hidden or underscore names (`.events.jsonl.Xy12`, a `_SUCCESS` marker), the temporary names of uploads
in progress (`a.jsonl_.gstmp`, `b.jsonl._COPYING_`). Landing never follows a symbolic link out of its root (a link
could copy any file of the host into the warehouse): a linked date folder is not read at all, and a linked file is
listed apart (`links`) for ingest to quarantine, unread. With a completeness marker set (`OFFERRANK_LANDING_MARKER`,
e.g. `_SUCCESS`), a folder counts as landed only once the marker is there. A data file that cannot be read whole (a gzip
stream cut short, a Parquet file without its footer) is *damaged*: ingest quarantines the file, saying why, and reads
the others.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO

LINK_NOT_FOLLOWED = "a symbolic link: landing never follows links out of its root, nothing was read from it"
FORMATS = {".json": "json", ".jsonl": "json", ".json.gz": "json", ".jsonl.gz": "json", ".parquet": "parquet"}


@dataclass
class LandingFolder:
    """A folder's data files by format (paths or URIs, as Spark reads them), and what was skipped and why."""

    folder: str
    files: dict[str, list[str]] = field(default_factory=lambda: {"json": [], "parquet": []})
    skipped: list[str] = field(default_factory=list)  # "name: why"
    links: list[str] = field(default_factory=list)  # symbolic links to data file names, not followed

    @property
    def empty(self) -> bool:
        return not any(self.files.values())

    def without(self, paths: set[str]) -> dict[str, list[str]]:
        """The data files by format, leaving out `paths`."""
        return {kind: [path for path in files if path not in paths] for kind, files in self.files.items()}


def landing_folder(root: str, day: date) -> str:
    """The folder of `day` under a landing root."""
    return f"{str(root).rstrip('/')}/{day.isoformat()}"


def file_format(name: str) -> str | None:
    """`json` or `parquet` for a data file's name, None for anything else."""
    if name.startswith((".", "_")):
        return None
    return next((kind for suffix, kind in FORMATS.items() if name.endswith(suffix)), None)


# URI schemes that address the same store: Hadoop's connectors and pyarrow's names of one bucket or container
_SAME_STORE = {"s3a": "s3", "s3n": "s3", "abfs": "abfss", "gcs": "gs"}


def root_identity(location: str) -> tuple[str, ...]:
    """A landing root as the store and path parts it reads, so that two spellings of one folder are equal and a
    folder inside another starts with its parts: `s3a://b/x/` and `s3://b/y/../x` give ("s3", "b", "x"); a local
    path is made absolute, its `..` and symbolic links resolved."""
    if not _in_store(location):
        return ("file", *Path(os.path.realpath(_local(location))).parts[1:])
    scheme, _, rest = location.partition("://")
    bucket, _, path = rest.partition("/")
    parts = [part for part in posixpath.normpath(f"/{path}").split("/") if part]
    return (_SAME_STORE.get(scheme.lower(), scheme.lower()), bucket.lower(), *parts)


def _in_store(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _local(location: str | Path) -> Path:
    return Path(str(location).removeprefix("file://"))


def is_link(location: str | Path) -> bool:
    """Whether a local location is a symbolic link (object stores have none)."""
    return not _in_store(str(location)) and _local(location).is_symlink()


def scan(folder: str | Path) -> LandingFolder:
    """The data files of `folder` (none when it does not exist)."""
    folder = str(folder)
    found = LandingFolder(folder)
    in_store = _in_store(folder)
    if is_link(folder):
        found.skipped.append(f"{_local(folder).name}: {LINK_NOT_FOLLOWED}")
        return found
    for name, kind, why in _object_entries(folder) if in_store else _local_entries(_local(folder)):
        if why == LINK_NOT_FOLLOWED and kind:
            found.links.append(str(_local(folder) / name))
        elif why:
            if not name.startswith("_"):  # markers and Spark's _-files are expected, not worth a line
                found.skipped.append(f"{name}: {why}")
        else:
            found.files[kind].append(f"{folder.rstrip('/')}/{name}" if in_store else str(_local(folder) / name))
    return found


def _local_entries(folder: Path):
    """(name, format, why skipped) of a local folder's entries, by name."""
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        kind = file_format(path.name)
        if path.is_symlink():
            yield path.name, kind, LINK_NOT_FOLLOWED
        elif kind is None or not path.is_file():
            yield path.name, None, "not a data file name (*.json, *.jsonl[.gz], *.parquet)"
        else:
            yield path.name, kind, None


def _object_entries(folder: str):
    """(name, format, why skipped) of an object-store folder's entries, by name."""
    from pyarrow import fs

    for info in _store_listing(folder):
        kind = file_format(info.base_name)
        if kind is None or info.type != fs.FileType.File:
            yield info.base_name, None, "not a data file name (*.json, *.jsonl[.gz], *.parquet)"
        else:
            yield info.base_name, kind, None


def landed(folder: str | Path, marker: str) -> bool:
    """Whether the folder is complete: its marker is there when one is set, else it holds a data file."""
    folder = str(folder)
    if not marker:
        return not scan(folder).empty
    if not _in_store(folder):
        return (_local(folder) / marker).is_file()
    from pyarrow import fs

    from offerrank.engines.delta_rs import filesystem

    files, path = filesystem(folder)
    return files.get_file_info(f"{path.rstrip('/')}/{marker}").type == fs.FileType.File


def date_folders(root: str) -> list[str]:
    """The date folders under a landing root, oldest first."""
    if not _in_store(root):
        return [str(path) for path in sorted(_local(root).glob("*/")) if not path.is_symlink()]
    from pyarrow import fs

    folders = [info.base_name for info in _store_listing(root) if info.type == fs.FileType.Directory]
    return [f"{root.rstrip('/')}/{name}" for name in folders]


def _store_listing(folder: str) -> list:
    """pyarrow's file infos of an object-store folder's entries, by name (none when it does not exist)."""
    from pyarrow import fs

    from offerrank.engines.delta_rs import filesystem

    files, path = filesystem(folder)
    return sorted(files.get_file_info(fs.FileSelector(path, allow_not_found=True)), key=lambda info: info.base_name)


def as_uri(location: str) -> str:
    """A data file's location as Spark names it in `_metadata.file_path` (a local path as a `file:` URI)."""
    return location if "://" in location else _local(location).resolve().as_uri()


def open_file(location: str) -> BinaryIO:
    """A landing file opened for reading (a local path or an object-store URI)."""
    if not _in_store(location):
        return open(_local(location), "rb")
    from offerrank.engines.delta_rs import filesystem

    files, path = filesystem(location)
    return files.open_input_file(path)


def damaged(files: dict[str, list[str]]) -> dict[str, str]:
    """The data files that cannot be read whole, and why: a gzip stream that is cut short or corrupt (checked by
    decompressing it, several files at a time: zlib works outside the GIL), a Parquet file whose footer cannot be
    read (the footer is written last, so an upload cut short has none)."""
    checks = [(path, _gzip_damage) for path in files.get("json", []) if path.endswith(".gz")]
    checks += [(path, _parquet_damage) for path in files.get("parquet", [])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = pool.map(lambda check: (check[0], check[1](check[0])), checks)
        return {path: why for path, why in found if why}


def _gzip_damage(location: str) -> str | None:
    try:
        with open_file(location) as handle, gzip.GzipFile(fileobj=handle) as stream:
            while stream.read(1 << 22):
                pass
    except (EOFError, OSError, zlib.error) as error:
        return f"not a whole gzip stream ({error})"
    return None


def _parquet_damage(location: str) -> str | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open_file(location) as handle:
            pq.read_metadata(handle)
    except (pa.ArrowException, OSError) as error:
        return f"not a readable Parquet file ({error})"
    return None
