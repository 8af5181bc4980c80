"""Benchmark: does the closed loop learn? The example worlds through the real lookup and the real nightly chain.

Runs `offerrank.sim.simulator.simulate` on `examples/worlds/steady.yaml` (30 web banners on an auto-optimized placement,
8 push messages on a personalized one with 3 segments, 20,000 requests a day) and `drift.yaml` (the same, then a
drift on day 4 and a new best banner on day 5), 7 days each, and prints per placement and day model traffic's
expected conversion rate as a share of the oracle's (targets: >= 0.95 on the auto placement by day 3, on the
personalized one by day 5) and its lift over random serving, then the nightly runs a new offer took to lead its
placement (target <= 3) and a drift took to be undone, and the wall time.

The contextual model's worlds (`--worlds attributes segments`): `attributes.yaml`, where conversion depends on
country x age band x device and not on segments (the contextual placement's model/oracle on day 7, target >= 0.90,
beside the per-segment placement's on the same traffic), and `segments.yaml`, where it depends on segments only
(the contextual model, which has the segments as a feature, must be within 2 points of the per-segment one).

The launch world (`--worlds launch`): `launch.yaml`, a clearly better web banner and a clearly worse app banner added
on day 4: model/oracle on day 5 must keep >= 0.9 of day 4's, and the better banner must lead within 2 nightly runs.

    python benchmarks/simulator_benchmark.py [--days 7] [--worlds steady drift attributes segments launch] \
        [--workdir /tmp/offerrank-simulate]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

WORLDS = Path(__file__).resolve().parents[1] / "examples" / "worlds"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--worlds", nargs="+", default=["steady", "drift"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-simulate"))
    args = parser.parse_args()

    from offerrank.engines.spark import build_spark
    from offerrank.settings import load_settings
    from offerrank.sim.simulator import load_world, simulate, summarize

    spark = None
    for name in args.worlds:
        world = load_world(WORLDS / f"{name}.yaml")
        out = args.workdir / name
        shutil.rmtree(out, ignore_errors=True)
        spark = spark or build_spark(load_settings(home=out), "offerrank-simulator-benchmark")
        started = time.perf_counter()
        simulate(world, args.days, out, spark=spark)
        elapsed = time.perf_counter() - started
        print(f"\n{name}: {args.days} days x {world.requests_per_day:,} requests in {elapsed:.0f} s")
        print(summarize(world, out), flush=True)
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
