"""The fallback rules of a placement with nothing ranked to serve: which decision answers, the offers it may serve
(live on the serving day, shown to the profile), and the fixed order it serves them in: the decision's fallback offer
(while it is live; it has no audience), then the live offers by priority. Pure: reads the catalog it is given.
"""

from __future__ import annotations

from datetime import date

from offerrank.catalog import Catalog, DecisionPlacement, Offer
from offerrank.serving.answers import LookupRefused
from offerrank.tables import Reason


def unranked_offers(
    catalog: Catalog, placement_id: str, decision_id: str | None, on: date, profile_segments: frozenset[str]
) -> tuple[str | None, DecisionPlacement | None, list[Offer]]:
    """For a placement with nothing ranked to serve: the decision that answers, its assignment of the placement,
    and the offers live on `on` and shown to the profile that it may serve, by priority."""
    assignments = sorted(
        (
            (d.id, a)
            for d, a in catalog.active_assignments()
            if a.placement == placement_id and decision_id in (None, d.id)
        ),
        key=lambda pair: pair[0],
    )
    if decision_id is not None and not assignments:
        raise LookupRefused(f"decision {decision_id!r} does not assign placement {placement_id!r}")
    chosen_decision, assignment = assignments[0] if assignments else (None, None)
    live = (
        catalog.eligible_live_offers(assignment, on)
        if assignment
        else [o for o in catalog.offers if o.is_live(on) and placement_id in o.placements]
    )
    shown = [o for o in sorted(live, key=lambda o: (-o.priority, o.id)) if o.shown_to(profile_segments)]
    return chosen_decision, assignment, shown


def fallback_chain(
    catalog: Catalog, assignment: DecisionPlacement | None, offers: list[Offer], on: date
) -> list[tuple[str, float | None, str]]:
    """(offer, score, reason) of a fixed fallback order: the decision's fallback offer while it is live on `on` (every
    offer has an end date: an ended fallback is not served either), then `offers` by priority."""
    fallback = catalog.get("offers", assignment.fallback_offer) if assignment else None
    chain = [(fallback.id, None, Reason.FALLBACK.value)] if fallback is not None and fallback.is_live(on) else []
    return chain + [
        (o.id, float(o.priority), Reason.PRIORITY_FALLBACK.value)
        for o in offers
        if not assignment or o.id != assignment.fallback_offer
    ]
