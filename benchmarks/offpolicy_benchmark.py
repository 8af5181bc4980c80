"""Benchmark: how often does an off-policy estimate's 95% interval contain the true conversion rate?

For each of N seeds, generates a world (the generator knows every offer's true rate per placement and segment),
runs the real chain on it (ingest, aggregate: the logged propensities land in `slot_stats_daily`), then estimates
uniformly random serving on every placement of every AI model from all logged traffic (mostly the model's) with
`offerrank.jobs.evaluate`, and compares each interval with the generator's true expected rate of random serving.
Prints per estimator the coverage over seeds x placements (target >= 0.90), the mean interval width and the mean
effective sample size.

    python benchmarks/offpolicy_benchmark.py --seeds 20 --events-per-day 10000 [--days 2]
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

START = date(2026, 11, 1)
ESTIMATORS = ("ipw", "snipw", "dr")


def true_random_rates(sample: Path) -> dict[str, float]:
    """Per placement: the expected rate of uniformly random serving, segments weighted by their items shown."""
    truth = pd.read_csv(sample / "ground_truth_traffic.csv")
    rates = {}
    for placement, rows in truth.groupby("placement_id"):
        items = rows.groupby("segment")["items_shown"].sum()
        random = rows[rows["traffic_type"] == "random"].set_index("segment")["expected_conversion_rate"]
        rates[placement] = float((random * items).sum() / items.sum())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--events-per-day", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-offpolicy"))
    args = parser.parse_args()

    from offerrank.catalog import load_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.engines.spark import build_spark
    from offerrank.jobs import aggregate, ingest
    from offerrank.jobs.evaluate import RANDOM_POLICY, Policy, evaluate_model, read_logs
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate

    days = [START + timedelta(days=i) for i in range(args.days)]
    spark, outcomes = None, []
    for seed in range(1, args.seeds + 1):
        home = args.workdir / f"seed-{seed}"
        shutil.rmtree(home, ignore_errors=True)
        generate(home / "sample", START, days=args.days, seed=seed, events_per_day=args.events_per_day)
        settings = load_settings(home=home, spark_shuffle_partitions=2)
        spark = spark or build_spark(settings, "offerrank-offpolicy-benchmark")
        catalog = load_catalog(home / "sample" / "catalog.yaml")
        Registry(settings).commit(catalog, datetime(2026, 11, 24, tzinfo=UTC))
        for day in days:
            ingest.run(spark, settings, day)
            aggregate.run(spark, settings, catalog, day)
        truth = true_random_rates(home / "sample")
        logged, facts = read_logs(settings, days[0], days[-1], 1, ["events"])
        for model in catalog.active_models():
            rows = evaluate_model(catalog, model, [Policy(RANDOM_POLICY)], logged, facts, days[0], days[-1], settings)
            pooled = rows[rows["slot"].isna() & (rows["segment"] == "*") & rows["refused"].isna()]
            for row in pooled.itertuples():
                outcomes.append(
                    {"seed": seed, "placement": row.placement_id, "truth": truth[row.placement_id]}
                    | {name: getattr(row, name) for name in ESTIMATORS}
                    | {f"{name}_low": getattr(row, f"{name}_low") for name in ESTIMATORS}
                    | {f"{name}_high": getattr(row, f"{name}_high") for name in ESTIMATORS}
                    | {"ess": row.effective_sample_size, "impressions": row.impressions}
                )
        shutil.rmtree(home, ignore_errors=True)
        print(f"seed {seed}: {sum(o['seed'] == seed for o in outcomes)} placements estimated", flush=True)
    frame = pd.DataFrame(outcomes)
    print(
        f"\n{args.seeds} seeds x {frame['placement'].nunique()} placements = {len(frame)} estimates of uniformly "
        f"random serving ({args.days} days x {args.events_per_day:,} events a seed; logged impressions per estimate: "
        f"mean {frame['impressions'].mean():,.0f}, effective sample size mean {frame['ess'].mean():,.0f})"
    )
    for name in ESTIMATORS:
        covered = (frame[f"{name}_low"] <= frame["truth"]) & (frame["truth"] <= frame[f"{name}_high"])
        width = (frame[f"{name}_high"] - frame[f"{name}_low"]).mean()
        error = (frame[name] - frame["truth"]).abs().mean()
        print(
            f"{name:>6}: 95% interval contains the true rate {covered.mean():.0%} of the time "
            f"(target >= 90%); mean width {width:.4f}; mean absolute error {error:.4f}"
        )
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
