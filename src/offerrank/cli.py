"""The `offerrank` command line: one sub-command per user task; settings flags override the environment."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from offerrank.settings import Settings, load_settings


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.generator import generate

    out = args.out or settings.home / "sample"
    started = time.perf_counter()
    result = generate(out, args.start, args.days, seed=args.seed, events_per_day=args.events_per_day,
                      fault_rate=args.fault_rate)
    elapsed = time.perf_counter() - started
    faults = sum(sum(kinds.values()) for kinds in result.faults.values())
    print(f"wrote {result.events_written:,} events ({faults:,} injected faults) in {len(result.lines_per_date)} date "
          f"folders under {out / 'events'} in {elapsed:.1f}s")
    print(f"catalog: {out / 'catalog.yaml'}\nground truth: {out / 'ground_truth.csv'}\nmanifest: {out / 'manifest.json'}")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.jobs.ingest import run_ingest
    from offerrank.spark import build_spark

    spark = build_spark(settings, "offerrank-ingest")
    last = args.through or args.date
    if last < args.date:
        raise SystemExit(f"offerrank ingest: --through {last} is before --date {args.date}")
    failed = 0
    for offset in range((last - args.date).days + 1):
        run_date = args.date + timedelta(days=offset)
        result = run_ingest(spark, settings, run_date, args.run_id, args.events)
        print(result.summary(), flush=True)
        failed += not result.success
    return 1 if failed else 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.spark import build_spark, cached_jars

    spark = build_spark(settings, app_name="offerrank-setup")
    print(f"Spark {spark.version} on {settings.spark_master}; Delta jars cached in "
          f"{cached_jars(settings)[0].parent if cached_jars(settings) else settings.jars_cache}")
    spark.stop()
    return 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    for name, value in settings.model_dump().items():
        print(f"OFFERRANK_{name.upper()}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offerrank", description="Rank marketing offers from proposition-interaction events.")
    parser.add_argument("--home", type=Path, help="root of the local defaults (env OFFERRANK_HOME, default ./var)")
    parser.add_argument("--warehouse", help="root of the Delta tables (env OFFERRANK_WAREHOUSE)")
    parser.add_argument("--events-root", help="landing root of event files (env OFFERRANK_EVENTS_ROOT)")
    parser.add_argument("--catalog", dest="catalog_file", type=Path, help="catalog YAML (env OFFERRANK_CATALOG_FILE)")
    parser.add_argument("--spark-master", help="Spark master URL (env OFFERRANK_SPARK_MASTER)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="write sample events, a catalog and the ground truth")
    generate.add_argument("--start", type=_iso_date, required=True, help="first UTC date, YYYY-MM-DD")
    generate.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    generate.add_argument("--out", type=Path, help="output folder (default $OFFERRANK_HOME/sample)")
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument("--events-per-day", type=int, default=20_000, help="event lines per day (default 20000)")
    generate.add_argument("--fault-rate", type=float, default=0.0,
                          help="share of events followed by an injected bad record (default 0)")
    generate.set_defaults(handler=cmd_generate)

    ingest = commands.add_parser("ingest", help="ingest and validate one landing date of events into Delta")
    ingest.add_argument("--date", type=_iso_date, required=True, help="landing date, YYYY-MM-DD")
    ingest.add_argument("--through", type=_iso_date, help="also ingest every later date up to this one, in order")
    ingest.add_argument("--events", help="landing root holding YYYY-MM-DD folders (default OFFERRANK_EVENTS_ROOT)")
    ingest.add_argument("--run-id", help="run id recorded in the tables (default manual__<date>)")
    ingest.set_defaults(handler=cmd_ingest)

    setup = commands.add_parser("setup", help="fetch Delta's jars into the cache and check Spark starts")
    setup.set_defaults(handler=cmd_setup)

    show = commands.add_parser("settings", help="print the effective settings as environment variables")
    show.set_defaults(handler=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = load_settings(home=args.home, warehouse=args.warehouse, events_root=args.events_root,
                             catalog_file=args.catalog_file, spark_master=args.spark_master)
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
