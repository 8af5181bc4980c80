"""What a channel lookup answers: the ranked offers of a placement and what the channel logs with them, or why it
refuses. Reads and writes nothing: the lookup (`offerrank.serving.lookup`) builds answers with these types, checks
its arguments with `check_arguments` and raises these refusals (the HTTP service maps them to status codes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from itertools import count, repeat
from operator import add
from typing import NamedTuple

from offerrank.catalog import CHANNELS, ID_PATTERN
from offerrank.errors import BadInput, Unavailable
from offerrank.learning.contextual.serving import request_context
from offerrank.serving.policy import MODEL, RANDOM
from offerrank.tables import Reason

PROFILE_PATTERN = r"^[A-Za-z0-9._:@+=/-]{1,256}$"
_ID = re.compile(ID_PATTERN)
_PROFILE = re.compile(PROFILE_PATTERN)


class LookupRefused(BadInput):
    """A lookup that cannot be answered: a malformed argument, a decision that does not assign the placement."""


class UnknownPlacement(LookupRefused):
    """The catalog has no such placement on that channel."""


class NothingToServe(Unavailable):
    """The warehouse holds neither a catalog nor a published ranking yet."""


POLICY, PUBLISHED = "policy", "published"  # the serving policy per request; the published order as it is
MODES = (POLICY, PUBLISHED)


class Request(NamedTuple):
    """One lookup's arguments, checked,, and the segments of its profile."""

    placement_id: str
    channel: str
    mode: str
    request_id: str
    limit: int
    profile_id: str | None
    profile_segments: frozenset[str]


class RankedOffer(NamedTuple):
    """One offer to show, and what the channel logs with it. The fields published in the ranking come first, in the
    order of `PUBLISHED_FIELDS` (a named tuple built positionally: the policy path builds ten per request)."""

    offer_id: str
    score: float | None
    reason: str  # a `Reason`'s value
    rank: int
    traffic_type: str  # random | model: the item's itemSelection.rankingDetail.trafficType
    propensity: float  # P(the serving policy puts this offer in this slot for this request): 1.0 for a fixed order


# The served fields that come from the published ranking as they are.
PUBLISHED_FIELDS = ("offer_id", "score", "reason")
_REASON = PUBLISHED_FIELDS.index("reason")
_new_tuple = tuple.__new__


@dataclass(frozen=True)
class Answer:
    """Offers in the order to show them, and the ranking version they come from (None for a pure fallback)."""

    placement_id: str
    channel: str
    decision_id: str | None
    ranking_version: int | None
    table_version: int | None
    as_of_date: date | None  # the data day of the list that answered (a kept list: its own run's)
    run_id: str | None  # the run that ranked that list
    segment: str | None  # the segment whose ranking answered (`*`: all traffic; None for a fallback)
    mode: str  # policy | published
    traffic_type: str  # random | model: how this request's order was chosen
    request_id: str  # seeds the request's draws: the same id (and ranking version) gives the same answer
    offers: tuple[RankedOffer, ...]
    # offers not served, by cause: not_eligible (the catalog no longer makes them eligible for the list, or they are
    # gone from it), not_live (ended, not started), audience, capped
    dropped: dict[str, int]

    def proposition(self, shown: int | None = None) -> dict:
        """The XDM proposition a channel logs with its impression (and again with a click on one of its items) of
        the first `shown` offers (all by default): the request id ties the click to the impression, and each item
        carries its traffic type and propensity (`itemSelection.rankingDetail`)."""
        scope_details = {"placement": {"id": self.placement_id}}
        if self.decision_id is not None:
            scope_details["decisionPolicy"] = {"id": self.decision_id}
        items = [
            {
                "id": offer.offer_id,
                "itemSelection": {"rankingDetail": {"trafficType": offer.traffic_type, "propensity": offer.propensity}},
            }
            for offer in self.offers[:shown]
        ]
        return {"id": self.request_id, "scope": self.placement_id, "scopeDetails": scope_details, "items": items}

    def as_dict(self) -> dict:
        answer = {name.name: getattr(self, name.name) for name in fields(self)}
        offers = [offer._asdict() for offer in self.offers]
        return {**answer, "offers": offers, "dropped": dict(self.dropped), "proposition": self.proposition()}


def as_random(values: list[tuple]) -> list[tuple]:
    """Published fields as random traffic serves them: reason `random`."""
    return [(*published[:_REASON], Reason.RANDOM.value, *published[_REASON + 1 :]) for published in values]


def ranked_offers(
    values: list[tuple], traffic_type: str = MODEL, propensity: list[float] | None = None
) -> tuple[RankedOffer, ...]:
    """An answer's offers from their published fields in serving order, ranked from 1; a fixed order has
    propensity 1, random traffic has reason `random`."""
    if traffic_type == RANDOM:
        values = as_random(values)
    return offers_of(values, traffic_type, repeat(1.0) if propensity is None else propensity)


def offers_of(values, traffic_type: str, propensity) -> tuple[RankedOffer, ...]:
    """`values` (published fields, iterable) ranked from 1 with their `propensity` (iterable): each offer is the
    published tuple + (rank, traffic type, propensity), built without a Python-level loop (RankedOffer's own
    __new__ is a Python function: half a microsecond an offer)."""
    tails = zip(count(1), repeat(traffic_type), propensity)
    return tuple(map(_new_tuple, repeat(RankedOffer), map(add, values, tails)))


def check_arguments(
    placement_id: str,
    channel: str,
    profile_id: str | None,
    limit: int,
    decision_id: str | None,
    mode: str = POLICY,
    request_id: str | None = None,
    context: Mapping[str, object] | None = None,
) -> None:
    """LookupRefused naming the first malformed argument."""
    if not _ID.match(placement_id):
        raise LookupRefused(f"placement id must be 1-128 letters, digits or . _ : - (got {placement_id[:140]!r})")
    if channel not in CHANNELS:
        raise LookupRefused(f"channel must be one of {', '.join(CHANNELS)} (got {channel[:40]!r})")
    if profile_id is not None and not _PROFILE.match(profile_id):
        raise LookupRefused("profile id must be 1-256 letters, digits or . _ : @ + = / -")
    if decision_id is not None and not _ID.match(decision_id):
        raise LookupRefused(f"decision id must be 1-128 letters, digits or . _ : - (got {decision_id[:140]!r})")
    if not 1 <= limit <= 1000:
        raise LookupRefused(f"limit must be between 1 and 1000 (got {limit})")
    if mode not in MODES:
        raise LookupRefused(f"mode must be one of {', '.join(MODES)} (got {mode[:40]!r})")
    if request_id is not None and not _ID.match(request_id):
        raise LookupRefused(f"request id must be 1-128 letters, digits or . _ : - (got {request_id[:140]!r})")
    if context:  # an empty context is always valid
        try:
            request_context(context, channel, 0)
        except ValueError as error:
            raise LookupRefused(str(error)) from None
