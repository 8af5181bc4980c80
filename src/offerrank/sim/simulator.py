"""Closed-loop simulation: a what-if world served through the real lookup and learned by the real nightly chain.

A world file (YAML, `World`) gives segments and their shares, placements (channel, slots, share of requests, the AI
model that ranks them), offers (their placements, true conversion rate per segment, the days they are live) and
drifts (from day d on, an offer converts at another rate). A world may also give profile attributes and request
context (each with its values' shares) and per offer `lifts`: the rate is multiplied by the lift of each of the
request's `name=value` features, what a contextual model can learn; the oracle then picks each request's best
offer. Each simulated day:
1. requests: a profile (so a segment) on a placement; the lookup (`RankingLookup.top`, policy mode, its clock on
   that day) answers with offers, each with its traffic type and propensity;
2. the channel shows them: an impression event with every item, and a click event for each item that converts
   with its true rate (XDM events in that day's landing folder, as a channel logs them);
3. the nightly chain (`offerrank.chain.nightly.run_day`) ingests, aggregates, ranks and publishes: the next day's
   requests are served from what it learned.
Writes under `out`: `sample/` (the catalog built from the world, the events, one profile snapshot: what the chain
reads), `warehouse/` and `reports/` (the chain's), `simulation.csv` (per day, placement, segment and traffic type:
served items, their expected and realized conversion rate, the oracle's and uniform random serving's expected rate)
and `leaders.csv` (per serving day, placement and segment: the published first offer and the true best one).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from offerrank.catalog import CHANNELS, ID_PATTERN, read_yaml
from offerrank.catalog.entities import MAX_SEGMENTS
from offerrank.errors import BadInput
from offerrank.learning.contextual.serving import request_context
from offerrank.serving.policy import MODEL
from offerrank.sim.event_lines import EventWriter, event_json, proposition_json
from offerrank.sim.generator import write_profiles
from offerrank.tables import ALL_SEGMENTS

CLICK_DELAY_MINUTES = 20.0
MAX_REQUESTS_PER_DAY = 1_000_000  # every request goes through the lookup in Python: about a minute per 100,000
MAX_PROFILES = 1_000_000
MAX_SLOTS = 50
MAX_DAYS = 365


def _some_traffic(shares: dict[str, float]) -> dict[str, float]:
    """The shares themselves, unless none gets any traffic (they are weights: normalized by their sum)."""
    total = sum(shares.values())
    if not math.isfinite(total) or total <= 0:
        raise ValueError(f"shares must add up to a finite number above zero (got {total})")
    return shares


Share = Annotated[float, Field(ge=0)]
Shares = Annotated[dict[str, Share], AfterValidator(_some_traffic)]
SegmentShares = Annotated[dict[Annotated[str, Field(pattern=ID_PATTERN)], Share], AfterValidator(_some_traffic)]
Rate = Annotated[float, Field(ge=0, le=1)]
Day = Annotated[int, Field(ge=1, le=MAX_DAYS)]


class _WorldPart(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WorldOffer(_WorldPart):
    id: str
    placements: list[str] = Field(min_length=1)
    rate: Rate  # the true conversion rate
    segment_rates: dict[str, Rate] = Field(default_factory=dict)  # per segment, instead of `rate`
    lifts: dict[str, Share] = Field(default_factory=dict)  # `name=value` feature -> rate multiplier
    priority: int = Field(50, ge=0)
    first_day: Day = 1  # live from this simulated day (1 = the first)
    last_day: Day | None = None  # through this day (None: to the end)

    @model_validator(mode="after")
    def _live_days(self) -> WorldOffer:
        if self.last_day is not None and self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day} is before first_day {self.first_day}")
        return self


class WorldPlacement(_WorldPart):
    id: str
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    share: float = Field(gt=0)  # of the day's requests
    slots: int = Field(1, ge=1, le=MAX_SLOTS)
    model: str  # the AI model that ranks it
    personalized: bool = False  # per segment
    contextual: bool = False  # from the world's attributes and context


class Drift(_WorldPart):
    day: Day  # from this day on
    offer: str
    rate: Rate
    segment: str | None = None  # None: every segment


class World(_WorldPart):
    start: date
    requests_per_day: int = Field(gt=0, le=MAX_REQUESTS_PER_DAY)
    profiles: int = Field(5_000, gt=0, le=MAX_PROFILES)
    segments: SegmentShares = Field(max_length=MAX_SEGMENTS)  # segment -> share of profiles
    attributes: dict[str, Shares] = Field(default_factory=dict)  # profile attribute -> value -> share
    context: dict[str, Shares] = Field(default_factory=dict)  # context key (device) -> value -> share
    personalization: dict[str, float] = Field(default_factory=dict)  # contextual models' thresholds (see AIModel)
    exploration_share: float = Field(0.1, ge=0, le=1)
    lookback_days: int = Field(14, ge=1, le=365)
    half_life_days: float | None = Field(None, gt=0)
    placements: list[WorldPlacement] = Field(min_length=1)
    offers: list[WorldOffer] = Field(min_length=1)
    drifts: list[Drift] = Field(default_factory=list)

    @field_validator("context")
    @classmethod
    def _request_context(cls, context: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """Each value is one a request may pass (the lookup's own check)."""
        for key, values in context.items():
            for value in values:
                request_context({key: value}, CHANNELS[0], 0)
        return context

    @model_validator(mode="after")
    def _references(self) -> World:
        placements, offers = {p.id for p in self.placements}, {o.id for o in self.offers}
        problems = [
            f"offer {o.id}: unknown placement {p}" for o in self.offers for p in o.placements if p not in placements
        ]
        problems += [f"drift: unknown offer {d.offer}" for d in self.drifts if d.offer not in offers]
        problems += [
            f"offer {o.id}: unknown segment {s}" for o in self.offers for s in o.segment_rates if s not in self.segments
        ]
        problems += [
            f"drift: unknown segment {d.segment}" for d in self.drifts if d.segment not in (None, *self.segments)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def day(self, number: int) -> date:
        return self.start + timedelta(days=number - 1)

    def live_offers(self, placement: str, number: int) -> list[WorldOffer]:
        return [
            o
            for o in self.offers
            if placement in o.placements and o.first_day <= number and (o.last_day is None or number <= o.last_day)
        ]

    def true_rate(self, offer: WorldOffer, segment: str, number: int, features: dict[str, str] | None = None) -> float:
        """The offer's conversion rate for a profile of `segment` with `features` (attributes and context) on day
        `number`, after the drifts so far."""
        rate = offer.segment_rates.get(segment, offer.rate)
        for drift in sorted(self.drifts, key=lambda d: d.day):
            if drift.offer == offer.id and drift.day <= number and drift.segment in (None, segment):
                rate = drift.rate
        for name, value in (features or {}).items():
            rate *= offer.lifts.get(f"{name}={value}", 1.0)
        return min(rate, 1.0)

    def segment_rate(self, offer: WorldOffer, segment: str, number: int) -> float:
        """The true rate for a segment, or for all traffic (`*`: the segments' shares weigh it)."""
        if segment != ALL_SEGMENTS:
            return self.true_rate(offer, segment, number)
        return sum(share * self.true_rate(offer, s, number) for s, share in self.segments.items()) / sum(
            self.segments.values()
        )

    def catalog(self, days: int, events: Path) -> dict:
        """The catalog the simulated brand applies: one decision per placement, ranked by its AI model; its event
        dataset lands in `events`."""
        end = self.day(days + 365)
        models: dict[str, dict] = {}
        for placement in self.placements:
            model = models.setdefault(
                placement.model,
                {
                    "name": placement.model,
                    "description": "simulated",
                    "type": "auto_optimization",
                    "metric": "conversion_rate",
                    "datasets": ["events"],
                    "lookback_days": self.lookback_days,
                    "half_life_days": self.half_life_days,
                    "exploration_share": self.exploration_share,
                    "status": "active",
                },
            )
            if placement.personalized:
                model |= {"type": "personalized", "segments": list(self.segments)}
            if placement.contextual:
                model |= {
                    "type": "personalized",
                    "attributes": list(self.attributes),
                    "context": list(self.context),
                    "personalization": self.personalization,
                }
        decisions = []
        for placement in self.placements:
            eligible = [o.id for o in self.offers if placement.id in o.placements]
            decisions.append(
                {
                    "id": f"sim-{placement.id}",
                    "name": f"Simulated {placement.id}",
                    "placements": [
                        {
                            "placement": placement.id,
                            "eligible_offers": eligible,
                            "ranking": f"ai_model:{placement.model}",
                            "fallback_offer": eligible[0],
                        }
                    ],
                }
            )
        return {
            "datasets": [{"name": "events", "path": str(events)}],
            "placements": [{"id": p.id, "name": p.id, "channel": p.channel} for p in self.placements],
            "offers": [
                {
                    "id": o.id,
                    "name": o.id,
                    "priority": o.priority,
                    "start_date": self.day(o.first_day).isoformat(),
                    "end_date": (self.day(o.last_day) if o.last_day else end).isoformat(),
                    "placements": o.placements,
                }
                for o in self.offers
            ],
            "ai_models": [{k: v for k, v in m.items() if v is not None} for m in models.values()],
            "decisions": decisions,
        }


def load_world(path: Path) -> World:
    """The world of a YAML file; BadInput (one line naming the file) when it cannot be read as YAML, pydantic's
    ValidationError when it does not validate."""
    return World.model_validate(read_yaml(path, "world", BadInput))


@dataclass
class DayTally:
    """What one simulated day served, per (placement, segment, traffic type)."""

    items: defaultdict = field(default_factory=lambda: defaultdict(int))
    expected: defaultdict = field(default_factory=lambda: defaultdict(float))  # sum of true rates of served items
    conversions: defaultdict = field(default_factory=lambda: defaultdict(int))
    oracle: defaultdict = field(default_factory=lambda: defaultdict(float))  # per request: the best slots' mean
    random: defaultdict = field(default_factory=lambda: defaultdict(float))  # per request: uniform serving's mean
    requests: defaultdict = field(default_factory=lambda: defaultdict(int))


def draw_values(rng: np.random.Generator, shares: dict[str, dict[str, float]], size: int) -> list[dict[str, str]]:
    """`size` draws of each named feature's value by its values' shares."""
    columns = {}
    for name, values in shares.items():
        weights = np.array(list(values.values()))
        columns[name] = np.array(list(values))[rng.choice(len(values), size=size, p=weights / weights.sum())]
    return [{name: str(column[i]) for name, column in columns.items()} for i in range(size)]


def serve_day(
    world: World, number: int, lookup, writer: EventWriter, rng: np.random.Generator, ecids, segment_of, attributes
):
    """Day `number`'s requests through the lookup, written as events; returns its tally."""
    day = world.day(number)
    segments = list(world.segments)
    shares = np.array([p.share for p in world.placements])
    placement_draws = rng.choice(len(world.placements), size=world.requests_per_day, p=shares / shares.sum())
    profile_draws = rng.integers(0, len(ecids), size=world.requests_per_day)
    seconds = np.sort(rng.uniform(0, 82_800, size=world.requests_per_day))  # clicks land the same day
    contexts = draw_values(rng, world.context, world.requests_per_day)
    tally = DayTally()
    start = datetime.combine(day, time(), tzinfo=UTC)
    for n in range(world.requests_per_day):
        placement = world.placements[placement_draws[n]]
        ecid, segment = ecids[profile_draws[n]], segments[segment_of[profile_draws[n]]]
        context = contexts[n]
        answer = lookup.top(
            placement.id, placement.channel, ecid, limit=placement.slots, request_id=f"{day}-{n}", context=context
        )
        features = {**attributes[profile_draws[n]], **context}
        offers = {o.id: o for o in world.live_offers(placement.id, number)}
        if world.attributes or world.context:  # the oracle knows each request's true rates
            best = sorted(offers.values(), key=lambda o: world.true_rate(o, segment, number, features), reverse=True)
        else:  # the oracle knows the true rates, but ranks as the placement does: per segment only when personalized
            judged = segment if placement.personalized else ALL_SEGMENTS
            best = sorted(offers.values(), key=lambda o: world.segment_rate(o, judged, number), reverse=True)
        rates = [world.true_rate(o, segment, number, features) for o in best]
        if rates:
            tally.oracle[placement.id, segment] += float(np.mean(rates[: placement.slots]))
            tally.random[placement.id, segment] += float(np.mean(rates))
        tally.requests[placement.id, segment] += 1
        ts = start + timedelta(seconds=float(seconds[n]))
        proposition_id = writer.new_id("b")
        items = [(o.offer_id, o.offer_id, o.traffic_type, o.propensity) for o in answer.offers]
        decision = answer.decision_id or f"sim-{placement.id}"
        impression = proposition_json(proposition_id, placement.id, decision, items)
        writer.add(
            day.isoformat(),
            "events",
            event_json(writer.new_id("a"), ts, "display", ecid, placement.channel, impression, context.get("device")),
        )
        for item, served in zip(items, answer.offers):
            key = (placement.id, segment, served.traffic_type)
            offer = offers.get(served.offer_id)
            rate = world.true_rate(offer, segment, number, features) if offer else 0.0
            tally.items[key] += 1
            tally.expected[key] += rate
            if rng.random() < rate:
                tally.conversions[key] += 1
                click_ts = ts + timedelta(minutes=float(rng.exponential(CLICK_DELAY_MINUTES)) % 60)
                click = proposition_json(proposition_id, placement.id, decision, [item])
                writer.add(
                    day.isoformat(),
                    "events",
                    event_json(
                        writer.new_id("a"), click_ts, "interact", ecid, placement.channel, click, context.get("device")
                    ),
                )
    return tally


def simulate(world: World, days: int, out: Path, seed: int = 1, spark=None, echo=print) -> Path:
    """Run the world for `days` days through the lookup and the nightly chain; returns `simulation.csv`'s path."""
    from offerrank.catalog import build_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.chain.nightly import run_day
    from offerrank.engines.delta_rs import table_rows
    from offerrank.engines.spark import build_spark
    from offerrank.serving.lookup import RankingLookup
    from offerrank.settings import load_settings
    from offerrank.tables import OFFER_RANKINGS

    rng = np.random.default_rng(seed)
    sample = out / "sample"
    catalog_data = world.catalog(days, sample / "events")
    catalog = build_catalog(catalog_data, "world")  # before writing anything: a world refused leaves no folder
    sample.mkdir(parents=True, exist_ok=True)
    (sample / "catalog.yaml").write_text(yaml.safe_dump(catalog_data, sort_keys=False), encoding="utf-8")
    segments = tuple(world.segments)
    shares = np.array(list(world.segments.values()))
    segment_of = rng.choice(len(segments), size=world.profiles, p=shares / shares.sum())
    ecids = [f"sim{seed:04d}{i:08d}" for i in range(world.profiles)]
    attributes = draw_values(rng, world.attributes, world.profiles)
    write_profiles(sample / "profiles" / world.start.isoformat(), world.start, ecids, segment_of, segments, attributes)

    settings = load_settings(home=out, spark_shuffle_partitions=2)
    spark = spark or build_spark(settings, "offerrank-simulate")
    clock = {"now": datetime.combine(world.start, time(12), tzinfo=UTC)}
    # the simulation writes its dataset's events itself: none exist yet to check the layout of
    Registry(settings).commit(catalog, clock["now"], check_datasets=False)
    lookup = RankingLookup(settings, clock=lambda: clock["now"])
    writer = EventWriter(sample / "events", seed)
    rows, leaders = [], []
    for number in range(1, days + 1):
        day = world.day(number)
        clock["now"] = datetime.combine(day, time(12), tzinfo=UTC)
        lookup.refresh()
        tally = serve_day(world, number, lookup, writer, rng, ecids, segment_of, attributes)
        writer.close()
        writer.handles.clear()
        rows += tally_rows(world, number, tally)
        report = run_day(spark, settings, day, clock=lambda: clock["now"], echo=lambda _: None)
        leaders += leader_rows(world, number + 1, table_rows(settings, OFFER_RANKINGS))
        echo(f"day {number} ({day}): {summary_line(rows, number)}; nightly run {'ok' if report.success else 'FAILED'}")
    write_csv(out / "simulation.csv", rows)
    write_csv(out / "leaders.csv", leaders)
    return out / "simulation.csv"


def tally_rows(world: World, number: int, tally: DayTally) -> list[dict]:
    rows = []
    for (placement, segment, traffic), items in sorted(tally.items.items()):
        requests = tally.requests[placement, segment]
        rows.append(
            {
                "day": number,
                "date": world.day(number).isoformat(),
                "placement_id": placement,
                "segment": segment,
                "traffic_type": traffic,
                "items": items,
                "expected_rate": tally.expected[placement, segment, traffic] / items,
                "conversions": tally.conversions[placement, segment, traffic],
                "realized_rate": tally.conversions[placement, segment, traffic] / items,
                "oracle_rate": tally.oracle[placement, segment] / requests,
                "random_policy_rate": tally.random[placement, segment] / requests,
            }
        )
    return rows


def leader_rows(world: World, serving_day: int, ranking: list[dict]) -> list[dict]:
    """Per placement and segment: the offer the published ranking puts first for `serving_day`, and the true best."""
    rows = []
    for row in ranking:
        if row["rank"] != 1:
            continue
        live = world.live_offers(row["placement_id"], serving_day)
        best = max(live, key=lambda o: world.segment_rate(o, row["segment"], serving_day)) if live else None
        rows.append(
            {
                "serving_day": serving_day,
                "placement_id": row["placement_id"],
                "segment": row["segment"],
                "first_offer": row["offer_id"],
                "true_best": best.id if best else "",
            }
        )
    return sorted(rows, key=lambda r: (r["placement_id"], r["segment"]))


def summary_line(rows: list[dict], number: int) -> str:
    """Model traffic's expected rate as a share of the oracle's, and of random serving's, over all placements."""
    today = [r for r in rows if r["day"] == number]
    model = [r for r in today if r["traffic_type"] == MODEL]
    if not model:
        return "all traffic random (no ranking yet)"
    expected = sum(r["expected_rate"] * r["items"] for r in model)
    oracle = sum(r["oracle_rate"] * r["items"] for r in model)
    random = sum(r["random_policy_rate"] * r["items"] for r in model)
    return f"model traffic at {expected / oracle:.1%} of the oracle, {expected / random - 1:+.0%} over random serving"


def summarize(world: World, out: Path) -> str:
    """The figures of a finished simulation: per placement and day, model traffic's expected rate as a share of
    the oracle's, its lift over uniform random serving and its regret (the expected conversions model traffic lost
    to the oracle; the exploration share's random traffic is reported as such);
    how many nightly runs each offer arriving mid-run took to lead its placement's published ranking (all traffic,
    or the segment it is best for), and each drift how many to put the new true best first."""
    import pandas as pd

    days = pd.read_csv(out / "simulation.csv")
    leaders = pd.read_csv(out / "leaders.csv")
    lines = ["placement      day  model/oracle  model/random-1  random/oracle  regret (conversions lost to the oracle)"]
    model = days[days["traffic_type"] == MODEL]
    for (placement, day), rows in model.groupby(["placement_id", "day"]):
        items = rows["items"]
        expected, oracle = (rows["expected_rate"] * items).sum(), (rows["oracle_rate"] * items).sum()
        random = (rows["random_policy_rate"] * items).sum()
        lines.append(
            f"{placement:<14} {day:>3}  {expected / oracle:>12.1%}  {expected / random - 1:>+14.0%}  "
            f"{random / oracle:>13.1%}  {oracle - expected:>8.1f}"
        )
    for offer in world.offers:
        if offer.first_day <= 1:
            continue
        led = leaders[(leaders["first_offer"] == offer.id) & (leaders["serving_day"] >= offer.first_day)]
        first = led["serving_day"].min()
        lines.append(
            f"new offer {offer.id} (day {offer.first_day}): "
            + (
                f"first in the published ranking of {led.iloc[0]['placement_id']}/{led.iloc[0]['segment']} "
                f"on day {first}, after {first - offer.first_day} nightly runs"
                if len(led)
                else "never first in a published ranking"
            )
        )
    for drift in world.drifts:
        segment = drift.segment or ALL_SEGMENTS
        after = leaders[(leaders["serving_day"] > drift.day) & (leaders["segment"] == segment)]
        placements = {p for o in world.offers if o.id == drift.offer for p in o.placements}
        after = after[after["placement_id"].isin(placements)]
        right = after[after["first_offer"] == after["true_best"]]
        lines.append(
            f"drift of {drift.offer} on day {drift.day} ({segment}): "
            + (
                f"the true best is first again on day {right['serving_day'].min()}, "
                f"{right['serving_day'].min() - drift.day} nightly runs later"
                if len(right)
                else "the published first offer is not the true best by the end"
            )
        )
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if rows:
            out = csv.DictWriter(handle, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows(rows)
