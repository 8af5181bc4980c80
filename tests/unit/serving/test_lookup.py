"""The lookup's compact profile index and its frequency caps, on hand-built inputs (no Spark, no Delta)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from offerrank.catalog import FrequencyCap, Offer
from offerrank.serving.lookup import CapCounts, ProfileIndex, ServedCounts, cap_reached


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


def test_a_cap_adds_the_nightly_count_of_its_period_and_what_the_process_served_since():
    caps = (
        FrequencyCap(event="impression", limit=10, period="week"),
        FrequencyCap(event="impression", per="profile", limit=2, period="lifetime"),
        FrequencyCap(event="click", limit=3, period="month"),
    )
    offer = Offer(
        id="o-1",
        name="o",
        priority=1,
        start_date=date(2026, 11, 1),
        end_date=date(2026, 12, 31),
        placements=("p",),
        caps=caps,
    )
    thursday, friday, next_monday = date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30)
    nightly = CapCounts(
        thursday,
        {("o-1", "impression:total:week", None): 9, ("o-1", "impression:profile:lifetime", "p-1"): 1},
    )
    served = ServedCounts()
    assert not cap_reached(offer, None, friday, nightly, served)
    served.add(["o-1"], "p-2", friday)
    assert cap_reached(offer, None, friday, nightly, served)  # 9 through Thursday + 1 served on Friday
    assert not cap_reached(offer, None, next_monday, nightly, served)  # a new week: last week's counts are gone
    assert not cap_reached(
        offer,
        "p-1",
        next_monday,
        CapCounts(thursday, {("o-1", "impression:profile:lifetime", "p-1"): 1}),
        ServedCounts(),
    )
    served.add(["o-1"], "p-1", next_monday)
    assert cap_reached(
        offer, "p-1", next_monday, CapCounts(thursday, {("o-1", "impression:profile:lifetime", "p-1"): 1}), served
    )
    assert not cap_reached(
        offer, None, friday, CapCounts(thursday, {("o-1", "click:total:month", None): 2}), ServedCounts()
    )
    assert cap_reached(
        offer, None, friday, CapCounts(thursday, {("o-1", "click:total:month", None): 3}), ServedCounts()
    )  # clicks
    served.forget_through(friday)
    assert served.between("o-1", None, friday, friday) == 0 and served.between("o-1", "p-1", next_monday, next_monday)
