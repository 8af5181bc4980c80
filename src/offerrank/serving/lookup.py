"""Channel lookups: the ranked offers of a placement on a channel, always from one complete published ranking.

Reads `offer_rankings` (its latest Delta version: one complete ranking), `registry` (the catalog: offers' dates and
audiences, fallbacks, unknown placements), `profile_segments` and `profile_attributes` when the ranking has
per-segment lists, offers have audiences or models are contextual, and `offer_cap_counts`, all with `deltalake`
(`offerrank.serving.loaders`), so no JVM starts; writes nothing. A `RankingLookup` keeps the loaded ranking as one
immutable `Snapshot` (`offerrank.serving.snapshot`), swaps in a newly published version whole, so a lookup never sees
a half-loaded version, and keeps serving the last good one when a table cannot be read; `start()` polls the tables'
versions in a background thread.

What is served is judged on the serving day (the UTC date of the lookup's clock): an offer not live that day, or
whose audience the profile is not in, is dropped and the next ranked offers move up; a list left empty serves the
placement's fallback chain. An AI-ranked list is served by the policy of `offerrank.serving.policy`, decided per request
(random share, Thompson draw), and every offer says what the channel logs with it (traffic type, propensity).

    lookup = RankingLookup(load_settings()).start()
    answer = lookup.top("home-hero", "web", profile_id="p-1", limit=3)
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pyarrow as pa

from offerrank.engines.delta_rs import one_line, open_table
from offerrank.learning.contextual.features import SEGMENT
from offerrank.learning.contextual.serving import contextual_attribute_names, request_context
from offerrank.serving.answers import (
    POLICY,
    Answer,
    NothingToServe,
    RankedOffer,
    Request,
    UnknownPlacement,
    check_arguments,
)
from offerrank.serving.caps import ServedCounts, cap_reached
from offerrank.serving.fallbacks import fallback_chain, unranked_offers
from offerrank.serving.loaders import (
    attributes_of,
    audience_segments,
    cap_counts_of,
    catalog_of,
    profiles_of,
    ranked_segments,
    ranking_of,
)
from offerrank.serving.policy import MODEL, RANDOM, random_order, request_generator
from offerrank.serving.snapshot import Ranked, Snapshot, build_snapshot, newest_as_of_date
from offerrank.settings import Settings
from offerrank.tables import (
    ALL_SEGMENTS,
    OFFER_CAP_COUNTS,
    OFFER_RANKINGS,
    PROFILE_ATTRIBUTES,
    PROFILE_SEGMENTS,
    REGISTRY,
    Reason,
)

log = logging.getLogger("offerrank.serving.lookup")

_Loaded = TypeVar("_Loaded")


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
        self.last_refresh_error: str | None = None  # per table that failed: its name and the error's kind, no paths
        self.last_refresh_detail: str | None = None  # with the messages (they may name paths): not served
        self.refresh()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> bool:
        """Load the tables' latest versions if they changed; True when a new snapshot is being served.

        Each table is loaded on its own: one that cannot be read keeps its part of the current snapshot (a corrupt
        ranking still leaves the catalog's fallbacks to serve), and the error is recorded: for `health()`, which
        anyone who reaches the service may read, only the table's name and the error's kind (an error's message may
        name the warehouse's paths); its message in `last_refresh_detail` and the log."""
        with self._lock:
            self.last_refresh_at = self._clock()
            current, errors, details = self._snapshot, [], []

            def attempt(what: str, load: Callable[[], _Loaded], keep: _Loaded) -> _Loaded:
                try:
                    return load()
                except Exception as error:  # noqa: BLE001 - serve the last good part whatever the reason
                    errors.append(f"{what}: {type(error).__name__}")
                    details.append(f"{what}: {one_line(error)}")
                    log.warning("cannot read %s", what, exc_info=error)
                    return keep

            ranking, table_version, committed = attempt(
                "offer_rankings",
                lambda: ranking_of(open_table(self._settings, OFFER_RANKINGS), current),
                (current.ranking, current.table_version, current.committed_at),
            )
            catalog, registry_version = attempt(
                "registry",
                lambda: catalog_of(open_table(self._settings, REGISTRY), current),
                (current.catalog, current.registry_version),
            )
            segments = (ranked_segments(ranking) if ranking is not None else set()) | audience_segments(catalog)
            as_of = newest_as_of_date(ranking)
            profiles = attempt(
                "profile_segments",
                lambda: profiles_of(open_table(self._settings, PROFILE_SEGMENTS), segments, as_of, current),
                current.profiles,
            )
            attribute_names = contextual_attribute_names(catalog)
            attributes = attempt(
                "profile_attributes",
                lambda: attributes_of(open_table(self._settings, PROFILE_ATTRIBUTES), attribute_names, as_of, current),
                current.attributes,
            )
            cap_counts = attempt(
                "offer_cap_counts",
                lambda: cap_counts_of(open_table(self._settings, OFFER_CAP_COUNTS), current),
                current.cap_counts,
            )
            self.last_refresh_error = "; ".join(errors) or None
            self.last_refresh_detail = "; ".join(details) or None
            loaded = (ranking, catalog, profiles, cap_counts, attributes)
            before = (current.ranking, current.catalog, current.profiles, current.cap_counts, current.attributes)
            if all(new is old for new, old in zip(loaded, before)):
                return False
            self._snapshot = build_snapshot(
                ranking, catalog, table_version, registry_version, committed, profiles, cap_counts, attributes
            )
            if cap_counts.as_of is not None and cap_counts.as_of != current.cap_counts.as_of:
                # those days are in the nightly counts now; not the serving day's (counts dated it are not used)
                self._served_counts.forget_through(min(cap_counts.as_of, self._clock().date() - timedelta(days=1)))
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
        request = Request(placement_id, channel, mode, request_id, limit, profile_id, profile_segments)
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
        elif rng is not None:  # explored
            offers, traffic_type = snapshot.decide(ranked, lists, rng)
        return self._answer(
            snapshot, request, day, offers, traffic_type, lists.dropped, chosen.decision_id, (segment, ranked)
        )

    def _unranked(
        self,
        snapshot: Snapshot,
        request: Request,
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
            dropped = {"not_eligible": 0, "not_live": 0, "audience": 0, "capped": sum(not servable(o.id) for o in live)}
        live = [o for o in live if servable(o.id)]
        if mode == POLICY and assignment is not None and assignment.method.explorable and live:
            decision = random_order(request_generator(request_id, placement_id, channel, None), len(live), limit)
            offers = tuple(
                RankedOffer(live[at].id, None, Reason.RANDOM.value, rank, RANDOM, float(propensity))
                for rank, (at, propensity) in enumerate(zip(decision.order, decision.propensity), 1)
            )
            traffic_type = RANDOM
        else:
            chain = [link for link in fallback_chain(snapshot.catalog, assignment, live, day) if servable(link[0])]
            offers = tuple(
                RankedOffer(offer_id, score, reason, rank, MODEL, 1.0)
                for rank, (offer_id, score, reason) in enumerate(chain[:limit], 1)
            )
            traffic_type = MODEL
        return self._answer(snapshot, request, day, offers, traffic_type, dropped, chosen_decision)

    def _answer(
        self,
        snapshot: Snapshot,
        request: Request,
        day: date,
        offers: tuple[RankedOffer, ...],
        traffic_type: str,
        dropped: dict[str, int],
        decision_id: str | None,
        listed: tuple[str, Ranked] | None = None,
    ) -> Answer:
        """The answer serving `offers` to `request` on `day`: from the snapshot's ranking when a `listed` (segment,
        list) answered, with the list's own data day and run, from the catalog alone when it is None (no ranking
        version, date or run then). What it serves of capped offers is counted, and it gets its own copy of
        `dropped` (a ranked list's counts are cached with it)."""
        if snapshot.capped_offers:
            served = [o.offer_id for o in offers if o.offer_id in snapshot.capped_offers]
            if served:
                self._served_counts.add(served, request.profile_id, day)
        segment, ranked = listed if listed is not None else (None, None)
        return Answer(
            request.placement_id,
            request.channel,
            mode=request.mode,
            request_id=request.request_id,
            decision_id=decision_id,
            ranking_version=snapshot.ranking_version if ranked else None,
            table_version=snapshot.table_version,
            as_of_date=ranked.as_of_date if ranked else None,
            run_id=ranked.run_id if ranked else None,
            segment=segment,
            traffic_type=traffic_type,
            offers=offers,
            dropped=dict(dropped),
        )

    def problems(self) -> list[str]:
        """Why the lookup is degraded: nothing published, a table it cannot read, a ranking older than the limit."""
        snapshot, problems = self._snapshot, []
        if snapshot.table_version is None:
            problems.append("no ranking is published: every placement gets its fallback")
        if self.last_refresh_error:
            problems.append(f"the last refresh could not read {self.last_refresh_error} (details in the service log)")
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
