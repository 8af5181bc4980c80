"""Channel lookups: the ranked offers of a placement on a channel, always from one complete published ranking.

Reads `offer_rankings` (its latest Delta version: one complete ranking), `registry` (the catalog: offers' dates and
audiences, fallbacks, unknown placements) and, when the ranking has per-segment lists or offers have audiences,
`profile_segments` (the snapshot the ranking's date used) with `deltalake`, so no JVM starts. A `RankingLookup`
keeps the loaded ranking as one immutable snapshot, column by column in numpy arrays (a refresh builds few Python
objects, so serving threads are not stalled while a new version loads), swaps in a newly published version whole,
so a lookup never sees a half-loaded version, and keeps serving the last good one when a table cannot be read;
`start()` polls the tables' versions in a background thread.

What is served is judged on the serving day (the UTC date of the lookup's clock): an offer not live that day, or
whose audience the profile is not in, is dropped and the next ranked offers move up; a list left empty serves the
placement's fallback chain. An AI-ranked list is served by the policy of `offerrank.serving.policy`, decided per request
(random share, Thompson draw), and every offer says what the channel logs with it (traffic type, propensity).

    lookup = RankingLookup(load_settings()).start()
    answer = lookup.top("home-hero", "web", profile_id="p-1", limit=3)
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from itertools import count, repeat
from operator import add
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from offerrank.catalog import CHANNELS, ID_PATTERN, Catalog, DecisionPlacement, Offer
from offerrank.catalog.stored import catalog_from_rows
from offerrank.engines.delta_rs import latest_partition, one_line, open_table, read_arrow, read_rows
from offerrank.learning.bandit import run_seed
from offerrank.learning.features import SEGMENT
from offerrank.serving.personalized import (
    NO_ATTRIBUTES,
    PERSONALIZED,
    AttributeIndex,
    ContextualList,
    contextual_attribute_names,
    position_of,
    request_context,
)
from offerrank.serving.policy import (
    MODEL,
    RANDOM,
    Contenders,
    ServingPolicy,
    contender_slot_probabilities,
    posterior_table,
    random_order,
    request_generator,
    slot_probabilities,
)
from offerrank.settings import Settings
from offerrank.tables import (
    ALL_SEGMENTS,
    OFFER_CAP_COUNTS,
    OFFER_RANKINGS,
    PARAMETER_COLUMNS,
    PROFILE_ATTRIBUTES,
    PROFILE_SEGMENTS,
    REGISTRY,
)

PROFILE_PATTERN = r"^[A-Za-z0-9._:@+=/-]{1,256}$"
CELLS_KEPT = 2_000  # contextual lists' answers kept per request cell (least recently used first out)
POLICIES_KEPT = 2_000  # serving policies kept per list of rows and limit (~0.4 MB each for 200 offers, 10 slots)
_ID = re.compile(ID_PATTERN)
_PROFILE = re.compile(PROFILE_PATTERN)
log = logging.getLogger("offerrank.serving.lookup")


class LookupRefused(ValueError):
    """A lookup that cannot be answered: a malformed argument, a decision that does not assign the placement."""


class UnknownPlacement(LookupRefused):
    """The catalog has no such placement on that channel."""


class NothingToServe(LookupRefused):
    """The warehouse holds neither a catalog nor a published ranking yet."""


POLICY, PUBLISHED = "policy", "published"  # the serving policy per request; the published order as it is
MODES = (POLICY, PUBLISHED)


class RankedOffer(NamedTuple):
    """One offer to show, and what the channel logs with it. The fields published in the ranking come first, in the
    order of `PUBLISHED_FIELDS` (a named tuple built positionally: the policy path builds ten per request)."""

    offer_id: str
    score: float | None
    reason: str  # model | personalized | cold_start | random | priority | formula | fallback | priority_fallback
    rank: int
    traffic_type: str  # random | model: the item's itemSelection.rankingDetail.trafficType
    propensity: float  # P(the serving policy puts this offer in this slot for this request): 1.0 for a fixed order


# The served fields that come from the published ranking as they are.
PUBLISHED_FIELDS = ("offer_id", "score", "reason")
# What a lookup loads of the published ranking: what it indexes by, the posteriors, and every published field.
SERVED_COLUMNS = [
    "ranking_version",
    "model_name",
    "decision_id",
    "placement_id",
    "channel",
    "segment",
    "alpha",
    "beta",
    "as_of_date",
    "published_at",
    "rank",
    *PUBLISHED_FIELDS,
    *PARAMETER_COLUMNS,
]


@dataclass(frozen=True)
class Answer:
    """Offers in the order to show them, and the ranking version they come from (None for a pure fallback)."""

    placement_id: str
    channel: str
    decision_id: str | None
    ranking_version: int | None
    table_version: int | None
    as_of_date: date | None
    segment: str | None  # the segment whose ranking answered (`*`: all traffic; None for a fallback)
    mode: str  # policy | published
    traffic_type: str  # random | model: how this request's order was chosen
    request_id: str  # seeds the request's draws: the same id (and ranking version) gives the same answer
    offers: tuple[RankedOffer, ...]
    dropped: dict[str, int]  # offers not served, by cause: not_live (ended, not started, gone), audience, capped

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


def run_starts(values: pa.Array) -> np.ndarray:
    """The first row of each run of equal neighbours in `values` (sorted), starting with row 0."""
    changed = pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)).to_numpy(zero_copy_only=False)
    return np.concatenate([[0], np.flatnonzero(changed) + 1])


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
    A per-profile cap does not apply to an anonymous request."""
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


@dataclass(frozen=True)
class _Field:
    """One served column in arrays: numbers in numpy, strings as codes into their distinct values; nulls as None."""

    data: np.ndarray
    distinct: tuple | None = None  # the strings the codes in `data` stand for
    nulls: np.ndarray | None = None

    @classmethod
    def of(cls, column: pa.ChunkedArray) -> _Field:
        array = column.combine_chunks()
        nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            encoded = pc.dictionary_encode(array)
            codes = pc.fill_null(encoded.indices, 0).to_numpy()
            return cls(codes, tuple(encoded.dictionary.to_pylist()), nulls)
        return cls(array.to_numpy(zero_copy_only=False), None, nulls)

    def take(self, rows: np.ndarray) -> list:
        """The values of `rows`, as Python objects."""
        values = self.data[rows].tolist()
        if self.distinct is not None:
            values = [self.distinct[code] for code in values]
        if self.nulls is not None:
            values = [None if null else value for value, null in zip(values, self.nulls[rows].tolist())]
        return values


@dataclass(frozen=True)
class _Columns:
    """The rows of one published ranking column by column, sorted by placement, channel, decision, segment, rank:
    the published fields of `RankedOffer`, and the posteriors."""

    fields: dict[str, _Field]
    alpha: np.ndarray  # NaN where none (lists not ranked by an AI model)
    beta: np.ndarray
    fallback: np.ndarray  # the fallback offer published for a list with nothing eligible: served whatever the day

    @classmethod
    def of(cls, ranking: pa.Table) -> _Columns:
        def floats(name: str) -> np.ndarray:
            return pc.fill_null(ranking[name].combine_chunks().cast(pa.float64()), np.nan).to_numpy()

        return cls(
            {name: _Field.of(ranking[name]) for name in PUBLISHED_FIELDS},
            floats("alpha"),
            floats("beta"),
            pc.equal(ranking["reason"], "fallback").combine_chunks().to_numpy(zero_copy_only=False),
        )

    @property
    def offer(self) -> np.ndarray:
        """Each row's offer, as a code into `offer_ids`."""
        return self.fields["offer_id"].data

    @property
    def offer_ids(self) -> tuple[str, ...]:
        return self.fields["offer_id"].distinct

    def published_values(self, rows: np.ndarray) -> list[tuple]:
        """Each of `rows`' published fields (in `PUBLISHED_FIELDS` order), as Python objects."""
        return list(zip(*(column.take(rows) for column in self.fields.values())))


_REASON = PUBLISHED_FIELDS.index("reason")
_new_tuple = tuple.__new__


def as_random(values: list[tuple]) -> list[tuple]:
    """Published fields as random traffic serves them: reason `random`."""
    return [(*published[:_REASON], RANDOM, *published[_REASON + 1 :]) for published in values]


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


@dataclass(frozen=True)
class _Servable:
    """What the catalog says of each offer id of the ranking: the days it is live and its audience."""

    first_day: np.ndarray  # datetime64[D]; offers gone from the catalog are never live
    last_day: np.ndarray
    audiences: tuple[frozenset[str] | None, ...]
    restricted: np.ndarray  # bool: the offer has an audience

    @classmethod
    def of(cls, offer_ids: tuple[str, ...], catalog: Catalog | None) -> _Servable:
        always, never = (np.datetime64(date.min, "D"), np.datetime64(date.max, "D")), (date.max, date.min)
        by_id = {offer.id: offer for offer in catalog.offers} if catalog else {}
        offers = [by_id.get(offer_id) for offer_id in offer_ids]
        days = [(o.start_date, o.end_date) if o else never if catalog else always for o in offers]
        audiences = tuple(frozenset(o.segments) if o and o.segments else None for o in offers)
        return cls(
            np.array([first for first, _ in days], "datetime64[D]"),
            np.array([last for _, last in days], "datetime64[D]"),
            audiences,
            np.array([audience is not None for audience in audiences], bool),
        )


@dataclass(frozen=True)
class _Ranked:
    """One ranked list of a published ranking: rows [start, stop) of the snapshot's columns."""

    start: int
    stop: int
    exploration_share: float | None  # an AI model's list, served by the per-request policy; None: a fixed order
    restricted: bool  # some of its offers have an audience: what is served depends on the profile
    capped: tuple[str, ...] = ()  # its offers with frequency caps
    contextual: ContextualList | None = None  # a contextual model's parameters: scored per request


@dataclass
class _Served:
    """What one list serves on one day to one audience, for answers of up to `limit` offers."""

    rows: np.ndarray  # the servable rows, in the published order
    dropped: dict[str, int]
    published: tuple[RankedOffer, ...]  # the first `limit` of `rows`, as a fixed order
    limit: int
    # set at the first policy answer: the published fields of `rows` (as the policy's model and random traffic
    # serve them), then what each request's decision reads
    values: tuple[list[tuple], list[tuple]] | None = None
    policy: ServingPolicy | None = None


@dataclass(frozen=True)
class _Placement:
    """One decision placement x channel: its ranked list per segment, and the order a profile's segments are
    tried in."""

    decision_id: str
    by_segment: dict[str, _Ranked]
    segment_order: tuple[str, ...]  # a personalized model's segments as it lists them

    def for_segments(self, profile_segments: frozenset[str]) -> tuple[str, _Ranked]:
        """The list of the first of the model's segments the profile belongs to, else the all-traffic list."""
        for segment in self.segment_order:
            if segment in profile_segments and segment in self.by_segment:
                return segment, self.by_segment[segment]
        return ALL_SEGMENTS, self.by_segment[ALL_SEGMENTS]


@dataclass(frozen=True)
class Snapshot:
    """One published ranking version, the catalog version beside it and the profiles' segments, immutable once built."""

    table_version: int | None = None
    registry_version: int | None = None
    ranking_version: int | None = None
    as_of_date: date | None = None
    published_at: datetime | None = None
    committed_at: datetime | None = None
    catalog: Catalog | None = None
    ranking: pa.Table | None = None  # the rows the columns were built from (kept to rebuild on a catalog change)
    columns: _Columns | None = None
    servable: _Servable | None = None
    placements: dict[tuple[str, str], dict[str | None, _Placement]] = field(default_factory=dict)
    profiles: ProfileIndex = NO_PROFILES
    attributes: AttributeIndex = NO_ATTRIBUTES
    cap_counts: CapCounts = NO_CAP_COUNTS
    capped_offers: dict[str, Offer] = field(default_factory=dict)  # the catalog's offers with frequency caps
    # (list, day, the profile's segments where they matter, offers capped) -> what `served` answers
    _served: dict = field(default_factory=dict, compare=False, repr=False)
    # (list, its servable rows, slots) -> their slot probabilities and contenders: another day reuses them
    _policies: dict = field(default_factory=dict, compare=False, repr=False)
    # (list, its servable rows, slots, request cell) -> a contextual list's answers for that cell
    _cells: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def profiles_version(self) -> int | None:
        return self.profiles.source[0] if self.profiles.source else None

    def served(
        self, ranked: _Ranked, on: date, profile_segments: frozenset[str], limit: int, capped: frozenset[str]
    ) -> _Served:
        """`served_rows` and the first `limit` of their offers in the published order, computed once per list, day,
        limit, capped offers and (for a list with audiences) profile segments: most lookups reuse one answer's."""
        key = (ranked.start, on, profile_segments if ranked.restricted else None, limit, capped)
        found = self._served.get(key)
        if found is None:
            if len(self._served) > 100_000:  # many profile-segment combinations: start over rather than grow
                self._served.clear()
            rows, dropped = self.served_rows(ranked, on, profile_segments, capped)
            published = ranked_offers(self.columns.published_values(rows[:limit]))
            found = self._served[key] = _Served(rows, dropped, published, limit)
        return found

    def served_rows(
        self, ranked: _Ranked, on: date, profile_segments: frozenset[str], capped: frozenset[str] = frozenset()
    ) -> tuple[np.ndarray, dict[str, int]]:
        """The rows of a ranked list that may be served on day `on` to a profile in `profile_segments`, less the
        `capped` offers, in order, and how many were dropped by cause. A published fallback row (nothing was
        eligible) is served whatever the day and audience."""
        rows = np.arange(ranked.start, ranked.stop)
        offers, servable, fallback = self.columns.offer[rows], self.servable, self.columns.fallback[rows]
        day = np.datetime64(on, "D")
        live = fallback | ((servable.first_day[offers] <= day) & (day <= servable.last_day[offers]))
        keep = live.copy()
        for at in np.flatnonzero(live & servable.restricted[offers] & ~fallback):
            keep[at] = not servable.audiences[offers[at]].isdisjoint(profile_segments)
        shown = keep.copy()
        if capped:
            codes = [code for code, offer_id in enumerate(self.columns.offer_ids) if offer_id in capped]
            keep &= ~np.isin(offers, codes)
        dropped = {
            "not_live": int((~live).sum()),
            "audience": int((live & ~shown).sum()),
            "capped": int((shown & ~keep).sum()),
        }
        return rows[keep], dropped

    def decide(self, ranked: _Ranked, served: _Served, rng: np.random.Generator) -> tuple[tuple[RankedOffer, ...], str]:
        """One request's order of a list served by the policy: its offers, and its traffic type."""
        rows, columns = served.rows, self.columns
        if served.policy is None:
            # one policy per list of rows and limit, shared by the served variants (days, profiles) that have them
            key = (ranked.start, rows.tobytes(), served.limit)
            found = self._policies.get(key)
            if found is None:
                if len(self._policies) > POLICIES_KEPT:  # many capped or audience combinations: start over
                    self._policies.clear()
                seed = run_seed(self.ranking_version, ranked.start, len(rows))
                table = posterior_table(columns.alpha[rows], columns.beta[rows])
                in_slot = slot_probabilities(table, served.limit, seed)
                values = columns.published_values(rows)
                policy = ServingPolicy(Contenders.of(table, in_slot), ranked.exploration_share, in_slot, served.limit)
                found = self._policies[key] = (values, as_random(values)), policy
            served.values = found[0]
            served.policy = found[1]  # set last: another thread seeing it sees the values too
        order, traffic_type, propensity = served.policy.decide(rng)
        values = served.values[traffic_type == RANDOM]
        return offers_of(map(values.__getitem__, order), traffic_type, propensity), traffic_type

    def personalize(
        self, ranked: _Ranked, served: _Served, active: np.ndarray, mode: str, rng: np.random.Generator | None
    ) -> tuple[tuple[RankedOffer, ...], str]:
        """One request's order of a contextual list for the request's cell (`active` features): each trained offer
        scored by its posterior for the cell (reason `personalized`), the others by their Beta posterior; the
        policy's random share and Thompson draw in `policy` mode, by mean score in `published` mode."""
        rows, limit = served.rows, served.limit
        key = (ranked.start, rows.tobytes(), limit, active.tobytes())
        found = self._cells.get(key)
        if found is None:
            if len(self._cells) >= CELLS_KEPT:  # the least recently used cell goes (another thread may have too)
                self._cells.pop(next(iter(self._cells), None), None)
            columns = self.columns
            cell = ranked.contextual.cell_model(rows - ranked.start, columns.alpha[rows], columns.beta[rows], active)
            values = [
                (published[0], score, PERSONALIZED) if personalized else published
                for published, score, personalized in zip(
                    columns.published_values(rows), cell.score.tolist(), cell.personalized.tolist()
                )
            ]
            in_slot = contender_slot_probabilities(
                cell.table, limit, run_seed(self.ranking_version, ranked.start, key[3])
            )
            by_score = np.argsort(-cell.score, kind="stable")[:limit]
            share = ranked.exploration_share
            contenders = Contenders.of(cell.table, in_slot)
            policy = ServingPolicy(contenders, share, in_slot, limit) if share is not None else None
            found = self._cells[key] = ((values, as_random(values)), policy, by_score)
        else:
            self._cells[key] = self._cells.pop(key, found)  # the most recently used: last to go
        values, policy, by_score = found
        if mode == POLICY and policy is not None:
            order, traffic_type, propensity = policy.decide(rng)
            chosen = values[traffic_type == RANDOM]
            return offers_of(map(chosen.__getitem__, order), traffic_type, propensity), traffic_type
        return ranked_offers([values[0][at] for at in by_score.tolist()]), MODEL


def ranked_segments(ranking: pa.Table) -> set[str]:
    """The segments a ranking has per-segment lists for (besides all traffic)."""
    return set(pc.unique(ranking["segment"]).to_pylist()) - {ALL_SEGMENTS} if ranking.num_rows else set()


def audience_segments(catalog: Catalog | None) -> set[str]:
    """The segments offers are restricted to."""
    return {segment for offer in catalog.offers for segment in offer.segments} if catalog else set()


GROUP_COLUMNS = ["placement_id", "channel", "decision_id", "segment"]


class _CatalogIndex:
    """What a snapshot build asks the catalog for each of its lists, by id (a valid catalog's ids are unique, as
    are a decision's placements): AI models, and the exploration share of the per-request policy of a decision's
    placement (None: its ranking method gives a fixed order)."""

    def __init__(self, catalog: Catalog | None):
        self.catalog = catalog
        self.models = {model.name: model for model in catalog.ai_models} if catalog else {}
        self.assignments: dict[tuple[str, str], DecisionPlacement] = {
            (decision.id, assignment.placement): assignment
            for decision in (catalog.decisions if catalog else ())
            for assignment in decision.placements
        }

    def exploration_share(self, decision_id: str, placement_id: str) -> float | None:
        assignment = self.assignments.get((decision_id, placement_id))
        if assignment is None or not assignment.method.explorable:
            return None
        return assignment.method.exploration_share(self.catalog)


def build_snapshot(
    ranking: pa.Table | None,
    catalog: Catalog | None,
    table_version: int | None = None,
    registry_version: int | None = None,
    committed_at: datetime | None = None,
    profiles: ProfileIndex | None = None,
    cap_counts: CapCounts = NO_CAP_COUNTS,
    attributes: AttributeIndex = NO_ATTRIBUTES,
) -> Snapshot:
    """Index the rows of one `offer_rankings` version by (placement, channel), decision and segment."""
    common = {
        "table_version": table_version,
        "registry_version": registry_version,
        "committed_at": committed_at,
        "catalog": catalog,
        "profiles": profiles or NO_PROFILES,
        "attributes": attributes,
        "cap_counts": cap_counts,
        "capped_offers": {o.id: o for o in catalog.offers if o.caps} if catalog else {},
    }
    if ranking is None or ranking.num_rows == 0:
        return Snapshot(**common)
    ranking = ranking.sort_by([(name, "ascending") for name in [*GROUP_COLUMNS, "rank"]])
    columns = _Columns.of(ranking)
    servable = _Servable.of(columns.offer_ids, catalog)
    keys = pc.binary_join_element_wise(*(ranking[name] for name in GROUP_COLUMNS), "\x1f").combine_chunks()
    starts = run_starts(keys)
    stops = np.append(starts[1:], len(keys))
    models = ranking["model_name"].take(pa.array(starts)).to_pylist()
    lists: dict[tuple[str, str, str], dict[str, _Ranked]] = {}
    offer_names = columns.offer_ids
    model_names: dict[tuple[str, str, str], str] = {}
    index = _CatalogIndex(catalog)
    # per list, in a few numpy calls rather than a few per list (the refresh holds the GIL in Python code):
    # whether it has posteriors (no NaN, no published fallback: nothing eligible to draw from), and audiences
    no_posteriors = np.logical_or.reduceat(np.isnan(columns.alpha) | np.isnan(columns.beta) | columns.fallback, starts)
    restricted_lists = np.logical_or.reduceat(servable.restricted[columns.offer], starts)
    for key, start, stop, model_name, lacks_posteriors, restricted in zip(
        keys.take(pa.array(starts)).to_pylist(),
        starts.tolist(),
        stops.tolist(),
        models,
        no_posteriors.tolist(),
        restricted_lists.tolist(),
    ):
        placement_id, channel, decision_id, segment = key.split("\x1f")
        posteriors = not lacks_posteriors
        share = index.exploration_share(decision_id, placement_id) if posteriors else None
        capped = ()
        if common["capped_offers"]:
            offer_ids = {offer_names[code] for code in np.unique(columns.offer[start:stop]).tolist()}
            capped = tuple(sorted(offer_ids & common["capped_offers"].keys()))
        model = index.models.get(model_name)
        contextual = (
            ContextualList.of(ranking, int(start), int(stop), model.features)
            if posteriors and model is not None and model.contextual
            else None
        )
        lists.setdefault((placement_id, channel, decision_id), {})[segment] = _Ranked(
            start, stop, share, restricted, capped, contextual
        )
        model_names[(placement_id, channel, decision_id)] = model_name
    placements: dict[tuple[str, str], dict[str | None, _Placement]] = {}
    for (placement_id, channel, decision_id), by_segment in sorted(lists.items()):
        model = index.models.get(model_names[(placement_id, channel, decision_id)])
        order = tuple(
            s for s in (model.segments if model else sorted(by_segment)) if s in by_segment and s != ALL_SEGMENTS
        )
        served = _Placement(decision_id, by_segment, order)
        by_decision = placements.setdefault((placement_id, channel), {})
        by_decision[decision_id] = served
        by_decision.setdefault(None, served)  # the first decision by id answers when none is named
    first = ranking.slice(0, 1).select(["ranking_version", "as_of_date", "published_at"]).to_pylist()[0]
    return Snapshot(
        **common,
        ranking_version=first["ranking_version"],
        as_of_date=first["as_of_date"],
        published_at=first["published_at"],
        ranking=ranking,
        columns=columns,
        servable=servable,
        placements=placements,
    )


def load_profiles(table, segments: set[str], as_of: date, source=None) -> ProfileIndex:
    """The memberships of `segments` in the latest snapshot on or before `as_of` in `profile_segments`."""
    latest = latest_partition(table, "snapshot_date", as_of)
    if latest is None:
        return ProfileIndex(source=source)
    import pyarrow.dataset as ds

    memberships = read_arrow(
        table,
        ["profile_id", "segment"],
        [("snapshot_date", "=", latest.isoformat())],
        ds.field("segment").isin(sorted(segments)),
    )
    return ProfileIndex.build(memberships, source)


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


def fallback_chain(assignment: DecisionPlacement | None, offers: list[Offer]) -> list[tuple[str, float | None, str]]:
    """(offer, score, reason) of a fixed fallback order: the decision's fallback offer, then `offers` by priority."""
    chain = [(assignment.fallback_offer, None, "fallback")] if assignment else []
    return chain + [
        (o.id, float(o.priority), "priority_fallback")
        for o in offers
        if not assignment or o.id != assignment.fallback_offer
    ]


class RankingLookup:
    """Answers channel lookups from the latest published ranking of one warehouse."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None):
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._snapshot = Snapshot()
        self._lock = threading.Lock()  # one refresh at a time; lookups never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._served_counts = ServedCounts()
        self.loaded_at: datetime | None = None
        self.last_refresh_at: datetime | None = None
        self.last_refresh_error: str | None = None
        self.refresh()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> bool:
        """Load the tables' latest versions if they changed; True when a new snapshot is being served.

        Each table is loaded on its own: one that cannot be read keeps its part of the current snapshot (a corrupt
        ranking still leaves the catalog's fallbacks to serve), and the error is recorded for `health()`."""
        with self._lock:
            self.last_refresh_at = self._clock()
            current, errors = self._snapshot, []

            def attempt(what: str, load: Callable[[], object], keep: object) -> object:
                try:
                    return load()
                except Exception as error:  # noqa: BLE001 - serve the last good part whatever the reason
                    errors.append(f"{what}: {one_line(error)}")
                    log.warning("cannot read %s", what, exc_info=error)
                    return keep

            ranking, table_version, committed = attempt(
                "offer_rankings",
                lambda: _ranking_of(open_table(self._settings, OFFER_RANKINGS), current),
                (current.ranking, current.table_version, current.committed_at),
            )
            catalog, registry_version = attempt(
                "registry",
                lambda: _catalog_of(open_table(self._settings, REGISTRY), current),
                (current.catalog, current.registry_version),
            )
            segments = (ranked_segments(ranking) if ranking is not None else set()) | audience_segments(catalog)
            as_of = ranking["as_of_date"][0].as_py() if ranking is not None and ranking.num_rows else None
            profiles = attempt(
                "profile_segments",
                lambda: _profiles_of(open_table(self._settings, PROFILE_SEGMENTS), segments, as_of, current),
                current.profiles,
            )
            attribute_names = contextual_attribute_names(catalog)
            attributes = attempt(
                "profile_attributes",
                lambda: _attributes_of(open_table(self._settings, PROFILE_ATTRIBUTES), attribute_names, as_of, current),
                current.attributes,
            )
            cap_counts = attempt(
                "offer_cap_counts",
                lambda: _cap_counts_of(open_table(self._settings, OFFER_CAP_COUNTS), current),
                current.cap_counts,
            )
            self.last_refresh_error = "; ".join(errors) or None
            loaded = (ranking, catalog, profiles, cap_counts, attributes)
            before = (current.ranking, current.catalog, current.profiles, current.cap_counts, current.attributes)
            if all(new is old for new, old in zip(loaded, before)):
                return False
            self._snapshot = build_snapshot(
                ranking, catalog, table_version, registry_version, committed, profiles, cap_counts, attributes
            )
            if cap_counts.as_of is not None and cap_counts.as_of != current.cap_counts.as_of:
                self._served_counts.forget_through(cap_counts.as_of)  # those days are in the nightly counts now
            pa.default_memory_pool().release_unused()  # the build's scratch memory, back to the system
            self.loaded_at = self._clock()
            return True

    def start(self, interval_seconds: float | None = None) -> RankingLookup:
        """Poll for new versions every `interval_seconds` (default: the lookup_refresh_seconds setting)."""
        interval = interval_seconds if interval_seconds is not None else self._settings.lookup_refresh_seconds

        def poll() -> None:
            while not self._stop.wait(interval):
                self.refresh()

        if self._thread is None:
            self._thread = threading.Thread(target=poll, name="offerrank-lookup-refresh", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def top(
        self,
        placement_id: str,
        channel: str,
        profile_id: str | None = None,
        limit: int = 10,
        mode: str = POLICY,
        request_id: str | None = None,
        decision_id: str | None = None,
        context: Mapping[str, object] | None = None,
    ) -> Answer:
        """The first `limit` offers to show on the serving day, from the profile's segment's list when the placement
        is personalized. In `policy` mode an AI-ranked placement's order is decided for this request (random with
        the model's exploration share, else one Thompson draw; random before its first ranking); `published` serves
        the published order. A contextual model's list is scored for the request: the profile's attributes and
        `context` (device, hour; the channel is the request's). `request_id` fixes the request's draws (one is
        made up when it is None)."""
        check_arguments(placement_id, channel, profile_id, limit, decision_id, mode, request_id, context)
        request_id = request_id or secrets.token_hex(16)
        snapshot = self._snapshot  # one read: the whole answer comes from this version
        profile_segments = snapshot.profiles.segments_of(profile_id)
        served = snapshot.placements.get((placement_id, channel))
        chosen = served.get(decision_id) if served is not None else None
        request = (placement_id, channel, mode, request_id, limit, profile_id, profile_segments)
        if chosen is None:
            return self._unranked(snapshot, request, decision_id)
        segment, ranked = chosen.for_segments(profile_segments)
        now = self._clock()
        day = now.date()
        capped_now = (
            frozenset(
                offer_id
                for offer_id in ranked.capped
                if cap_reached(
                    snapshot.capped_offers[offer_id], profile_id, day, snapshot.cap_counts, self._served_counts
                )
            )
            if ranked.capped
            else frozenset()
        )
        lists = snapshot.served(ranked, day, profile_segments, limit, capped_now)
        if not len(lists.rows):  # every ranked offer ended, is capped or is not for this profile
            return self._unranked(snapshot, request, chosen.decision_id, lists.dropped)
        offers, traffic_type = lists.published, MODEL
        explored = mode == POLICY and ranked.exploration_share is not None
        rng = request_generator(request_id, placement_id, channel, snapshot.ranking_version) if explored else None
        if ranked.contextual is not None:
            profile = snapshot.attributes.attributes_of(profile_id) | {
                SEGMENT: segment if segment != ALL_SEGMENTS else None
            }
            active = ranked.contextual.cell(profile, request_context(context, channel, now.hour))
            offers, traffic_type = snapshot.personalize(ranked, lists, active, mode, rng)
        elif explored:
            offers, traffic_type = snapshot.decide(ranked, lists, rng)
        self._count_served(snapshot, offers, profile_id, day)
        return Answer(
            placement_id,
            channel,
            mode=mode,
            request_id=request_id,
            decision_id=chosen.decision_id,
            ranking_version=snapshot.ranking_version,
            table_version=snapshot.table_version,
            as_of_date=snapshot.as_of_date,
            segment=segment,
            traffic_type=traffic_type,
            offers=offers,
            dropped=dict(lists.dropped),
        )

    def _unranked(
        self,
        snapshot: Snapshot,
        request: tuple[str, str, str, str, int, str | None, frozenset[str]],
        decision_id: str | None,
        dropped: dict[str, int] | None = None,
    ) -> Answer:
        """The answer for a placement with nothing ranked to serve: random in `policy` mode when an AI model ranks
        it (as before a model's first training), else the fallback chain."""
        placement_id, channel, mode, request_id, limit, profile_id, profile_segments = request
        if snapshot.catalog is None:
            raise NothingToServe("nothing to serve yet: no catalog was applied and no ranking was published")
        placement = snapshot.catalog.get("placements", placement_id)
        if placement is None:
            raise UnknownPlacement(f"unknown placement {placement_id!r}")
        if placement.channel != channel:
            raise UnknownPlacement(f"placement {placement_id!r} is on channel {placement.channel!r}, not {channel!r}")
        day = self._clock().date()

        def servable(offer_id: str) -> bool:
            offer = snapshot.capped_offers.get(offer_id)
            return offer is None or not cap_reached(offer, profile_id, day, snapshot.cap_counts, self._served_counts)

        chosen_decision, assignment, live = unranked_offers(
            snapshot.catalog, placement_id, decision_id, day, profile_segments
        )
        if dropped is None:  # nothing ranked: the capped offers are dropped from the catalog's live ones
            dropped = {"not_live": 0, "audience": 0, "capped": sum(not servable(o.id) for o in live)}
        else:  # the ranked list's counts, cached with it: the answer gets its own copy
            dropped = dict(dropped)
        live = [o for o in live if servable(o.id)]
        if mode == POLICY and assignment is not None and assignment.method.explorable and live:
            decision = random_order(request_generator(request_id, placement_id, channel, None), len(live), limit)
            offers = tuple(
                RankedOffer(live[at].id, None, RANDOM, rank, RANDOM, float(propensity))
                for rank, (at, propensity) in enumerate(zip(decision.order, decision.propensity), 1)
            )
            traffic_type = RANDOM
        else:
            chain = [link for link in fallback_chain(assignment, live) if servable(link[0])]
            offers = tuple(
                RankedOffer(offer_id, score, reason, rank, MODEL, 1.0)
                for rank, (offer_id, score, reason) in enumerate(chain[:limit], 1)
            )
            traffic_type = MODEL
        self._count_served(snapshot, offers, profile_id, day)
        return Answer(
            placement_id,
            channel,
            mode=mode,
            request_id=request_id,
            decision_id=chosen_decision,
            ranking_version=None,
            table_version=snapshot.table_version,
            as_of_date=None,
            segment=None,
            traffic_type=traffic_type,
            offers=offers,
            dropped=dropped,
        )

    def _count_served(
        self, snapshot: Snapshot, offers: tuple[RankedOffer, ...], profile_id: str | None, day: date
    ) -> None:
        if snapshot.capped_offers:
            served = [o.offer_id for o in offers if o.offer_id in snapshot.capped_offers]
            if served:
                self._served_counts.add(served, profile_id, day)

    def problems(self) -> list[str]:
        """Why the lookup is degraded: nothing published, a table it cannot read, a ranking older than the limit."""
        snapshot, problems = self._snapshot, []
        if snapshot.table_version is None:
            problems.append("no ranking is published: every placement gets its fallback")
        if self.last_refresh_error:
            problems.append(f"the last refresh failed: {self.last_refresh_error}")
        age = self.ranking_age_hours()
        if age is not None and age > self._settings.lookup_max_age_hours:
            problems.append(
                f"the ranking served was published {age:.1f} h ago (limit {self._settings.lookup_max_age_hours:g} "
                "h): the nightly runs are failing or refused"
            )
        return problems

    def ranking_age_hours(self) -> float | None:
        published = self._snapshot.published_at
        if published is None:
            return None
        published = published if published.tzinfo else published.replace(tzinfo=UTC)
        return (self._clock() - published).total_seconds() / 3600

    def health(self) -> dict:
        """What is served, how fresh it is, and why it is degraded if it is."""
        snapshot, now, problems = self._snapshot, self._clock(), self.problems()
        age = self.ranking_age_hours()
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "ranking_version": snapshot.ranking_version,
            "table_version": snapshot.table_version,
            "registry_version": snapshot.registry_version,
            "profiles_version": snapshot.profiles_version,
            "profiles": len(snapshot.profiles),
            "profiles_with_attributes": len(snapshot.attributes),
            "as_of_date": snapshot.as_of_date.isoformat() if snapshot.as_of_date else None,
            "published_at": snapshot.published_at.isoformat() if snapshot.published_at else None,
            "ranking_age_hours": round(age, 3) if age is not None else None,
            "committed_at": snapshot.committed_at.isoformat() if snapshot.committed_at else None,
            "age_seconds": round((now - snapshot.committed_at).total_seconds(), 3) if snapshot.committed_at else None,
            "placements": len(snapshot.placements),
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "last_refresh_at": self.last_refresh_at.isoformat() if self.last_refresh_at else None,
            "last_refresh_error": self.last_refresh_error,
        }


def _ranking_of(table, current: Snapshot) -> tuple[pa.Table | None, int | None, datetime | None]:
    """The served columns of `offer_rankings`' latest version (the current ones while it has not changed)."""
    if table is None:
        return None, None, None
    version = table.version()
    if version == current.table_version:
        return current.ranking, version, current.committed_at
    present = {column.name for column in table.schema().fields}
    ranking = read_arrow(table, [name for name in SERVED_COLUMNS if name in present])
    for name in PARAMETER_COLUMNS:  # a ranking published before contextual models: no parameters
        if name not in present:
            ranking = ranking.append_column(
                name, pa.nulls(ranking.num_rows, OFFER_RANKINGS.arrow_schema().field(name).type)
            )
    return ranking, version, _commit_time(table)


def _catalog_of(table, current: Snapshot) -> tuple[Catalog | None, int | None]:
    """The registry's catalog (the current one while the registry has not changed)."""
    if table is None:
        return None, None
    version = table.version()
    return (current.catalog if version == current.registry_version else catalog_from_rows(read_rows(table))), version


def _profiles_of(table, segments: set[str], as_of: date | None, current: Snapshot) -> ProfileIndex:
    """The memberships of `segments` the ranking of `as_of` used (the current index while none of that changed)."""
    if table is None or not segments:
        return NO_PROFILES
    source = (table.version(), frozenset(segments), as_of)
    if current.profiles.source == source:
        return current.profiles
    return load_profiles(table, segments, as_of or date.max, source)


def _attributes_of(table, names: list[str], as_of: date | None, current: Snapshot) -> AttributeIndex:
    """The contextual models' profile attributes in the snapshot the ranking of `as_of` used (the current index
    while none of that changed)."""
    if table is None or not names:
        return NO_ATTRIBUTES
    source = (table.version(), tuple(names), as_of)
    if current.attributes.source == source:
        return current.attributes
    latest = latest_partition(table, "snapshot_date", as_of or date.max)
    if latest is None:
        return AttributeIndex(names=names, source=source)
    import pyarrow.dataset as ds

    rows = read_arrow(
        table,
        ["profile_id", "attribute", "value"],
        [("snapshot_date", "=", latest.isoformat())],
        ds.field("attribute").isin(names),
    )
    return AttributeIndex.build(rows, names, source)


def _cap_counts_of(table, current: Snapshot) -> CapCounts:
    """The latest date's frequency-capping counts (the current ones while the table has not changed)."""
    if table is None:
        return NO_CAP_COUNTS
    version = table.version()
    if version == current.cap_counts.source:
        return current.cap_counts
    dates = [date.fromisoformat(p["as_of_date"]) for p in table.partitions()]
    if not dates:
        return CapCounts(source=version)
    as_of = max(dates)
    rows = read_arrow(table, ["offer_id", "cap", "profile_id", "events"], [("as_of_date", "=", as_of.isoformat())])
    events = {
        (offer_id, cap, profile_id): events
        for offer_id, cap, profile_id, events in zip(*(rows[name].to_pylist() for name in rows.column_names))
    }
    return CapCounts(as_of, events, version)


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


def _commit_time(table) -> datetime:
    millis = table.history(1)[0]["timestamp"]
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
