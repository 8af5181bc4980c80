"""The fallback chain of a placement with nothing ranked to serve, on a hand-built catalog."""

from __future__ import annotations

from datetime import date

from offerrank.catalog import Catalog, Decision, DecisionPlacement, Offer, Placement
from offerrank.serving.fallbacks import fallback_chain, unranked_offers


def offer(ident: str, priority: int, end: date) -> Offer:
    return Offer(
        id=ident, name=ident, priority=priority, start_date=date(2026, 11, 1), end_date=end, placements=("hero",)
    )


def test_an_ended_fallback_offer_is_not_served():
    """Issue #54 (2): the decision's fallback offer was served on any day, also after its end date."""
    catalog = Catalog(
        placements=(Placement(id="hero", name="hero", channel="web"),),
        offers=(offer("fb", 1, date(2026, 11, 5)), offer("lasting", 5, date(2027, 12, 31))),
        decisions=(
            Decision(
                id="d",
                name="d",
                placements=(
                    DecisionPlacement(
                        placement="hero", eligible_offers=("fb", "lasting"), ranking="priority", fallback_offer="fb"
                    ),
                ),
            ),
        ),
    )
    for day, expected in (
        (date(2026, 11, 5), [("fb", None, "fallback"), ("lasting", 5.0, "priority_fallback")]),
        (date(2026, 11, 6), [("lasting", 5.0, "priority_fallback")]),
        (date(2028, 1, 1), []),
    ):
        _, assignment, live = unranked_offers(catalog, "hero", None, day, frozenset())
        assert fallback_chain(catalog, assignment, live, day) == expected, day
