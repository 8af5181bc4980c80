"""Channel lookups: the ranked offers of a placement on a channel, always from one complete published ranking.

Reads `offer_rankings` (its latest Delta version: one complete ranking), `registry` (the catalog, for
fallbacks and to tell unknown placements) and, when the ranking has per-segment lists, `profile_segments` (the
snapshot the ranking's date used, to find a profile's segments) with `deltalake`, so no JVM starts. A `RankingLookup`
keeps the loaded ranking as one immutable snapshot in memory and swaps in a newly published version whole, so a lookup
never sees a half-loaded version; `start()` polls the tables' versions in a background thread.

    lookup = RankingLookup(load_settings()).start()
    answer = lookup.top("home-hero", "web", profile_id="p-1", limit=3, explore=True)
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from offerrank.bandit import run_seed
from offerrank.catalog import CHANNELS, ID_PATTERN, Catalog
from offerrank.settings import Settings
from offerrank.tables import ALL_SEGMENTS, OFFER_RANKINGS, PROFILE_SEGMENTS, REGISTRY, latest_on_or_before
from offerrank.warehouse import catalog_from_rows, open_table, read_rows

PROFILE_PATTERN = r"^[A-Za-z0-9._:@+=/-]{1,256}$"
_ID = re.compile(ID_PATTERN)


class LookupRefused(ValueError):
    """A lookup that cannot be answered: a malformed argument, a decision that does not assign the placement."""


class UnknownPlacement(LookupRefused):
    """The catalog has no such placement on that channel."""


class NothingToServe(LookupRefused):
    """The warehouse holds neither a catalog nor a published ranking yet."""


@dataclass(frozen=True)
class RankedOffer:
    offer_id: str
    rank: int
    score: float | None
    reason: str  # model | cold_start | priority | formula | fallback | priority_fallback


OFFER_FIELDS = [f.name for f in dataclasses.fields(RankedOffer)]
# What a lookup loads of the published ranking: what it indexes by, the posteriors, and every served field.
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
    *OFFER_FIELDS,
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
    explored: bool
    offers: tuple[RankedOffer, ...]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Ranked:
    """One ranked list of a published ranking, ready to serve."""

    offers: tuple[RankedOffer, ...]
    alpha: np.ndarray | None  # posteriors for serve-time exploration (AI-ranked lists only)
    beta: np.ndarray | None


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
    profiles_version: int | None = None
    ranking_version: int | None = None
    as_of_date: date | None = None
    published_at: datetime | None = None
    committed_at: datetime | None = None
    catalog: Catalog | None = None
    placements: dict[tuple[str, str], dict[str | None, _Placement]] = field(default_factory=dict)
    profile_segments: dict[str, frozenset[str]] = field(default_factory=dict)


def ranked_segments(rows: list[dict]) -> set[str]:
    """The segments a ranking has per-segment lists for (besides all traffic)."""
    return {row["segment"] for row in rows} - {ALL_SEGMENTS}


def build_snapshot(
    rows: list[dict],
    catalog: Catalog | None,
    table_version: int | None = None,
    registry_version: int | None = None,
    committed_at: datetime | None = None,
    profile_segments: dict[str, frozenset[str]] | None = None,
    profiles_version: int | None = None,
) -> Snapshot:
    """Index the rows of one `offer_rankings` version by (placement, channel), decision and segment."""
    grouped: dict[tuple[str, str, str], dict[str, list[dict]]] = {}
    for row in rows:
        grouped.setdefault((row["placement_id"], row["channel"], row["decision_id"]), {}).setdefault(
            row["segment"], []
        ).append(row)
    placements: dict[tuple[str, str], dict[str | None, _Placement]] = {}
    for (placement_id, channel, decision_id), segments in sorted(grouped.items()):
        by_segment = {}
        for segment, group in segments.items():
            group.sort(key=lambda r: r["rank"])
            explorable = method_explorable(catalog, decision_id, placement_id) and all(
                r["alpha"] is not None and r["beta"] is not None for r in group
            )
            by_segment[segment] = _Ranked(
                tuple(RankedOffer(**{name: r[name] for name in OFFER_FIELDS}) for r in group),
                np.array([r["alpha"] for r in group], float) if explorable else None,
                np.array([r["beta"] for r in group], float) if explorable else None,
            )
        model = catalog.get("ai_models", next(iter(segments.values()))[0]["model_name"]) if catalog else None
        order = tuple(s for s in (model.segments if model else sorted(segments)) if s in segments and s != ALL_SEGMENTS)
        served = _Placement(decision_id, by_segment, order)
        by_decision = placements.setdefault((placement_id, channel), {})
        by_decision[decision_id] = served
        by_decision.setdefault(None, served)  # the first decision by id answers when none is named
    first = rows[0] if rows else {}
    return Snapshot(
        table_version,
        registry_version,
        profiles_version,
        first.get("ranking_version"),
        first.get("as_of_date"),
        first.get("published_at"),
        committed_at,
        catalog,
        placements,
        profile_segments or {},
    )


def method_explorable(catalog: Catalog | None, decision_id: str, placement_id: str) -> bool:
    """Whether the placement's ranking method lets the lookup re-draw the published order per request."""
    decision = catalog.get("decisions", decision_id) if catalog else None
    assignment = next((a for a in decision.placements if a.placement == placement_id), None) if decision else None
    return assignment is not None and assignment.method.explorable


def load_profile_segments(table, segments: set[str], as_of: date) -> dict[str, frozenset[str]]:
    """Profile id -> its segments among `segments`, from the latest snapshot on or before `as_of` in
    `profile_segments`."""
    latest = latest_on_or_before((date.fromisoformat(p["snapshot_date"]) for p in table.partitions()), as_of)
    if latest is None:
        return {}
    import pyarrow.dataset as ds

    rows = read_rows(
        table,
        ["profile_id", "segment"],
        [("snapshot_date", "=", latest.isoformat())],
        ds.field("segment").isin(sorted(segments)),
    )
    members: dict[str, set[str]] = {}
    for row in rows:
        members.setdefault(row["profile_id"], set()).add(row["segment"])
    return {profile: frozenset(names) for profile, names in members.items()}


def fallback_offers(
    catalog: Catalog, placement_id: str, decision_id: str | None, on: date
) -> tuple[str | None, list[RankedOffer]]:
    """For a placement with no published ranking: its decision's fallback offer, then its live offers by priority."""
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
    ordered: list[tuple[str, float | None, str]] = []
    if assignment:
        ordered.append((assignment.fallback_offer, None, "fallback"))
    ordered += [
        (o.id, float(o.priority), "priority_fallback")
        for o in sorted(live, key=lambda o: (-o.priority, o.id))
        if not assignment or o.id != assignment.fallback_offer
    ]
    return chosen_decision, [
        RankedOffer(offer_id=offer_id, rank=i, score=score, reason=reason)
        for i, (offer_id, score, reason) in enumerate(ordered, 1)
    ]


def explore_order(served: _Ranked, seed: int) -> tuple[RankedOffer, ...]:
    """The offers re-ordered by one Thompson draw from each offer's published Beta posterior."""
    draws = np.random.default_rng(seed).beta(served.alpha, served.beta)
    order = np.argsort(-draws, kind="stable")
    return tuple(dataclasses.replace(served.offers[i], rank=rank) for rank, i in enumerate(order, 1))


class RankingLookup:
    """Answers channel lookups from the latest published ranking of one warehouse."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None):
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._snapshot = Snapshot()
        self._lock = threading.Lock()  # one refresh at a time; lookups never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded_at: datetime | None = None
        self.last_refresh_at: datetime | None = None
        self.last_refresh_error: str | None = None
        self.refresh()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> bool:
        """Load the tables' latest versions if they changed; True when a new snapshot is being served.

        A failed refresh keeps serving the current snapshot and records the error for `health()`."""
        with self._lock:
            self.last_refresh_at = self._clock()
            try:
                tables = [open_table(self._settings, table) for table in (OFFER_RANKINGS, REGISTRY, PROFILE_SEGMENTS)]
                rankings, registry, profiles = tables
                versions = tuple(table.version() if table else None for table in tables)
                current = self._snapshot
                if versions == (current.table_version, current.registry_version, current.profiles_version):
                    self.last_refresh_error = None
                    return False
                catalog = (
                    current.catalog
                    if versions[1] == current.registry_version
                    else catalog_from_rows(read_rows(registry))
                    if registry
                    else None
                )
                rows = read_rows(rankings, SERVED_COLUMNS) if rankings else []
                segments = ranked_segments(rows)
                members = (
                    load_profile_segments(profiles, segments, rows[0]["as_of_date"]) if profiles and segments else {}
                )
                committed = _commit_time(rankings) if rankings else None
                self._snapshot = build_snapshot(
                    rows, catalog, versions[0], versions[1], committed, members, versions[2]
                )
                self.loaded_at = self._clock()
                self.last_refresh_error = None
                return True
            except Exception as error:  # noqa: BLE001 - serve the last good snapshot whatever the reason
                self.last_refresh_error = f"{type(error).__name__}: {error}"
                return False

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
        explore: bool = False,
        decision_id: str | None = None,
    ) -> Answer:
        """The first `limit` offers to show, from the profile's segment's list when the placement is personalized;
        with `explore`, drawn per profile by Thompson sampling."""
        check_arguments(placement_id, channel, profile_id, limit, decision_id)
        snapshot = self._snapshot  # one read: the whole answer comes from this version
        served = snapshot.placements.get((placement_id, channel))
        chosen = served.get(decision_id) if served is not None else None
        if chosen is None:
            return self._fallback(snapshot, placement_id, channel, limit, decision_id)
        segment, ranked = chosen.for_segments(snapshot.profile_segments.get(profile_id, frozenset()))
        offers, explored = ranked.offers, explore and ranked.alpha is not None
        if explored:
            offers = explore_order(ranked, run_seed(profile_id or "", placement_id, channel, snapshot.ranking_version))
        return Answer(
            placement_id,
            channel,
            chosen.decision_id,
            snapshot.ranking_version,
            snapshot.table_version,
            snapshot.as_of_date,
            segment,
            explored,
            offers[:limit],
        )

    def _fallback(
        self, snapshot: Snapshot, placement_id: str, channel: str, limit: int, decision_id: str | None
    ) -> Answer:
        if snapshot.catalog is None:
            raise NothingToServe("nothing to serve yet: no catalog was applied and no ranking was published")
        placement = snapshot.catalog.get("placements", placement_id)
        if placement is None:
            raise UnknownPlacement(f"unknown placement {placement_id!r}")
        if placement.channel != channel:
            raise UnknownPlacement(f"placement {placement_id!r} is on channel {placement.channel!r}, not {channel!r}")
        chosen_decision, offers = fallback_offers(snapshot.catalog, placement_id, decision_id, self._clock().date())
        return Answer(
            placement_id,
            channel,
            chosen_decision,
            None,
            snapshot.table_version,
            None,
            None,
            False,
            tuple(offers[:limit]),
        )

    def health(self) -> dict:
        """What is served and how fresh it is."""
        snapshot, now = self._snapshot, self._clock()
        return {
            "status": "ok" if snapshot.table_version is not None and self.last_refresh_error is None else "degraded",
            "ranking_version": snapshot.ranking_version,
            "table_version": snapshot.table_version,
            "registry_version": snapshot.registry_version,
            "profiles_version": snapshot.profiles_version,
            "profiles": len(snapshot.profile_segments),
            "as_of_date": snapshot.as_of_date.isoformat() if snapshot.as_of_date else None,
            "published_at": snapshot.published_at.isoformat() if snapshot.published_at else None,
            "committed_at": snapshot.committed_at.isoformat() if snapshot.committed_at else None,
            "age_seconds": round((now - snapshot.committed_at).total_seconds(), 3) if snapshot.committed_at else None,
            "placements": len(snapshot.placements),
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "last_refresh_at": self.last_refresh_at.isoformat() if self.last_refresh_at else None,
            "last_refresh_error": self.last_refresh_error,
        }


def check_arguments(
    placement_id: str, channel: str, profile_id: str | None, limit: int, decision_id: str | None
) -> None:
    """LookupRefused naming the first malformed argument."""
    if not _ID.match(placement_id):
        raise LookupRefused(f"placement id must be 1-128 letters, digits or . _ : - (got {placement_id[:140]!r})")
    if channel not in CHANNELS:
        raise LookupRefused(f"channel must be one of {', '.join(CHANNELS)} (got {channel[:40]!r})")
    if profile_id is not None and not re.match(PROFILE_PATTERN, profile_id):
        raise LookupRefused("profile id must be 1-256 letters, digits or . _ : @ + = / -")
    if decision_id is not None and not _ID.match(decision_id):
        raise LookupRefused(f"decision id must be 1-128 letters, digits or . _ : - (got {decision_id[:140]!r})")
    if not 1 <= limit <= 1000:
        raise LookupRefused(f"limit must be between 1 and 1000 (got {limit})")


def _commit_time(table) -> datetime:
    millis = table.history(1)[0]["timestamp"]
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
