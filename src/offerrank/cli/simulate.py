"""Made-up data: sample events with their ground truth (`generate`), and a what-if world run day by day
(`simulate`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from offerrank.cli.common import iso_date
from offerrank.errors import BadInput
from offerrank.settings import Settings


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.sim.generator import generate

    out = args.out or settings.home / "sample"
    started = time.perf_counter()
    result = generate(
        out, args.start, args.days, seed=args.seed, events_per_day=args.events_per_day, fault_rate=args.fault_rate
    )
    elapsed = time.perf_counter() - started
    faults = sum(sum(kinds.values()) for kinds in result.faults.values())
    print(
        f"wrote {result.events_written:,} events ({faults:,} injected faults) in {len(result.lines_per_date)} date "
        f"folders under {out / 'events'} in {elapsed:.1f}s"
    )
    print(
        f"catalog: {out / 'catalog.yaml'}\nground truth: {out / 'ground_truth.csv'}\nmanifest: {out / 'manifest.json'}"
    )
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from offerrank.sim.simulator import MAX_DAYS, load_world, simulate, summarize

    if not 1 <= args.days <= MAX_DAYS:
        raise BadInput(f"--days must be between 1 and {MAX_DAYS} (got {args.days})")
    try:
        world = load_world(args.world)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'world'}: {e['msg']}" for e in error.errors())
        raise BadInput(f"{args.world}: {problems}") from None
    if args.out.exists() and any(args.out.iterdir()):
        raise BadInput(f"{args.out} is not empty: a simulation starts from an empty folder")
    path = simulate(world, args.days, args.out.resolve(), args.seed)
    print(summarize(world, path.parent))
    print(f"per day: {path}\nleaders per serving day: {path.with_name('leaders.csv')}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="write sample events, a catalog and the ground truth")
    generate.add_argument("--start", type=iso_date, required=True, help="first UTC date, YYYY-MM-DD")
    generate.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    generate.add_argument("--out", type=Path, help="output folder (default $OFFERRANK_HOME/sample)")
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument("--events-per-day", type=int, default=20_000, help="event lines per day (default 20000)")
    generate.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of events followed by an injected bad record (default 0)"
    )
    generate.set_defaults(handler=cmd_generate)

    simulate = commands.add_parser(
        "simulate", help="a what-if world served through the real lookup and learned by the real nightly chain"
    )
    simulate.add_argument("--world", type=Path, required=True, help="the world file (see examples/worlds/)")
    simulate.add_argument("--days", type=int, default=7)
    simulate.add_argument("--out", type=Path, required=True, help="an empty folder: events, warehouse, results")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.set_defaults(handler=cmd_simulate)
