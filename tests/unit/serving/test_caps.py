"""The lookup's frequency caps: the nightly counts plus what the process served, on hand-built inputs."""

from __future__ import annotations

from datetime import date

from offerrank.catalog import FrequencyCap, Offer
from offerrank.serving.caps import CapCounts, ServedCounts, cap_reached


def capped_offer(*caps: FrequencyCap) -> Offer:
    """Offer `o-1`, live through November and December 2026 on placement `p`, with `caps`."""
    return Offer(
        id="o-1",
        name="o",
        priority=1,
        start_date=date(2026, 11, 1),
        end_date=date(2026, 12, 31),
        placements=("p",),
        caps=caps,
    )


def test_a_cap_adds_the_nightly_count_of_its_period_and_what_the_process_served_since():
    caps = (
        FrequencyCap(event="impression", limit=10, period="week"),
        FrequencyCap(event="impression", per="profile", limit=2, period="lifetime"),
        FrequencyCap(event="click", limit=3, period="month"),
    )
    offer = capped_offer(*caps)
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


def test_cap_counts_dated_the_serving_day_are_not_used():
    # issue #54, item 3: counts of a run forced for a day not over would hide what the lookup serves that day
    offer = capped_offer(FrequencyCap(event="impression", limit=2, period="day"))
    friday = date(2026, 11, 27)
    served = ServedCounts()
    served.add(["o-1"], None, friday)
    served.add(["o-1"], None, friday)
    dated_today = CapCounts(friday, {("o-1", "impression:total:day", None): 1})
    assert cap_reached(offer, None, friday, dated_today, served)  # what it served today counts: the cap holds
    assert not cap_reached(offer, None, friday, dated_today, ServedCounts())  # today's counts alone are not used
    assert cap_reached(offer, None, friday, CapCounts(date(2026, 11, 26)), served)
