"""The lookup's compact profile indexes (segments, attributes), on hand-built inputs (no Spark, no Delta)."""

from __future__ import annotations

import pyarrow as pa

from offerrank.serving.profiles import AttributeIndex, ProfileIndex

ATTRIBUTE_NAMES = ["homeAddress.countryCode", "person.age"]


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


def test_attribute_index_finds_each_profiles_values_and_leaves_missing_ones_out():
    rows = pa.table(
        {
            "profile_id": ["p2", "p1", "p1", "p3"],
            "attribute": ["homeAddress.countryCode", "person.age", "homeAddress.countryCode", "person.age"],
            "value": ["FR", "34", "DE", "71"],
        }
    )
    index = AttributeIndex.build(rows, ATTRIBUTE_NAMES)
    assert len(index) == 3 and index.nbytes < 3 * (8 + 2 * 2) + 64
    assert index.attributes_of("p1") == {"homeAddress.countryCode": "DE", "person.age": "34"}
    assert index.attributes_of("p2") == {"homeAddress.countryCode": "FR"}
    assert index.attributes_of("p3") == {"person.age": "71"}
    assert index.attributes_of("p0") == {} and index.attributes_of(None) == {}
    assert AttributeIndex.build(rows.slice(0, 0), ATTRIBUTE_NAMES).attributes_of("p1") == {}
