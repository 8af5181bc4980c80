"""Benchmark: is a nightly run's cost flat in history? Times aggregate -> rank -> publish for each of N days.

Generates N consecutive days, applies the sample catalog, and for each day ingests it (not timed), then times
aggregate + rank + publish. Prints the per-day wall times, the ratio last day / first day (target <= 1.2), and
the same step with a full recompute of the look-back window on the last day, for comparison.

    python benchmarks/nightly_benchmark.py --days 30 --events-per-day 1000000 [--workdir /tmp/offerrank-nightly]
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

START = date(2026, 10, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-nightly"))
    args = parser.parse_args()

    from offerrank.catalog import load_catalog
    from offerrank.generator import generate
    from offerrank.jobs.aggregate import run_aggregate
    from offerrank.jobs.ingest import run_ingest
    from offerrank.jobs.rank import run_rank
    from offerrank.registry import Registry
    from offerrank.settings import load_settings
    from offerrank.spark import build_spark

    shutil.rmtree(args.workdir, ignore_errors=True)
    generate(args.workdir / "sample", START, args.days, events_per_day=args.events_per_day)
    settings = load_settings(home=args.workdir)
    spark = build_spark(settings, "offerrank-nightly-benchmark")
    at = datetime(2026, 11, 24, tzinfo=timezone.utc)
    registry = Registry(spark, settings)
    registry.commit(load_catalog(args.workdir / "sample" / "catalog.yaml"), at)
    catalog = registry.catalog()

    def nightly(day: date, full_refresh: bool = False) -> tuple[float, dict]:
        started = time.perf_counter()
        counts = run_aggregate(spark, settings, catalog, day, full_refresh)
        run_rank(spark, settings, catalog, day, published_at=at)
        return time.perf_counter() - started, counts

    timings = []
    for offset in range(args.days):
        day = START + timedelta(days=offset)
        run_ingest(spark, settings, day)
        elapsed, counts = nightly(day)
        timings.append(elapsed)
        print(f"day {offset + 1:>2} ({day}): aggregate + rank + publish {elapsed:6.1f} s  "
              f"(facts rewritten for {counts['stats_dates']}: {counts['stats_rows']} rows)", flush=True)
    full, counts = nightly(START + timedelta(days=args.days - 1), full_refresh=True)
    print(f"last day / first day: {timings[-1] / timings[0]:.2f} (mean of last 3 / first 3: "
          f"{sum(timings[-3:]) / sum(timings[:3]):.2f})")
    print(f"full recompute of the window on the last day: {full:.1f} s ({full / timings[-1]:.2f}x the incremental run; "
          f"facts rewritten for {counts['stats_dates']}: {counts['stats_rows']} rows)")


if __name__ == "__main__":
    main()
