"""Frequency caps at serving time: the nightly counts of `offer_cap_counts` a lookup starts from (`CapCounts`),
what this process served of capped offers since (`ServedCounts`, in memory), and whether an offer's cap is reached
(`cap_reached`). Reads and writes no table: `offerrank.serving.loaders` loads the nightly counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from offerrank.catalog import Offer


@dataclass(frozen=True)
class CapCounts:
    """The nightly frequency-capping counts a lookup starts from: events per (offer, cap index, profile or None for
    a total cap) through `as_of` (the latest date of `offer_cap_counts`)."""

    as_of: date | None = None
    events: dict[tuple[str, str, str | None], int] = field(default_factory=dict)  # (offer, cap key, profile)
    source: int | None = None  # the table version they were loaded from


NO_CAP_COUNTS = CapCounts()


class ServedCounts:
    """What this lookup process served of capped offers since the nightly counts: per (offer, profile or None for
    all traffic, serving day). Only impressions: clicks are known from the events alone."""

    def __init__(self) -> None:
        self._by_day: dict[tuple[str, str | None], Counter] = {}  # (offer, profile or None) -> day -> served
        self._lock = threading.Lock()

    def add(self, offer_ids: list[str], profile_id: str | None, day: date) -> None:
        with self._lock:
            for offer_id in offer_ids:
                for who in (None, profile_id) if profile_id is not None else (None,):
                    self._by_day.setdefault((offer_id, who), Counter())[day] += 1

    def between(self, offer_id: str, profile_id: str | None, first: date, last: date) -> int:
        days = self._by_day.get((offer_id, profile_id))
        return sum(n for day, n in list(days.items()) if first <= day <= last) if days else 0

    def forget_through(self, day: date) -> None:
        """Drop the counts of days the nightly counts now hold."""
        with self._lock:
            for key, days in list(self._by_day.items()):
                for old in [d for d in days if d <= day]:
                    del days[old]
                if not days:
                    del self._by_day[key]


def cap_reached(offer: Offer, profile_id: str | None, day: date, nightly: CapCounts, served: ServedCounts) -> bool:
    """Whether one of the offer's caps is reached on `day` for this profile: the nightly count of the cap's current
    period (when the counts' period is still the current one) plus what this process served since their date.
    Counts dated `day` or later (a run forced for a day not over) are not used: they would hide what this process
    serves on `day`. A per-profile cap does not apply to an anonymous request."""
    if nightly.as_of is not None and nightly.as_of >= day:
        nightly = NO_CAP_COUNTS
    for cap in offer.caps:
        if cap.per == "profile" and profile_id is None:
            continue
        who = profile_id if cap.per == "profile" else None
        start = cap.window_start(day, offer.start_date)
        counted_through = nightly.as_of if nightly.as_of is not None else start - timedelta(days=1)
        same_period = (
            nightly.as_of is not None and cap.window_start(nightly.as_of + timedelta(days=1), offer.start_date) == start
        )
        events = nightly.events.get((offer.id, cap.key, who), 0) if same_period else 0
        if cap.event == "impression":
            events += served.between(offer.id, who, max(start, counted_through + timedelta(days=1)), day)
        if events >= cap.limit:
            return True
    return False
