"""What counts as a landing folder's data files: one rule for the sensor, ingest, the profile snapshot and the
catalog's dataset check.

A data file is a regular file named `*.json`, `*.jsonl` (optionally `.gz`) or `*.parquet`. Anything else in the
folder is skipped and reported, never read: hidden or underscore names (`.events.jsonl.Xy12`, a `_SUCCESS` marker),
the temporary names of uploads in progress (`a.jsonl_.gstmp`, `b.jsonl._COPYING_`), and symbolic links (a link could
copy any file of the host into the warehouse). With a completeness marker set (`OFFERRANK_LANDING_MARKER`, e.g.
`_SUCCESS`), a folder counts as landed only once the marker is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FORMATS = {".json": "json", ".jsonl": "json", ".json.gz": "json", ".jsonl.gz": "json", ".parquet": "parquet"}


@dataclass
class LandingFolder:
    """A folder's data files by format, and what was skipped and why."""

    folder: Path
    files: dict[str, list[str]] = field(default_factory=lambda: {"json": [], "parquet": []})
    skipped: list[str] = field(default_factory=list)  # "name: why"

    @property
    def empty(self) -> bool:
        return not any(self.files.values())


def file_format(name: str) -> str | None:
    """`json` or `parquet` for a data file's name, None for anything else."""
    if name.startswith((".", "_")):
        return None
    return next((kind for suffix, kind in FORMATS.items() if name.endswith(suffix)), None)


def scan(folder: Path) -> LandingFolder:
    """The data files of `folder` (none when it does not exist)."""
    found = LandingFolder(folder)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        kind = file_format(path.name)
        if path.is_symlink():
            found.skipped.append(f"{path.name}: a symbolic link (only regular files are read)")
        elif kind is None or not path.is_file():
            if not path.name.startswith("_"):  # markers and Spark's _-files are expected, not worth a line
                found.skipped.append(f"{path.name}: not a data file name (*.json, *.jsonl[.gz], *.parquet)")
        else:
            found.files[kind].append(str(path))
    return found


def landed(folder: Path, marker: str) -> bool:
    """Whether the folder is complete: its marker is there when one is set, else it holds a data file."""
    if marker:
        return (folder / marker).is_file()
    return not scan(folder).empty
