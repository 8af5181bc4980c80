"""Sample data generator: XDM proposition-interaction events with a known ground truth.

Writes, under `out` (the event lines and their faults: `offerrank.sim.event_lines`):
- `events/YYYY-MM-DD/*.jsonl` — one folder per UTC date, in the contract of `shared/events/README.md`;
  clicks arrive minutes after their impression, so some land in the next day's folder; a tenth of the
  propositions is `random` traffic (offers drawn uniformly, as an AI model's exploration serves them), the rest
  `model` traffic drawn from a known better policy (weights popularity x true conversion rate of the profile's
  segment); each item logs its `trafficType` and its `propensity` (the exact probability that its policy put that
  offer in that slot);
- `profiles/YYYY-MM-DD/profiles.jsonl` — one profile-segment snapshot (dated the first day) in the layout of
  an XDM Individual Profile export: each profile's ECID and `segmentMembership` (its segment `realized`; every
  20th profile also `exited` another one);
- `catalog.yaml` — the placements, offers, ranking formula, AI models and decisions the events refer to;
- `ground_truth.csv` — the true conversion rate of every offer x placement x channel x segment, with the
  impressions and unique conversions the generator emitted for it;
- `ground_truth_traffic.csv` — per placement x channel x segment x traffic type, the expected conversion rate of a
  shown item under that traffic's policy and the items shown (from which a model's true lift over random follows);
- `manifest.json` — per date folder, the lines written and how many of each injected fault.

Deterministic for a seed: the same arguments give byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from offerrank.serving.policy import MODEL, RANDOM
from offerrank.sim.event_lines import FAULT_KINDS, EventWriter, event_json, faulty_variant, proposition_json

SEGMENTS = ("new-visitors", "loyal-customers", "bargain-hunters")
SEGMENT_SHARES = (0.5, 0.2, 0.3)
SEGMENT_LIFT = {"new-visitors": 0.8, "loyal-customers": 1.6, "bargain-hunters": 1.1}
MEAN_CLICK_DELAY_MINUTES = 25.0
RANDOM_SHARE = 0.1  # share of propositions served as random traffic
TRAFFIC_TYPES = (RANDOM, MODEL)
CLICK_REPEAT_SHARE = 0.1  # share of converted items clicked a second time (counts once)

# (placement id, name, channel, offers shown together in one proposition)
PLACEMENTS = (
    ("home-hero", "Home page hero banner", "web", 1),
    ("product-sidebar", "Product page sidebar", "web", 1),
    ("checkout-banner", "Checkout banner", "web", 1),
    ("newsletter-top", "Newsletter top block", "email", 3),
    ("newsletter-footer", "Newsletter footer block", "email", 2),
    ("push-evening", "Evening push message", "push", 1),
    ("app-home-card", "Mobile app home card", "mobileApp", 1),
)
PLACEMENT_TRAFFIC = np.array([0.28, 0.16, 0.08, 0.16, 0.08, 0.12, 0.12])


@dataclass(frozen=True)
class Offer:
    id: str
    name: str
    priority: int
    placements: tuple[str, ...]
    category: str
    margin: float
    popularity: float
    base_rate: float


@dataclass
class GeneratedData:
    """What `generate` wrote, for the CLI's summary and for tests."""

    out: Path
    events_written: int = 0
    lines_per_date: dict[str, int] = field(default_factory=dict)
    faults: defaultdict = field(default_factory=lambda: defaultdict(Counter))


def build_offers(rng: np.random.Generator, count: int = 24) -> list[Offer]:
    """Offers with skewed popularity and conversion rates of a few percent."""
    categories = ("apparel", "shipping", "loyalty", "electronics", "app")
    placement_ids = [p[0] for p in PLACEMENTS]
    offers = []
    for index in range(count):
        allowed = sorted(rng.choice(placement_ids, size=int(rng.integers(3, 6)), replace=False).tolist())
        offers.append(
            Offer(
                id=f"offer-{index + 1:03d}",
                name=f"Offer {index + 1}",
                priority=int(rng.integers(1, 100)),
                placements=tuple(allowed),
                category=categories[index % len(categories)],
                margin=round(float(rng.uniform(0.05, 0.6)), 2),
                popularity=float(1.0 / (index + 1) ** 0.8),
                base_rate=round(float(rng.uniform(0.005, 0.08)), 4),
            )
        )
    return offers


def segment_affinity(offer_id: str, segment: str) -> float:
    """How an offer converts in a segment relative to its base rate: 0.5-1.5, fixed per (offer, segment), so the
    best offer differs between segments."""
    digest = hashlib.sha256(f"{offer_id}/{segment}".encode()).digest()
    return 0.5 + int.from_bytes(digest[:4], "little") / 2**32


def true_rate(offer: Offer, placement_index: int, segment: str) -> float:
    """The conversion probability of one shown offer item, before any noise."""
    placement_factor = 0.7 + 0.1 * placement_index
    return min(0.95, offer.base_rate * placement_factor * SEGMENT_LIFT[segment] * segment_affinity(offer.id, segment))


def build_catalog(offers: list[Offer], start: date, days: int) -> dict:
    """A catalog that covers every ranking method: AI model, priority and formula."""
    end = start + timedelta(days=days + 365)
    placements_by_decision = {
        "dp-web-home": [("home-hero", "ai_model:auto-web"), ("product-sidebar", "priority")],
        "dp-checkout": [("checkout-banner", "formula:margin-boost")],
        "dp-newsletter": [("newsletter-top", "ai_model:auto-email"), ("newsletter-footer", "priority")],
        "dp-app-reengage": [("push-evening", "ai_model:personalized-mobile"), ("app-home-card", "ai_model:auto-web")],
    }
    decisions = []
    for decision_id, assignments in placements_by_decision.items():
        decision_placements = []
        for placement_id, ranking in assignments:
            eligible = [o.id for o in offers if placement_id in o.placements]
            decision_placements.append(
                {
                    "placement": placement_id,
                    "eligible_offers": eligible,
                    "ranking": ranking,
                    "fallback_offer": eligible[0],
                }
            )
        decisions.append(
            {"id": decision_id, "name": decision_id.replace("-", " ").title(), "placements": decision_placements}
        )
    model_common = {
        "metric": "conversion_rate",
        "datasets": ["events"],
        "lookback_days": 14,
        "exploration_share": 0.1,
        "cold_start": {"min_impressions": 100, "min_conversions": 5},
        "status": "active",
    }
    return {
        "datasets": [{"name": "events", "path": "events"}],
        "placements": [{"id": pid, "name": name, "channel": channel} for pid, name, channel, _ in PLACEMENTS],
        "offers": [
            {
                "id": o.id,
                "name": o.name,
                "priority": o.priority,
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
                "placements": list(o.placements),
                "characteristics": {"category": o.category, "margin": o.margin},
            }
            for o in offers
        ],
        "formulas": [
            {
                "id": "margin-boost",
                "name": "Priority boosted by margin",
                "expression": "priority + if(margin > 0.3, 20, 0)",
            }
        ],
        "ai_models": [
            {
                "name": "auto-web",
                "description": "Auto-optimization of web and app banners",
                "type": "auto_optimization",
                **model_common,
            },
            {
                "name": "auto-email",
                "description": "Auto-optimization of newsletter blocks",
                "type": "auto_optimization",
                **model_common,
            },
            {
                "name": "personalized-mobile",
                "description": "Per-segment ranking of push messages",
                "type": "personalized",
                "segments": list(SEGMENTS),
                **model_common,
            },
        ],
        "decisions": decisions,
    }


def generate(
    out: Path,
    start: date,
    days: int,
    seed: int = 7,
    events_per_day: int = 20_000,
    fault_rate: float = 0.0,
    profiles: int = 50_000,
) -> GeneratedData:
    """Write `days` days of events from `start` (about `events_per_day` lines a day) plus catalog and truth."""
    if days < 1 or events_per_day < 1 or not 0.0 <= fault_rate < 1.0:
        raise ValueError("days and events_per_day must be positive and fault_rate in [0, 1)")
    rng = np.random.default_rng(seed)
    offers = build_offers(rng)
    catalog = build_catalog(offers, start, days)
    decision_of = {p["placement"]: d["id"] for d in catalog["decisions"] for p in d["placements"]}
    offers_of = [[o for o in offers if pid in o.placements] for pid, *_ in PLACEMENTS]
    weights_of = [policy_weights(group, index) for index, group in enumerate(offers_of)]
    in_slot_of = [
        np.stack([slot_probabilities_of_draw(weights, slots) for weights in policies])
        for policies, (*_, slots) in zip(weights_of, PLACEMENTS)
    ]
    segment_of_profile = rng.choice(len(SEGMENTS), size=profiles, p=SEGMENT_SHARES)
    ecids = [f"{(seed * 1_000_003 + i) % 10**38:038d}" for i in range(profiles)]

    events_dir = out / "events"
    writer = EventWriter(events_dir, seed)
    result = GeneratedData(out=out)
    shown: Counter = Counter()
    converted: Counter = Counter()
    shown_by_traffic: Counter = Counter()
    last_folder = start + timedelta(days=days - 1)
    far_future = datetime.combine(last_folder, datetime.min.time(), tzinfo=UTC) + timedelta(days=30)

    for day_index in range(days):
        day = start + timedelta(days=day_index)
        day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        source = f"events-{day.isoformat()}"
        lines_today = 0
        while lines_today < events_per_day:
            batch = events_per_day - lines_today
            placement_draws = rng.choice(len(PLACEMENTS), size=batch, p=PLACEMENT_TRAFFIC)
            profile_draws = rng.integers(0, profiles, size=batch)
            random_traffic = rng.random(batch) < RANDOM_SHARE
            policy_draws = np.where(random_traffic, 0, 1 + segment_of_profile[profile_draws])
            picks = _draw_offers(rng, placement_draws, policy_draws, weights_of)
            seconds = np.sort(rng.uniform(0, 86_400, size=batch))
            conversion_draws = rng.random((batch, 3))
            repeat_draws = rng.random((batch, 3)) < CLICK_REPEAT_SHARE
            delays = rng.exponential(MEAN_CLICK_DELAY_MINUTES, size=(batch, 3, 2))
            fault_draws = rng.random(batch) < fault_rate
            fault_kinds = rng.integers(len(FAULT_KINDS), size=batch)
            for n in range(batch):
                if lines_today >= events_per_day:
                    break
                placement_index = int(placement_draws[n])
                placement_id, _, channel, _ = PLACEMENTS[placement_index]
                group = offers_of[placement_index]
                segment = SEGMENTS[segment_of_profile[profile_draws[n]]]
                traffic = TRAFFIC_TYPES[int(not random_traffic[n])]
                decision_id = decision_of[placement_id]
                proposition_id = writer.new_id("b")
                in_slot = in_slot_of[placement_index][policy_draws[n]]
                shown_by_traffic[placement_id, channel, segment, traffic] += len(picks[n])
                items = [(group[i].id, group[i].name, traffic, in_slot[i, slot]) for slot, i in enumerate(picks[n])]
                ts = day_start + timedelta(seconds=float(seconds[n]))
                ecid = ecids[profile_draws[n]]
                line = event_json(
                    writer.new_id("a"),
                    ts,
                    "display",
                    ecid,
                    channel,
                    proposition_json(proposition_id, placement_id, decision_id, items),
                )
                writer.add(day.isoformat(), source, line)
                lines_today += 1
                if fault_draws[n]:
                    kind = FAULT_KINDS[fault_kinds[n]]
                    writer.add(day.isoformat(), source, faulty_variant(kind, line, writer.new_id("c"), far_future))
                    result.faults[day.isoformat()][kind] += 1
                    lines_today += 1
                for slot, offer_index in enumerate(picks[n]):
                    offer = group[offer_index]
                    key = (offer.id, placement_id, channel, segment)
                    shown[key] += 1
                    if conversion_draws[n, slot] >= true_rate(offer, placement_index, segment):
                        continue
                    click_prop = proposition_json(proposition_id, placement_id, decision_id, [items[slot]])
                    click_ts = ts
                    for repeat in range(2 if repeat_draws[n, slot] else 1):
                        click_ts = click_ts + timedelta(minutes=float(delays[n, slot, repeat]))
                        if click_ts.date() > last_folder:
                            break
                        click_line = event_json(writer.new_id("a"), click_ts, "interact", ecid, channel, click_prop)
                        writer.add(click_ts.date().isoformat(), source, click_line)
                        lines_today += 1
                        converted[key] += repeat == 0

    result.lines_per_date = writer.close()
    result.events_written = sum(result.lines_per_date.values())
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")
    _write_truth(out / "ground_truth.csv", offers, shown, converted)
    _write_traffic_truth(out / "ground_truth_traffic.csv", offers_of, in_slot_of, shown_by_traffic)
    write_profiles(out / "profiles" / start.isoformat(), start, ecids, segment_of_profile)
    manifest = {
        "start": start.isoformat(),
        "days": days,
        "seed": seed,
        "events_per_day": events_per_day,
        "fault_rate": fault_rate,
        "lines_per_date": result.lines_per_date,
        "faults": {day: dict(sorted(kinds.items())) for day, kinds in sorted(result.faults.items())},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return result


def policy_weights(group: list[Offer], placement_index: int) -> np.ndarray:
    """A placement's serving policies as rows of offer weights: row 0 random traffic (uniform), row 1 + s the model
    traffic of segment `SEGMENTS[s]` (popularity x true conversion rate: a known better policy than random)."""
    uniform = np.full(len(group), 1.0 / len(group))
    model = [np.array([o.popularity * true_rate(o, placement_index, segment) for o in group]) for segment in SEGMENTS]
    return np.stack([uniform, *(weights / weights.sum() for weights in model)])


def _draw_offers(
    rng: np.random.Generator, placement_draws: np.ndarray, policy_draws: np.ndarray, weights_of: list[np.ndarray]
) -> list[list[int]]:
    """Per event, the offers shown: drawn by the event's policy's weights without replacement (Gumbel top-k,
    vectorized)."""
    picks: list[list[int]] = [[] for _ in range(len(placement_draws))]
    for placement_index, (*_, slots) in enumerate(PLACEMENTS):
        rows = np.flatnonzero(placement_draws == placement_index)
        weights = weights_of[placement_index][policy_draws[rows]]
        keys = np.log(weights) + rng.gumbel(size=weights.shape)
        top = np.argsort(-keys, axis=1)[:, : min(slots, weights.shape[1])]
        for row, chosen in zip(rows.tolist(), top.tolist()):
            picks[row] = chosen
    return picks


def slot_probabilities_of_draw(weights: np.ndarray, slots: int) -> np.ndarray:
    """P(offer i is in slot j) when `slots` offers are drawn without replacement with probabilities proportional
    to `weights` (what `_draw_offers` does): an (offers x slots) matrix, exact (a walk over the ordered prefixes)."""
    in_slot = np.zeros((len(weights), min(slots, len(weights))))

    def walk(prefix: float, taken: np.ndarray, slot: int) -> None:
        chosen = np.where(taken, 0.0, prefix * weights / weights[~taken].sum())
        in_slot[:, slot] += chosen
        if slot + 1 < in_slot.shape[1]:
            for offer in np.flatnonzero(chosen):
                walk(chosen[offer], taken | (np.arange(len(weights)) == offer), slot + 1)

    walk(1.0, np.zeros(len(weights), bool), 0)
    return in_slot


def write_profiles(
    folder: Path,
    snapshot: date,
    ecids: list[str],
    segment_of_profile: np.ndarray,
    segments: tuple[str, ...] = SEGMENTS,
    attributes: list[dict[str, str]] | None = None,
) -> None:
    """A profile snapshot: profile i (ECID `ecids[i]`) realized in `segments[segment_of_profile[i]]`, with the
    profile attributes `attributes[i]` (path -> value, e.g. `person.ageBand`) when given."""
    qualified = (datetime.combine(snapshot, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "profiles.jsonl", "w", encoding="utf-8") as handle:
        for index, (ecid, segment_index) in enumerate(zip(ecids, segment_of_profile.tolist())):
            membership = {segments[segment_index]: {"status": "realized", "lastQualificationTime": qualified}}
            if index % 20 == 0 and len(segments) > 1:
                membership[segments[(segment_index + 1) % len(segments)]] = {
                    "status": "exited",
                    "lastQualificationTime": qualified,
                }
            profile: dict[str, Any] = {  # JSON: nested objects
                "identityMap": {"ECID": [{"id": ecid, "primary": True}]},
                "segmentMembership": {"ups": membership},
            }
            for path, value in (attributes[index] if attributes else {}).items():
                *parents, leaf = path.split(".")
                node: dict[str, Any] = profile
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = value
            handle.write(json.dumps(profile, separators=(",", ":")) + "\n")


def _write_truth(path: Path, offers: list[Offer], shown: Counter, converted: Counter) -> None:
    placement_index = {pid: i for i, (pid, *_) in enumerate(PLACEMENTS)}
    offer_by_id = {o.id: o for o in offers}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["offer_id", "placement_id", "channel", "segment", "true_conversion_rate", "impressions", "conversions"]
        )
        for key in sorted(shown):
            offer_id, placement_id, channel, segment = key
            rate = true_rate(offer_by_id[offer_id], placement_index[placement_id], segment)
            out.writerow([offer_id, placement_id, channel, segment, f"{rate:.6f}", shown[key], converted[key]])


def _write_traffic_truth(
    path: Path, offers_of: list[list[Offer]], in_slot_of: list[np.ndarray], shown_by_traffic: Counter
) -> None:
    """Per placement x channel x segment x traffic type: the expected conversion rate of a shown item under that
    traffic's policy (sum over offers and slots of P(offer in slot) x true rate, per slot) and the items shown."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["placement_id", "channel", "segment", "traffic_type", "expected_conversion_rate", "items_shown"])
        for placement_index, (placement_id, _, channel, _) in enumerate(PLACEMENTS):
            group, in_slot = offers_of[placement_index], in_slot_of[placement_index]
            for segment_index, segment in enumerate(SEGMENTS):
                rates = np.array([true_rate(o, placement_index, segment) for o in group])
                for traffic, policy in zip(TRAFFIC_TYPES, (0, 1 + segment_index)):
                    expected = float((in_slot[policy] * rates[:, None]).sum() / in_slot.shape[2])
                    items = shown_by_traffic[placement_id, channel, segment, traffic]
                    out.writerow([placement_id, channel, segment, traffic, f"{expected:.6f}", items])
