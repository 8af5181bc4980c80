"""Benchmark: a contextual model's lookups, its profile attribute index and its nightly training.

1. Lookup (no JVM): a warehouse holding one placement whose O offers all carry a contextual posterior over about
   50 one-hot features (4 profile attributes of 10 values each, and the device), and the attributes of P profiles
   (`profile_attributes`), written with deltalake. Prints the attribute index's build time and bytes per profile,
   the bare contextual score of a request (each offer's logit mean and spread for its cell) p50/p99, and
   `RankingLookup.top()` p50/p99 in policy and published mode over random profiles and devices, plus the one-off
   cost of a cell's first answer (its slot probabilities).
2. Training (`--training`, Spark): the aggregate of a generated day of E events with and without a contextual
   model on the generator's placements (what `feature_stats_daily` adds to a night), then a 30-day window of
   cells and of daily facts (the day's, copied to 30 dates) and the time to train the contextual model beside
   the time to compute the auto-optimization model's posteriors over the same window.

    python benchmarks/contextual_benchmark.py [--offers 200] [--profiles 1000000] [--lookups 20000] \\
        [--training] [--events-per-day 1000000] [--workdir /tmp/offerrank-contextual]
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from offerrank.catalog import entity_json
from offerrank.learning.contextual.features import FeatureDictionary
from offerrank.tables import ALL_SEGMENTS, MODEL_PARAMETERS, OFFER_RANKINGS, PROFILE_ATTRIBUTES, REGISTRY, Reason

AS_OF = date(2026, 11, 1)
ATTRIBUTES = [f"profile.attribute{i}" for i in range(4)]
VALUES = [f"v{j}" for j in range(10)]
DEVICES = ["mobile", "desktop"]


def catalog_rows(offers: int) -> list[dict]:
    from offerrank.catalog import build_catalog

    catalog = build_catalog(
        {
            "datasets": [{"name": "events", "path": "events"}],
            "placements": [{"id": "hero", "name": "hero", "channel": "web"}],
            "offers": [
                {
                    "id": f"offer-{i:03d}",
                    "name": f"Offer {i}",
                    "priority": 1,
                    "start_date": "2026-01-01",
                    "end_date": "2027-12-31",
                    "placements": ["hero"],
                }
                for i in range(offers)
            ],
            "ai_models": [
                {
                    "name": "ctx",
                    "type": "personalized",
                    "datasets": ["events"],
                    "attributes": ATTRIBUTES,
                    "context": ["device"],
                    "status": "active",
                }
            ],
            "decisions": [
                {
                    "id": "dec",
                    "name": "dec",
                    "placements": [
                        {
                            "placement": "hero",
                            "eligible_offers": [f"offer-{i:03d}" for i in range(offers)],
                            "ranking": "ai_model:ctx",
                            "fallback_offer": "offer-000",
                        }
                    ],
                }
            ],
        },
        "benchmark",
    )
    now = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {"kind": kind, "id": getattr(entity, key), "spec": entity_json(entity), "created_at": now, "updated_at": now}
        for kind, key in (("placements", "id"), ("offers", "id"), ("ai_models", "name"), ("decisions", "id"))
        for entity in getattr(catalog, kind)
    ] + [
        {
            "kind": "datasets",
            "id": "events",
            "spec": entity_json(catalog.datasets[0]),
            "created_at": now,
            "updated_at": now,
        }
    ]


def ranking_frame(offers: int, rng: np.random.Generator) -> tuple[pd.DataFrame, int]:
    """A published list of `offers`, each with a contextual posterior; and the number of features."""
    shown = {name: dict.fromkeys(VALUES, 1.0) for name in ATTRIBUTES} | {"device": dict.fromkeys(DEVICES, 1.0)}
    from offerrank.catalog import Feature

    dictionary = FeatureDictionary.from_counts([Feature(name=n) for n in [*ATTRIBUTES, "device"]], shown)
    d = len(dictionary)
    rows = []
    for rank in range(1, offers + 1):
        # as a 30-day training leaves them: weights spread about 0.3 apart, each known to about +-0.05
        weights = rng.normal(0, 0.3, d)
        weights[0] = -3.5
        factor = rng.normal(0, 0.05 / np.sqrt(d), (d, d))
        rows.append(
            {
                "ranking_version": 1,
                "model_name": "ctx",
                "decision_id": "dec",
                "placement_id": "hero",
                "channel": "web",
                "segment": ALL_SEGMENTS,
                "rank": rank,
                "offer_id": f"offer-{rank - 1:03d}",
                "score": 0.03,
                "p_best": 1.0 / offers,
                "traffic_share": 1.0 / offers,
                "alpha": 30.0,
                "beta": 970.0,
                "impressions": 1000,
                "conversions": 30,
                "reason": Reason.MODEL.value,
                "features": list(dictionary.names),
                "weights": weights.tolist(),
                "covariance": (factor @ factor.T + np.eye(d) * 0.05**2).ravel().tolist(),
                "as_of_date": AS_OF,
                "run_id": "bench",
                "published_at": datetime(2026, 11, 1, 3, tzinfo=UTC),
            }
        )
    return pd.DataFrame(rows), d


def attribute_frame(profiles: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.char.add("profile-", np.arange(profiles).astype(str))
    values = np.array(VALUES)
    return pd.DataFrame(
        {
            "snapshot_date": AS_OF,
            "profile_id": np.repeat(ids, len(ATTRIBUTES)),
            "attribute": np.tile(ATTRIBUTES, profiles),
            "value": values[rng.integers(0, len(VALUES), profiles * len(ATTRIBUTES))],
        }
    )


def percentiles(seconds: list[float]) -> str:
    micros = np.array(seconds) * 1e6
    return f"p50 {np.percentile(micros, 50):8.1f} µs   p99 {np.percentile(micros, 99):8.1f} µs"


def lookup_part(workdir: Path, offers: int, profiles: int, lookups: int) -> None:
    from offerrank.engines.delta_rs import write_frame
    from offerrank.learning.contextual.serving import logit_moments
    from offerrank.serving.answers import PUBLISHED
    from offerrank.serving.lookup import RankingLookup
    from offerrank.settings import load_settings

    settings = load_settings(home=workdir)
    rng = np.random.default_rng(7)
    write_frame(settings, REGISTRY, pd.DataFrame(catalog_rows(offers)), "overwrite")
    ranking, features = ranking_frame(offers, rng)
    write_frame(settings, OFFER_RANKINGS, ranking, "overwrite")
    write_frame(settings, PROFILE_ATTRIBUTES, attribute_frame(profiles, rng), "overwrite")
    print(
        f"lookup: 1 placement, {offers} offers with contextual posteriors over {features} features, "
        f"{profiles:,} profiles x {len(ATTRIBUTES)} attributes"
    )
    started = time.perf_counter()
    lookup = RankingLookup(settings, clock=lambda: datetime(2026, 11, 2, 12, tzinfo=UTC))
    index = lookup.snapshot.attributes
    print(
        f"  attribute index: {len(index):,} profiles, {index.nbytes / len(index):.1f} bytes per profile, "
        f"loaded with the ranking in {time.perf_counter() - started:.1f} s"
    )
    (placement,) = lookup.snapshot.placements.values()
    contextual = placement[None].by_segment[ALL_SEGMENTS].contextual
    requests = [(f"profile-{rng.integers(profiles)}", str(DEVICES[rng.integers(2)]), f"r{n}") for n in range(lookups)]
    timings = []
    for profile, device, _ in requests[:2000]:
        active = contextual.cell(index.attributes_of(profile), {"device": device})
        started = time.perf_counter()
        logit_moments(contextual.weights, contextual.covariance, active)
        timings.append(time.perf_counter() - started)
    print(f"  contextual score of one request over {offers} offers (logit mean and spread): {percentiles(timings)}")
    timings = []
    for profile, device, request_id in requests[:300]:  # almost every one a cell not seen before
        started = time.perf_counter()
        lookup.top("hero", "web", profile, 10, "policy", request_id, context={"device": device})
        timings.append(time.perf_counter() - started)
    print(
        f"  top(limit 10, policy) of a cell's first request (slot probabilities by Monte-Carlo): {percentiles(timings)}"
    )
    repeated = requests[:300]  # cells seen before: their slot probabilities are kept
    for mode in (PUBLISHED, "policy"):
        timings = []
        for n in range(lookups):
            profile, device, _ = repeated[n % len(repeated)]
            started = time.perf_counter()
            answer = lookup.top("hero", "web", profile, 10, mode, f"w{n}", context={"device": device})
            timings.append(time.perf_counter() - started)
        assert answer.offers[0].reason in (Reason.PERSONALIZED, Reason.RANDOM)
        print(f"  top(limit 10, {mode:<9}) of a cell seen before: {percentiles(timings)}")


def training_part(workdir: Path, events_per_day: int) -> None:
    """See the module docstring, part 2."""
    import json

    from pyspark.sql import functions as F

    from offerrank.catalog import build_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.engines.delta_rs import table_rows
    from offerrank.engines.delta_spark import Warehouse
    from offerrank.engines.spark import build_spark
    from offerrank.jobs import aggregate, ingest, profiles
    from offerrank.jobs.aggregate import window_facts
    from offerrank.jobs.contextual import train_contextual_models
    from offerrank.learning.bandit import Prior, posteriors
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate
    from offerrank.tables import FEATURE_STATS_DAILY, OFFER_STATS_DAILY

    day = date(2026, 11, 1)
    generate(workdir / "sample", start=day, days=1, events_per_day=events_per_day, seed=5)
    settings = load_settings(home=workdir)
    spark = build_spark(settings, "offerrank-contextual-benchmark")
    base = json.loads(json.dumps(build_catalog_data(workdir)))
    auto = next(m for m in base["ai_models"] if m["type"] == "auto_optimization")
    contextual = auto | {
        "name": "contextual-bench",
        "type": "personalized",
        "attributes": ["homeAddress.countryCode", {"name": "person.age", "buckets": [25, 35, 50, 65]}],
        "context": ["device", {"name": "hour", "buckets": [6, 12, 18]}],
        "lookback_days": 30,
    }
    registry = Registry(settings)
    registry.commit(build_catalog(base, "generator"), datetime.now(UTC), check_datasets=False)
    ingest.run(spark, settings, day)
    write_attributes(spark, workdir, day)
    timings = {}
    for label, data in (("auto only", base), ("with a contextual model", with_model(base, contextual))):
        catalog = build_catalog(data, label)
        registry.commit(catalog, datetime.now(UTC), check_datasets=False)
        profiles.run(spark, settings, day, catalog.contextual_attributes())
        started = time.perf_counter()
        aggregate.run(spark, settings, catalog, day)
        timings[label] = time.perf_counter() - started
    print(f"training: a generated day of {events_per_day:,} events")
    print(
        f"  aggregate of the day: {timings['auto only']:.1f} s auto-optimization only, "
        f"{timings['with a contextual model']:.1f} s with a contextual model (its feature_stats_daily)"
    )
    warehouse = Warehouse(spark, settings)
    cells = warehouse.read(FEATURE_STATS_DAILY).filter(F.col("event_date") == day).cache()
    facts = warehouse.read(OFFER_STATS_DAILY).filter(F.col("event_date") == day).cache()
    print(f"  one day: {cells.count():,} cells, {facts.count():,} daily fact rows; copied to 30 dates")
    days = [day.fromordinal(day.toordinal() - back) for back in range(30)]
    spread = F.explode(F.array(*[F.lit(d) for d in days])).alias("event_date")
    warehouse.overwrite(cells.select(spread, *[c for c in cells.columns if c != "event_date"]), FEATURE_STATS_DAILY)
    warehouse.overwrite(facts.select(spread, *[c for c in facts.columns if c != "event_date"]), OFFER_STATS_DAILY)
    catalog = build_catalog(with_model(base, contextual), "bench")
    model = catalog.get("ai_models", "contextual-bench")
    started = time.perf_counter()
    train_contextual_models(warehouse, [model], day)
    contextual_seconds = time.perf_counter() - started
    started = time.perf_counter()
    window = window_facts(warehouse.read(OFFER_STATS_DAILY), day, 30)
    auto_catalog = build_catalog(base, "bench")  # where the auto-optimization model ranks the same placements
    auto_model = auto_catalog.get("ai_models", auto["name"]).model_copy(update={"lookback_days": 30})
    posteriors(window, auto_model, auto_catalog.placements_of(auto_model), day, Prior.of(settings))
    auto_seconds = time.perf_counter() - started
    trained = [r for r in table_rows(settings, MODEL_PARAMETERS) if r["model_name"] == "contextual-bench"]
    features = len(trained[0]["features"]) if trained else 0
    print(
        f"  30-day window: contextual training {contextual_seconds:.1f} s ({len(trained)} offers x placements "
        f"trained on {features} features), auto-optimization posteriors {auto_seconds:.1f} s"
    )
    spark.stop()


def build_catalog_data(workdir: Path) -> dict:
    import yaml

    data = yaml.safe_load((workdir / "sample" / "catalog.yaml").read_text())
    data["datasets"][0]["path"] = str(workdir / "sample" / "events")  # as load_catalog resolves it
    return data


def with_model(data: dict, model: dict) -> dict:
    """The catalog with `model` added, ranking every placement the auto-optimization model ranked."""
    auto = next(m["name"] for m in data["ai_models"] if m["type"] == "auto_optimization")
    decisions = [
        d
        | {
            "placements": [
                a | {"ranking": f"ai_model:{model['name']}"} if a["ranking"] == f"ai_model:{auto}" else a
                for a in d["placements"]
            ]
        }
        for d in data["decisions"]
    ]
    return data | {"ai_models": [*data["ai_models"], model], "decisions": decisions}


def write_attributes(spark, workdir: Path, day: date) -> None:
    """A profile snapshot of the day's profiles with a country and an age (the generator's has segments only)."""
    import json

    from pyspark.sql import functions as F

    from offerrank.engines.delta_spark import Warehouse
    from offerrank.settings import load_settings
    from offerrank.tables import INTERACTIONS

    interactions = Warehouse(spark, load_settings(home=workdir)).read(INTERACTIONS)
    ids = [
        r.profile_id
        for r in interactions.select("profile_id").distinct().filter(F.col("profile_id").isNotNull()).collect()
    ]
    rng = np.random.default_rng(11)
    folder = workdir / "sample" / "profiles" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    countries = np.array(["DE", "FR", "US", "GB", "ES"])
    with open(folder / "attributes.jsonl", "w", encoding="utf-8") as handle:
        for profile_id, country, age in zip(
            ids, countries[rng.integers(0, 5, len(ids))], rng.integers(18, 80, len(ids))
        ):
            profile = {
                "identityMap": {"ECID": [{"id": profile_id, "primary": True}]},
                "homeAddress": {"countryCode": str(country)},
                "person": {"age": int(age)},
            }
            handle.write(json.dumps(profile) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--training", action="store_true", help="also the nightly training figures (Spark)")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-contextual"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    lookup_part(args.workdir / "lookup", args.offers, args.profiles, args.lookups)
    if args.training:
        training_part(args.workdir / "training", args.events_per_day)


if __name__ == "__main__":
    main()
