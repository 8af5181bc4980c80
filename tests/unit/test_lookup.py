"""The lookup's compact profile index, on hand-built memberships (no Spark, no Delta)."""

from __future__ import annotations

import pyarrow as pa

from offerrank.lookup import ProfileIndex


def memberships(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"profile_id": [p for p, _ in rows], "segment": [s for _, s in rows]})


def test_a_profile_gets_its_segments_and_an_unknown_or_anonymous_one_none():
    index = ProfileIndex.build(
        memberships([("p-2", "vip"), ("p-1", "loyal"), ("p-2", "loyal"), ("é-9", "vip"), ("p-10", "vip")])
    )
    assert len(index) == 4 and index.memberships == 5
    assert index.segments_of("p-2") == {"vip", "loyal"} and index.segments_of("p-1") == {"loyal"}
    assert index.segments_of("é-9") == {"vip"} and index.segments_of("p-10") == {"vip"}
    assert index.segments_of("p-3") == frozenset() and index.segments_of(None) == frozenset()
    assert index.segments_of("a") == frozenset() and index.segments_of("zzz") == frozenset()
    assert ProfileIndex.build(memberships([])).segments_of("p-1") == frozenset()


def test_the_index_takes_a_few_bytes_per_membership():
    rows = [(f"profile-{i:07d}", segment) for i in range(20_000) for segment in ("new", "loyal")[: 1 + i % 2]]
    index = ProfileIndex.build(memberships(rows))
    assert index.memberships == len(rows) == 30_000
    assert index.nbytes / index.memberships < 20
    assert index.segments_of("profile-0000001") == {"new", "loyal"} and index.segments_of("profile-0000002") == {"new"}
