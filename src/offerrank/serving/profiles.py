"""The profiles a lookup answers for, indexed compactly for millions of them: `ProfileIndex` holds a profile's
segments (from `profile_segments`), `AttributeIndex` its raw attribute values for contextual models (from
`profile_attributes`). Both sort the distinct profile ids in one Arrow string array, found by binary search
(`position_of`). Pure numpy and pyarrow: `offerrank.serving.loaders` reads the tables.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def run_starts(values: pa.Array) -> np.ndarray:
    """The first row of each run of equal neighbours in `values` (sorted), starting with row 0."""
    changed = pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)).to_numpy(zero_copy_only=False)
    return np.concatenate([[0], np.flatnonzero(changed) + 1])


def position_of(ids: pa.Array, profile_id: str | None) -> int | None:
    """The position of `profile_id` in the sorted Arrow string array `ids` (None when absent)."""
    if profile_id is None or not len(ids):
        return None
    # Arrow sorts strings by their UTF-8 bytes: the order of Python's str comparison
    at = bisect.bisect_left(range(len(ids)), profile_id, key=lambda i: ids[i].as_py())
    return at if at < len(ids) and ids[at].as_py() == profile_id else None


class ProfileIndex:
    """Profile id -> its segments, compact for millions of profiles: the distinct profile ids sorted in one Arrow
    string array (found by binary search), and per profile a run of 16-bit segment codes."""

    def __init__(
        self, ids=None, starts: np.ndarray | None = None, codes: np.ndarray | None = None, names=(), source=None
    ):
        self.source = source  # what it was loaded from: (table version, segments, as-of date)
        self._ids = ids if ids is not None else pa.array([], pa.string())
        # profile i (in the order of `ids`) is in segments codes[starts[i]:starts[i + 1]]
        self._starts = starts if starts is not None else np.zeros(1, np.uint32)
        self._codes = codes if codes is not None else np.zeros(0, np.uint16)
        self._names: tuple[str, ...] = tuple(names)

    @classmethod
    def build(cls, memberships: pa.Table, source=None) -> ProfileIndex:
        """The index of a table of (profile_id, segment) rows."""
        if memberships.num_rows == 0:
            return cls(source=source)
        segment = memberships["segment"].combine_chunks()
        names = pa.array(sorted(pc.unique(segment).to_pylist()), pa.string())
        coded = pa.table(
            {"profile_id": memberships["profile_id"].combine_chunks(), "code": pc.index_in(segment, names)}
        )
        coded = coded.sort_by([("profile_id", "ascending"), ("code", "ascending")])
        ids = coded["profile_id"].combine_chunks()
        first_rows = run_starts(ids)
        starts = np.append(first_rows, len(ids)).astype(np.uint32 if len(ids) < 2**32 else np.int64)
        codes = coded["code"].to_numpy().astype(np.uint16)
        return cls(ids.take(pa.array(first_rows)), starts, codes, names.to_pylist(), source)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def memberships(self) -> int:
        return len(self._codes)

    @property
    def nbytes(self) -> int:
        return self._ids.nbytes + self._starts.nbytes + self._codes.nbytes

    def segments_of(self, profile_id: str | None) -> frozenset[str]:
        """The profile's segments (none for an unknown or anonymous profile)."""
        at = position_of(self._ids, profile_id)
        if at is None:
            return frozenset()
        return frozenset(self._names[code] for code in self._codes[self._starts[at] : self._starts[at + 1]])


NO_PROFILES = ProfileIndex()


class AttributeIndex:
    """Profile id -> its raw attribute values, for the attributes contextual models declare."""

    def __init__(
        self,
        ids: pa.Array | None = None,
        codes: np.ndarray | None = None,
        values: Iterable[tuple[str | None, ...]] = (),
        names: Iterable[str] = (),
        source: tuple | None = None,
    ) -> None:
        self.source = source  # what it was loaded from: (table version, attributes, as-of date)
        self._ids = ids if ids is not None else pa.array([], pa.string())
        self._codes = codes if codes is not None else np.zeros((0, 0), np.uint16)  # profiles x attributes, 0: none
        self._values: tuple[tuple[str | None, ...], ...] = tuple(values)  # per attribute: code -> value
        self._names: tuple[str, ...] = tuple(names)

    @classmethod
    def build(cls, rows: pa.Table, names: list[str], source=None) -> AttributeIndex:
        """The index of a table of (profile_id, attribute, value) rows."""
        if rows.num_rows == 0:
            return cls(names=names, source=source)
        ids = pc.unique(rows["profile_id"].combine_chunks()).sort()
        at = pc.index_in(rows["profile_id"], ids).to_numpy()
        masks = [pc.equal(rows["attribute"], name).combine_chunks() for name in names]
        distinct = [pc.unique(pc.filter(rows["value"], mask).combine_chunks()) for mask in masks]
        # 16-bit codes unless an attribute has 65,535 values or more (a numeric one, say)
        dtype = np.uint16 if max(map(len, distinct)) < 2**16 - 1 else np.uint32
        codes = np.zeros((len(ids), len(names)), dtype)
        for column, (mask, values) in enumerate(zip(masks, distinct)):
            coded = pc.index_in(pc.filter(rows["value"], mask), values).to_numpy(zero_copy_only=False)
            codes[at[mask.to_numpy(zero_copy_only=False)], column] = coded.astype(dtype) + 1
        return cls(ids, codes, [(None, *values.to_pylist()) for values in distinct], names, source)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def nbytes(self) -> int:
        return self._ids.nbytes + self._codes.nbytes

    def attributes_of(self, profile_id: str | None) -> dict[str, str]:
        """The profile's attribute values (none for an unknown or anonymous profile, or a missing attribute)."""
        at = position_of(self._ids, profile_id)
        if at is None:
            return {}
        codes = self._codes[at].tolist()
        return {name: self._values[i][code] for i, (name, code) in enumerate(zip(self._names, codes)) if code}


NO_ATTRIBUTES = AttributeIndex()
