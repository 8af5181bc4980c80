"""The nightly chain's steps, one command each (`ingest`, `profiles`, `aggregate`, `rank`) and all of them (`run`)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from offerrank.cli.common import iso_date, now, spark
from offerrank.cli.rankings import print_top
from offerrank.errors import BadInput
from offerrank.settings import Settings

FORCE_CAVEAT = "its frequency-cap counts forget what the lookups serve for the rest of that day"


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.chain.nightly import check_run_date, run_day

    check_run_date(args.date, now().date(), args.force)
    report = run_day(spark(settings, "run"), settings, args.date, args.run_id, clock=now)
    print(report.summary())
    if report.success:
        print_top(settings, args.top)
    return 0 if report.success else 1


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.jobs import ingest

    last = args.through or args.date
    if last < args.date:
        raise BadInput(f"--through {last} is before --date {args.date}")
    session = spark(settings, "ingest")
    datasets = ingest.chosen_datasets(session, settings, args.datasets, args.events)
    failed = 0
    for offset in range((last - args.date).days + 1):
        run_date = args.date + timedelta(days=offset)
        result = ingest.run(session, settings, run_date, args.run_id, datasets, args.replace_accepted)
        print(result.summary(), flush=True)
        failed += not result.success
    return 1 if failed else 0


def cmd_profiles(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.registry import Registry
    from offerrank.jobs.profiles import run

    session = spark(settings, "profiles")
    print(run(session, settings, args.date, Registry(settings).catalog().contextual_attributes()).summary())
    return 0


def cmd_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.registry import Registry
    from offerrank.jobs import aggregate

    session = spark(settings, "aggregate")
    print(aggregate.run(session, settings, Registry(settings).catalog(), args.date, args.full_refresh))
    return 0


def cmd_rank(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.stored import registry_catalog
    from offerrank.chain.nightly import check_run_date
    from offerrank.jobs.publish import PublishRefused, rank_and_publish

    check_run_date(args.date, now().date(), args.force or args.dry_run)  # a dry run publishes nothing
    try:
        result = rank_and_publish(
            settings, registry_catalog(settings), args.date, args.run_id, at=now(), dry_run=args.dry_run
        )
    except PublishRefused as refused:
        raise PublishRefused(f"ranking refused: {refused}; channels keep the last good ranking") from None
    print(result.summary())
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="the whole nightly chain for a date: ingest, validate, profiles, aggregate, rank, publish, report"
    )
    run.add_argument("--date", type=iso_date, required=True, help="run date, YYYY-MM-DD")
    run.add_argument("--run-id", help="run id recorded in the tables (default manual__<date>)")
    run.add_argument("--top", type=int, default=3, help="offers per placement to print at the end (default 3)")
    run.add_argument(
        "--force", action="store_true", help="run a date that is not over yet in UTC (today): " + FORCE_CAVEAT
    )
    run.set_defaults(handler=cmd_run)

    ingest = commands.add_parser("ingest", help="ingest and validate one landing date of events into Delta")
    ingest.add_argument("--date", type=iso_date, required=True, help="landing date, YYYY-MM-DD")
    ingest.add_argument("--through", type=iso_date, help="also ingest every later date up to this one, in order")
    ingest.add_argument(
        "--dataset", action="append", dest="datasets", help="an event dataset of the catalog (repeatable; default: all)"
    )
    ingest.add_argument("--events", help="the landing root of the one --dataset named (default: its catalog path)")
    ingest.add_argument("--run-id", help="run id recorded in the tables (default manual__<date>)")
    ingest.add_argument(
        "--replace-accepted",
        action="store_true",
        help="when a dataset's day fails validation, also remove the interactions an earlier passing run accepted "
        "for it (by default they are kept, and the failure says so)",
    )
    ingest.set_defaults(handler=cmd_ingest)

    profiles = commands.add_parser("profiles", help="validate and load the profile-segment snapshot a date uses")
    profiles.add_argument(
        "--date", type=iso_date, required=True, help="run date: its snapshot is the latest on or before it"
    )
    profiles.set_defaults(handler=cmd_profiles)

    aggregate = commands.add_parser("aggregate", help="daily offer facts and conversion rates for a date")
    aggregate.add_argument("--date", type=iso_date, required=True)
    aggregate.add_argument(
        "--full-refresh", action="store_true", help="recompute the facts of the whole look-back window"
    )
    aggregate.set_defaults(handler=cmd_aggregate)

    rank = commands.add_parser("rank", help="rank every decision placement and publish (behind the publish gate)")
    rank.add_argument("--date", type=iso_date, required=True)
    rank.add_argument("--run-id")
    rank.add_argument("--dry-run", action="store_true", help="rank and check the gate without publishing")
    rank.add_argument(
        "--force", action="store_true", help="run a date that is not over yet in UTC (today): " + FORCE_CAVEAT
    )
    rank.set_defaults(handler=cmd_rank)
