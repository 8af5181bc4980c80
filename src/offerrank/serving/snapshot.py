"""One published ranking as a lookup serves it: an immutable `Snapshot` of the ranking's rows column by column in
numpy arrays (a refresh builds few Python objects, so serving threads are not stalled while a new version loads),
indexed by placement, channel, decision and segment, with the catalog version beside it, the profile indexes and
the frequency-capping counts. Reads and writes no table: `offerrank.serving.loaders` loads what
`build_snapshot` indexes; each snapshot caches the lists, policies and contextual cells its answers reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from offerrank.catalog import Catalog, DecisionPlacement, Offer
from offerrank.learning.bandit import posterior_table, run_seed
from offerrank.learning.contextual.serving import ContextualList
from offerrank.serving.answers import (
    POLICY,
    PUBLISHED_FIELDS,
    RankedOffer,
    as_random,
    offers_of,
    ranked_offers,
)
from offerrank.serving.caps import NO_CAP_COUNTS, CapCounts
from offerrank.serving.policy import (
    MODEL,
    RANDOM,
    Contenders,
    ServingPolicy,
    contender_slot_probabilities,
    slot_probabilities,
    split_by_cold_start,
)
from offerrank.serving.profiles import NO_ATTRIBUTES, NO_PROFILES, AttributeIndex, ProfileIndex, run_starts
from offerrank.tables import ALL_SEGMENTS, Reason

CELLS_KEPT = 2_000  # contextual lists' answers kept per request cell (least recently used first out)
POLICIES_KEPT = 2_000  # serving policies kept per list of rows and limit (~0.4 MB each for 200 offers, 10 slots)


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
    # whether the current catalog still makes each row's offer eligible for its list (a published fallback row:
    # whether it is still the list's fallback offer); filled list by list by `build_snapshot`
    eligible: np.ndarray

    @classmethod
    def of(cls, ranking: pa.Table) -> _Columns:
        def floats(name: str) -> np.ndarray:
            return pc.fill_null(ranking[name].combine_chunks().cast(pa.float64()), np.nan).to_numpy()

        return cls(
            {name: _Field.of(ranking[name]) for name in PUBLISHED_FIELDS},
            floats("alpha"),
            floats("beta"),
            pc.equal(ranking["reason"], Reason.FALLBACK.value).combine_chunks().to_numpy(zero_copy_only=False),
            np.ones(ranking.num_rows, bool),
        )

    @property
    def offer(self) -> np.ndarray:
        """Each row's offer, as a code into `offer_ids`."""
        return self.fields["offer_id"].data

    @property
    def offer_ids(self) -> tuple[str, ...]:
        distinct = self.fields["offer_id"].distinct
        assert distinct is not None  # a string column: its values are codes into `distinct`
        return distinct

    def published_values(self, rows: np.ndarray) -> list[tuple]:
        """Each of `rows`' published fields (in `PUBLISHED_FIELDS` order), as Python objects."""
        return list(zip(*(column.take(rows) for column in self.fields.values())))


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
class Ranked:
    """One ranked list of a published ranking: rows [start, stop) of the snapshot's columns, and the run that ranked
    it (a list kept from an earlier run keeps that run's date and id)."""

    start: int
    stop: int
    as_of_date: date
    run_id: str | None
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


# a list's published fields as its policy's model and random traffic serve them (`as_random`)
_Values = tuple[list[tuple], list[tuple]]


@dataclass(frozen=True)
class _Placement:
    """One decision placement x channel: its ranked list per segment, and the order a profile's segments are
    tried in."""

    decision_id: str
    by_segment: dict[str, Ranked]
    segment_order: tuple[str, ...]  # a personalized model's segments as it lists them

    def for_segments(self, profile_segments: frozenset[str]) -> tuple[str, Ranked]:
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
    _served: dict[tuple, _Served] = field(default_factory=dict, compare=False, repr=False)
    # (list, its servable rows, slots) -> their slot probabilities and contenders: another day reuses them
    _policies: dict[tuple[int, bytes, int], tuple[_Values, ServingPolicy]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # (list, its servable rows, slots, request cell) -> a contextual list's answers for that cell
    _cells: dict[tuple[int, bytes, int, bytes], tuple[_Values, ServingPolicy | None, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def profiles_version(self) -> int | None:
        return self.profiles.source[0] if self.profiles.source else None

    def _built(self) -> tuple[_Columns, _Servable]:
        """The columns of the ranking and what the catalog says of its offers: a ranked list to serve is only ever
        taken from a snapshot built from rows."""
        assert self.columns is not None and self.servable is not None, "a ranked list of a snapshot without rows"
        return self.columns, self.servable

    def served(
        self, ranked: Ranked, on: date, profile_segments: frozenset[str], limit: int, capped: frozenset[str]
    ) -> _Served:
        """`served_rows` and the first `limit` of their offers in the published order, computed once per list, day,
        limit, capped offers and (for a list with audiences) profile segments: most lookups reuse one answer's."""
        key = (ranked.start, on, profile_segments if ranked.restricted else None, limit, capped)
        found = self._served.get(key)
        if found is None:
            if len(self._served) > 100_000:  # many profile-segment combinations: start over rather than grow
                self._served.clear()
            rows, dropped = self.served_rows(ranked, on, profile_segments, capped)
            published = ranked_offers(self._built()[0].published_values(rows[:limit]))
            found = self._served[key] = _Served(rows, dropped, published, limit)
        return found

    def served_rows(
        self, ranked: Ranked, on: date, profile_segments: frozenset[str], capped: frozenset[str] = frozenset()
    ) -> tuple[np.ndarray, dict[str, int]]:
        """The rows of a ranked list that may be served on day `on` to a profile in `profile_segments`, less the
        `capped` offers, in order, and how many were dropped by cause. An offer the catalog no longer makes eligible
        for the list is dropped first; a published fallback row (nothing was eligible) is served whatever the day
        and audience while it is still the list's fallback offer."""
        rows = np.arange(ranked.start, ranked.stop)
        columns, servable = self._built()
        offers, fallback, eligible = columns.offer[rows], columns.fallback[rows], columns.eligible[rows]
        day = np.datetime64(on, "D")
        live = eligible & (fallback | ((servable.first_day[offers] <= day) & (day <= servable.last_day[offers])))
        keep = live.copy()
        for at in np.flatnonzero(live & servable.restricted[offers] & ~fallback):
            keep[at] = not servable.audiences[offers[at]].isdisjoint(profile_segments)
        shown = keep.copy()
        if capped:
            codes = [code for code, offer_id in enumerate(columns.offer_ids) if offer_id in capped]
            keep &= ~np.isin(offers, codes)
        dropped = {
            "not_eligible": int((~eligible).sum()),
            "not_live": int((eligible & ~live).sum()),
            "audience": int((live & ~shown).sum()),
            "capped": int((shown & ~keep).sum()),
        }
        return rows[keep], dropped

    def decide(self, ranked: Ranked, served: _Served, rng: np.random.Generator) -> tuple[tuple[RankedOffer, ...], str]:
        """One request's order of a list served by the policy: its offers, and its traffic type."""
        rows, policy = served.rows, served.policy
        if policy is None:
            # one policy per list of rows and limit, shared by the served variants (days, profiles) that have them
            key = (ranked.start, rows.tobytes(), served.limit)
            found = self._policies.get(key)
            if found is None:
                if len(self._policies) > POLICIES_KEPT:  # many capped or audience combinations: start over
                    self._policies.clear()
                assert ranked.exploration_share is not None  # only a list with an exploration share has a policy
                columns = self._built()[0]
                seed = run_seed(self.ranking_version, ranked.start, len(rows))
                table = posterior_table(columns.alpha[rows], columns.beta[rows])
                published = columns.published_values(rows)
                cold = np.array(columns.fields["reason"].take(rows)) == Reason.COLD_START.value
                table, explored_first = split_by_cold_start(table, cold, ranked.exploration_share)
                in_slot = slot_probabilities(table, served.limit, seed)
                made = ServingPolicy(
                    Contenders.of(table, in_slot), ranked.exploration_share, in_slot, served.limit, explored_first
                )
                found = self._policies[key] = (published, as_random(published)), made
            served.values, policy = found
            served.policy = policy  # set last: another thread seeing it sees the values too
        values = served.values
        assert values is not None  # set before the policy
        order, traffic_type, propensity = policy.decide(rng)
        chosen = values[traffic_type == RANDOM]
        return offers_of(map(chosen.__getitem__, order), traffic_type, propensity), traffic_type

    def personalize(
        self, ranked: Ranked, served: _Served, active: np.ndarray, mode: str, rng: np.random.Generator | None
    ) -> tuple[tuple[RankedOffer, ...], str]:
        """One request's order of a contextual list for the request's cell (`active` features): each trained offer
        scored by its posterior for the cell (reason `personalized`), the others by their Beta posterior; the
        policy's random share and Thompson draw in `policy` mode, by mean score in `published` mode."""
        rows, limit = served.rows, served.limit
        key = (ranked.start, rows.tobytes(), limit, active.tobytes())
        found = self._cells.get(key)
        if found is None:
            if len(self._cells) >= CELLS_KEPT:  # the least recently used cell goes (another thread may have too)
                oldest = next(iter(self._cells), None)
                if oldest is not None:
                    self._cells.pop(oldest, None)
            columns = self._built()[0]
            assert ranked.contextual is not None  # only a contextual list is personalized
            cell = ranked.contextual.cell_model(rows - ranked.start, columns.alpha[rows], columns.beta[rows], active)
            scored = [
                (published[0], score, Reason.PERSONALIZED.value) if personalized else published
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
            found = self._cells[key] = ((scored, as_random(scored)), policy, by_score)
        else:
            self._cells[key] = self._cells.pop(key, found)  # the most recently used: last to go
        values, policy, by_score = found
        if mode == POLICY and policy is not None:
            assert rng is not None  # the lookup makes one for a list with a policy in `policy` mode
            order, traffic_type, propensity = policy.decide(rng)
            chosen = values[traffic_type == RANDOM]
            return offers_of(map(chosen.__getitem__, order), traffic_type, propensity), traffic_type
        return ranked_offers([values[0][at] for at in by_score.tolist()]), MODEL


GROUP_COLUMNS = ["placement_id", "channel", "decision_id", "segment"]


def newest_as_of_date(ranking: pa.Table | None) -> date | None:
    """The newest data day of a published ranking: a list kept from an earlier run (held back, or its method
    failed) carries that run's older date, whichever row sorts first."""
    return pc.max(ranking["as_of_date"]).as_py() if ranking is not None and ranking.num_rows else None


class _Common(TypedDict):
    """The fields of a `Snapshot` that a build sets whether or not there are rows."""

    table_version: int | None
    registry_version: int | None
    committed_at: datetime | None
    catalog: Catalog | None
    profiles: ProfileIndex
    attributes: AttributeIndex
    cap_counts: CapCounts
    capped_offers: dict[str, Offer]


class _CatalogIndex:
    """What a snapshot build asks the catalog for each of its lists, by id (a valid catalog's ids are unique, as
    are a decision's placements): AI models, whether a list is still served (its decision is active and still
    assigns the placement, on the list's channel), the offers it may still serve, and the exploration share of the
    per-request policy of a decision's placement (None: its ranking method gives a fixed order). Without a catalog
    (none applied, or the registry cannot be read) every published list is served as it is."""

    def __init__(self, catalog: Catalog | None, offer_ids: tuple[str, ...] = ()):
        self.catalog = catalog
        self.models = {model.name: model for model in catalog.ai_models} if catalog else {}
        self.assignments: dict[tuple[str, str], DecisionPlacement] = {
            (decision.id, assignment.placement): assignment
            for decision, assignment in (catalog.active_assignments() if catalog else ())
        }
        self._code_of = {offer_id: code for code, offer_id in enumerate(offer_ids)}
        self._eligible: dict[tuple[str, str], tuple[np.ndarray, int]] = {}

    def serves(self, decision_id: str, placement_id: str, channel: str) -> bool:
        if self.catalog is None:
            return True
        assigned = (decision_id, placement_id) in self.assignments
        return assigned and self.catalog.channel_of(placement_id) == channel

    def eligible_codes(self, decision_id: str, placement_id: str) -> tuple[np.ndarray, int] | None:
        """The offers a decision placement's lists may serve and its fallback offer, as codes into the ranking's
        offer ids (-1: not in it); None: any (no catalog). Computed once per decision placement."""
        if self.catalog is None:
            return None
        key = (decision_id, placement_id)
        if key not in self._eligible:
            assignment = self.assignments[key]
            eligible = [self._code_of.get(offer.id, -1) for offer in self.catalog.eligible_offers(assignment)]
            self._eligible[key] = np.array(eligible, np.int64), self._code_of.get(assignment.fallback_offer, -1)
        return self._eligible[key]

    def exploration_share(self, decision_id: str, placement_id: str) -> float | None:
        assignment = self.assignments.get((decision_id, placement_id))
        if assignment is None or not assignment.method.explorable:
            return None
        assert self.catalog is not None  # the assignments are the catalog's
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
    common: _Common = {
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
    first_rows = pa.array(starts)
    models = ranking["model_name"].take(first_rows).to_pylist()
    runs = ranking.select(["as_of_date", "run_id"]).take(first_rows).to_pylist()
    lists: dict[tuple[str, str, str], dict[str, Ranked]] = {}
    offer_names = columns.offer_ids
    model_names: dict[tuple[str, str, str], str] = {}
    index = _CatalogIndex(catalog, offer_names)
    # per list, in a few numpy calls rather than a few per list (the refresh holds the GIL in Python code):
    # whether it has posteriors (no NaN, no published fallback: nothing eligible to draw from), and audiences
    no_posteriors = np.logical_or.reduceat(np.isnan(columns.alpha) | np.isnan(columns.beta) | columns.fallback, starts)
    restricted_lists = np.logical_or.reduceat(servable.restricted[columns.offer], starts)
    for key, start, stop, model_name, run, lacks_posteriors, restricted in zip(
        keys.take(first_rows).to_pylist(),
        starts.tolist(),
        stops.tolist(),
        models,
        runs,
        no_posteriors.tolist(),
        restricted_lists.tolist(),
    ):
        placement_id, channel, decision_id, segment = key.split("\x1f")
        if not index.serves(decision_id, placement_id, channel):
            continue  # the decision is no longer active or no longer assigns the placement: its list is not served
        eligible = index.eligible_codes(decision_id, placement_id)
        if eligible is not None:
            codes, fallback_code = eligible
            in_list = columns.offer[start:stop]
            columns.eligible[start:stop] = np.where(
                columns.fallback[start:stop], in_list == fallback_code, np.isin(in_list, codes)
            )
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
        lists.setdefault((placement_id, channel, decision_id), {})[segment] = Ranked(
            start, stop, run["as_of_date"], run["run_id"], share, restricted, capped, contextual
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
    return Snapshot(
        **common,
        ranking_version=pc.max(ranking["ranking_version"]).as_py(),
        as_of_date=newest_as_of_date(ranking),
        published_at=pc.max(ranking["published_at"]).as_py(),
        ranking=ranking,
        columns=columns,
        servable=servable,
        placements=placements,
    )
