"""Benchmark: channel lookups in process and over HTTP, also while new rankings are published.

Builds a warehouse with a catalog of P placements on each of 4 channels and O offers, and publishes a ranking of
every placement x channel (P x 4 x O rows) as the publish step does (deltalake; Spark only commits the catalog).
Then prints:
1. in-process `RankingLookup.top()` latency p50/p99 over N lookups: the published order, and the per-request
   policy (random share, else one Thompson draw over the O offers, with propensities); and the one-off cost of a
   list's first policy answer (its slot probabilities);
2. HTTP (`offerrank serve` in its own process, load from another process, published order so that each answer can
   be checked against the version it names): p50/p99 at a fixed request rate,
   and the most requests/s a closed loop of 32 connections gets;
3. the fixed-rate load again while K new ranking versions are published: errors, answers not matching the
   version they name, and how long after its Delta commit each version was first served;
4. the profile index of personalized lookups (profile -> segments) for 1M and 10M profiles: bytes per membership,
   the process's memory growth, build time and `segments_of` latency.

    python benchmarks/lookup_benchmark.py [--placements 50] [--offers 200] [--lookups 100000] [--rate 1000] \\
        [--seconds 30] [--publishes 5] [--profiles 1000000,10000000] [--workdir /tmp/offerrank-lookup]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from offerrank.tables import ALL_SEGMENTS, OFFER_RANKINGS, PARAMETER_COLUMNS, Reason

CHANNELS = ("web", "email", "push", "mobileApp")


def placement_ids(placements: int) -> list[tuple[str, str]]:
    return [(f"{channel.lower()}-slot-{i:02d}", channel) for channel in CHANNELS for i in range(placements)]


def offer_order(version: int, index: int, offers: int) -> list[str]:
    """The ranked offer ids of placement number `index` in ranking `version` (every version differs)."""
    turn = (version * 7 + index) % offers
    ids = [f"offer-{i:03d}" for i in range(offers)]
    return ids[turn:] + ids[:turn]


def catalog_data(placements: int, offers: int) -> dict:
    slots = placement_ids(placements)
    return {
        "datasets": [{"name": "events", "path": "events"}],
        "placements": [{"id": p, "name": p, "channel": c} for p, c in slots],
        "offers": [
            {
                "id": f"offer-{i:03d}",
                "name": f"Offer {i}",
                "priority": i % 100,
                "start_date": "2026-01-01",
                "end_date": "2027-12-31",
                "placements": [p for p, _ in slots],
                "characteristics": {"tier": "std"},
            }
            for i in range(offers)
        ],
        "ai_models": [
            {
                "name": "bench-model",
                "description": "benchmark",
                "type": "auto_optimization",
                "datasets": ["events"],
                "status": "active",
            }
        ],
        "decisions": [
            {
                "id": f"dec-{channel.lower()}",
                "name": channel,
                "placements": [
                    {
                        "placement": p,
                        "eligible_filter": {"tier": "std"},
                        "ranking": "ai_model:bench-model",
                        "fallback_offer": "offer-000",
                    }
                    for p, c in slots
                    if c == channel
                ],
            }
            for channel in CHANNELS
        ],
    }


def ranking_rows(version: int, placements: int, offers: int) -> list[dict]:
    """Rows of `offer_rankings` (by column name) ranking every placement's offers, differently per version."""
    from offerrank.learning.bandit import probability_best

    rows = []
    published = datetime(2026, 11, 1, 3, tzinfo=UTC)
    alphas = 1.0 + (offers - np.arange(1, offers + 1)) * 0.5 + version
    p_best = probability_best(alphas, np.full(offers, 500.0), seed=version)
    for index, (placement, channel) in enumerate(placement_ids(placements)):
        for rank, offer in enumerate(offer_order(version, index, offers), 1):
            alpha, beta = float(alphas[rank - 1]), 500.0
            rows.append(
                {
                    "ranking_version": version,
                    "model_name": "bench-model",
                    "decision_id": f"dec-{channel.lower()}",
                    "placement_id": placement,
                    "channel": channel,
                    "segment": ALL_SEGMENTS,
                    "rank": rank,
                    "offer_id": offer,
                    "score": alpha / (alpha + beta),
                    "p_best": float(p_best[rank - 1]),
                    "traffic_share": None,
                    "alpha": alpha,
                    "beta": beta,
                    "impressions": 5000,
                    "conversions": 20,
                    "reason": Reason.MODEL.value,
                    **dict.fromkeys(PARAMETER_COLUMNS),
                    "as_of_date": date(2026, 11, 1),
                    "run_id": f"bench-{version}",
                    "published_at": published,
                }
            )
    return rows


def publish(settings, version: int, placements: int, offers: int) -> tuple[int, float]:
    """One overwrite commit of `offer_rankings`, as the publish step writes it (with deltalake, no JVM);
    (table version, commit epoch s)."""
    import pandas as pd

    from offerrank.engines.delta_rs import open_table, write_frame

    rows = pd.DataFrame(ranking_rows(version, placements, offers))
    table_version = write_frame(settings, OFFER_RANKINGS, rows, "overwrite")
    committed = open_table(settings, OFFER_RANKINGS, table_version).history(1)[0]["timestamp"]
    return table_version, committed / 1000


def percentiles(seconds: list[float]) -> str:
    micros = np.array(seconds) * 1e6
    p50, p99, p999 = np.percentile(micros, [50, 99, 99.9])
    return f"p50 {p50:,.1f} us, p99 {p99:,.1f} us, p99.9 {p999:,.1f} us, max {micros.max():,.1f} us"


def in_process(settings, placements: int, lookups: int) -> None:
    from offerrank.serving.lookup import RankingLookup

    lookup = RankingLookup(settings)
    slots = placement_ids(placements)
    rng = random.Random(1)
    keys = [rng.choice(slots) for _ in range(lookups)]
    started = time.perf_counter()
    for placement, channel in slots:  # each list's first policy answer computes its slot probabilities
        lookup.top(placement, channel, limit=10)
    print(
        f"first policy answer of a list (slot probabilities, once per list, day and limit): "
        f"{(time.perf_counter() - started) / len(slots) * 1e3:.1f} ms on average over {len(slots)} lists"
    )
    for mode in ("published", "policy"):
        timings = []
        for i, (placement, channel) in enumerate(keys):
            started = time.perf_counter()
            lookup.top(placement, channel, profile_id=f"profile-{i % 5000}", limit=10, mode=mode)
            timings.append(time.perf_counter() - started)
        print(f"in-process top() {mode}, {lookups:,} lookups: {percentiles(timings)}")


def profile_index(profiles: int) -> None:
    """Build the lookup's profile index of `profiles` profiles in 1 or 2 of 3 segments (1.5 memberships each)."""
    import gc

    import psutil
    import pyarrow as pa
    import pyarrow.compute as pc

    from offerrank.serving.profiles import ProfileIndex

    process = psutil.Process()
    before = process.memory_info().rss  # before the memberships exist: what the index keeps, once they are gone
    number = np.arange(profiles)
    twice = number[number % 2 == 0]
    owners = np.concatenate([number, twice])
    segments = pa.array(np.concatenate([number % 3, (twice + 1) % 3])).cast(pa.string())
    memberships = pa.table(
        {
            "profile_id": pc.binary_join_element_wise("profile-", pa.array(owners).cast(pa.string()), ""),
            "segment": pc.binary_join_element_wise("segment-", segments, ""),
        }
    )
    del number, twice, owners, segments
    started = time.perf_counter()
    index = ProfileIndex.build(memberships)
    built = time.perf_counter() - started
    del memberships
    gc.collect()
    pa.default_memory_pool().release_unused()
    grown = process.memory_info().rss - before
    rng = random.Random(3)
    timings = []
    for _ in range(100_000):
        profile = f"profile-{rng.randrange(profiles * 2)}"  # half of them unknown
        started = time.perf_counter()
        index.segments_of(profile)
        timings.append(time.perf_counter() - started)
    print(
        f"profile index, {profiles:,} profiles, {index.memberships:,} memberships: "
        f"{index.nbytes / index.memberships:.1f} bytes per membership ({index.nbytes / 2**20:,.0f} MiB), "
        f"process memory +{grown / 2**20:,.0f} MiB once built (the input freed), built in {built:.1f} s; "
        f"segments_of {percentiles(timings)}"
    )


# --- the load generator (its own process) ---------------------------------------------------------------------


async def _load(base: str, mode: str, rate: int, seconds: float, placements: int, offers: int) -> dict:
    import aiohttp

    slots = placement_ids(placements)
    index_of = {slot: i for i, slot in enumerate(slots)}
    latencies, errors, mismatches, first_seen = [], 0, 0, {}
    clock = time.perf_counter  # the event loop's clock ticks in milliseconds: too coarse for these latencies
    rng = random.Random(2)

    async def one(session, intended: float) -> None:
        nonlocal errors, mismatches
        placement, channel = rng.choice(slots)
        try:
            async with session.get(
                f"{base}/v1/rankings/{placement}", params={"channel": channel, "limit": "10", "mode": "published"}
            ) as response:
                body = await response.json()
                status = response.status
        except aiohttp.ClientError:
            errors += 1
            return
        latencies.append(clock() - intended)  # from the intended send time: no coordinated omission
        if status != 200:
            errors += 1
            return
        version = body["ranking_version"]
        first_seen.setdefault(version, time.time())
        if [o["offer_id"] for o in body["offers"]] != offer_order(version, index_of[(placement, channel)], offers)[:10]:
            mismatches += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        start = clock()
        if mode == "rate":
            pending = []
            for i in range(int(rate * seconds)):
                intended = start + i / rate
                if intended > clock():
                    await asyncio.sleep(intended - clock())
                pending.append(asyncio.create_task(one(session, intended)))
            await asyncio.gather(*pending)
        else:

            async def worker() -> None:
                while clock() - start < seconds:
                    await one(session, clock())

            await asyncio.gather(*(worker() for _ in range(32)))
        elapsed = clock() - start
    return {
        "requests": len(latencies) + errors,
        "elapsed": elapsed,
        "errors": errors,
        "mismatches": mismatches,
        "latencies": latencies,
        "first_seen": first_seen,
    }


def run_loader(
    base: str, mode: str, rate: int, seconds: float, placements: int, offers: int, out: Path
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "load",
            "--base",
            base,
            "--mode",
            mode,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--placements",
            str(placements),
            "--offers",
            str(offers),
            "--out",
            str(out),
        ]
    )


def report(name: str, result: dict) -> None:
    print(
        f"{name}: {result['requests']:,} requests in {result['elapsed']:.1f} s "
        f"({result['requests'] / result['elapsed']:,.0f}/s), errors {result['errors']}, "
        f"answers not matching their version {result['mismatches']}; {percentiles(result['latencies'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load")  # internal: the load-generator process
    load.add_argument("--base", required=True)
    load.add_argument("--mode", choices=["rate", "max"], required=True)
    load.add_argument("--out", type=Path, required=True)
    for target in (parser, load):
        target.add_argument("--placements", type=int, default=50, help="placements per channel (4 channels)")
        target.add_argument("--offers", type=int, default=200)
        target.add_argument("--rate", type=int, default=1000, help="requests per second of the fixed-rate load")
        target.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--publishes", type=int, default=5)
    parser.add_argument("--profiles", default="1000000,10000000", help="profile counts of the profile index figures")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-lookup"))
    args = parser.parse_args()
    if args.command == "load":
        import uvloop

        result = uvloop.run(_load(args.base, args.mode, args.rate, args.seconds, args.placements, args.offers))
        args.out.write_text(json.dumps(result))
        return

    for profiles in (int(count) for count in args.profiles.split(",") if count):
        profile_index(profiles)

    from offerrank.catalog import build_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.engines.spark import build_spark
    from offerrank.settings import load_settings

    shutil.rmtree(args.workdir, ignore_errors=True)
    settings = load_settings(home=args.workdir)
    spark = build_spark(settings, "offerrank-lookup-benchmark")
    Registry(settings).commit(
        build_catalog(catalog_data(args.placements, args.offers), "benchmark"),
        datetime(2026, 11, 1, tzinfo=UTC),
        check_datasets=False,
    )
    spark.stop()  # only the registry needs Spark: publishing is JVM-free, as in the product
    publish(settings, 1, args.placements, args.offers)
    print(
        f"ranking: {args.placements} placements x {len(CHANNELS)} channels x {args.offers} offers = "
        f"{args.placements * len(CHANNELS) * args.offers:,} rows"
    )
    in_process(settings, args.placements, args.lookups)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "offerrank.cli", "--home", str(args.workdir), "serve", "--port", str(port)],
        env={**os.environ, "OFFERRANK_LOOKUP_REFRESH_SECONDS": "2"},
        stdout=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").json()["ranking_version"] == 1:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the service did not start"
            time.sleep(0.2)
        out = args.workdir / "load.json"
        for name, mode in (
            (f"HTTP at {args.rate}/s for {args.seconds:.0f} s", "rate"),
            ("HTTP closed loop, 32 connections, 10 s", "max"),
        ):
            run_loader(
                base, mode, args.rate, args.seconds if mode == "rate" else 10, args.placements, args.offers, out
            ).wait()
            report(name, json.loads(out.read_text()))

        loader = run_loader(base, "rate", args.rate, args.seconds, args.placements, args.offers, out)
        commits, started = {}, time.monotonic()
        gap = args.seconds / (args.publishes + 2)  # the last commit lands well before the load ends
        for version in range(2, args.publishes + 2):
            time.sleep(max(0.0, started + gap * (version - 1) - time.monotonic()))
            commits[version] = publish(settings, version, args.placements, args.offers)[1]
        loader.wait()
        result = json.loads(out.read_text())
        report(f"HTTP at {args.rate}/s while publishing {args.publishes} versions", result)
        seen = {int(v): t for v, t in result["first_seen"].items()}
        delays = {v: seen[v] - committed for v, committed in commits.items() if v in seen}
        print(
            f"versions served: {sorted(seen)}; first served after its commit: "
            + ", ".join(f"v{v} {d:.2f} s" for v, d in sorted(delays.items()))
            + (f"; never served: {sorted(set(commits) - set(seen))}" if set(commits) - set(seen) else "")
        )
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        print(f"service peak memory (VmHWM): {int(peak) / 1024:,.0f} MB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
