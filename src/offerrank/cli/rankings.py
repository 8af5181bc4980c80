"""The published rankings: show, list and roll them back (`rankings`), and read them as a channel does (`lookup`,
`serve`)."""

from __future__ import annotations

import argparse
import json
import sys

from offerrank.cli.common import context_item, now
from offerrank.settings import Settings


def print_top(settings: Settings, top: int) -> None:
    from offerrank.serving.published import top_offer_lines

    print("\n".join(top_offer_lines(settings, top)))


def cmd_rankings(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.delta_rs import table_rows
    from offerrank.jobs.publish import Publisher
    from offerrank.tables import RANKING_RUNS

    if args.action == "show":
        print_top(settings, args.top)
        return 0
    if args.action == "history":
        runs = table_rows(settings, RANKING_RUNS)
        if not runs:
            print("no ranking was published yet")
            return 0
        for run in sorted(runs, key=lambda r: (r["published_at"], r["rankings_table_version"] or -1)):
            version = run["ranking_version"] if run["ranking_version"] is not None else "-"
            print(
                f"{run['published_at'].strftime('%Y-%m-%d %H:%M:%S'):<20} {run['status']:<12} version {version!s:<4} "
                f"date {run['run_date']}  {run['placements']} placements, {run['offers']} offers  {run['reason'] or ''}"
            )
        return 0
    result = Publisher(settings).rollback(args.to_version, f"rollback__{now().isoformat()}", now())
    print(result.summary())
    return 0


def cmd_lookup(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.serving.lookup import RankingLookup
    from offerrank.tables import ALL_SEGMENTS

    lookup = RankingLookup(settings)
    if lookup.last_refresh_detail:  # what could be read still answers (e.g. the catalog's fallbacks)
        print(f"offerrank lookup: warning: {lookup.last_refresh_detail}", file=sys.stderr)
    context = dict(item.split("=", 1) for item in args.context or [])
    answer = lookup.top(
        args.placement, args.channel, args.profile, args.limit, args.mode, args.request_id, args.decision, context
    )
    if args.json:
        print(json.dumps(answer.as_dict(), default=str))
        return 0
    source = (
        f"ranking version {answer.ranking_version}"
        + (f", segment {answer.segment}" if answer.segment != ALL_SEGMENTS else "")
        if answer.ranking_version is not None
        else "no published ranking: fallback"
    )
    dropped = ", ".join(f"{count} {cause}" for cause, count in answer.dropped.items() if count)
    print(
        f"{answer.placement_id} on {answer.channel} (decision {answer.decision_id}), {source}; "
        f"{answer.traffic_type} traffic, request {answer.request_id}{'; dropped ' + dropped if dropped else ''}"
    )
    for offer in answer.offers:
        score = f"{offer.score:.4f}" if offer.score is not None else "-"
        print(
            f"  #{offer.rank} {offer.offer_id:<12} score {score:<8} {offer.reason:<17} "
            f"log trafficType={offer.traffic_type} propensity={offer.propensity:.4f}"
        )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.serving.lookup import RankingLookup
    from offerrank.serving.service import serve

    lookup = RankingLookup(settings)
    print(
        f"serving ranking version {lookup.snapshot.ranking_version} on http://{args.host}:{args.port} "
        f"(docs: /docs, health: /healthz)",
        flush=True,
    )
    serve(lookup, args.host, args.port)
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    rankings = commands.add_parser("rankings", help="show, list or roll back published rankings")
    ranking_actions = rankings.add_subparsers(dest="action", required=True, metavar="ACTION")
    top = ranking_actions.add_parser("show", help="top offers of each placement in the current ranking")
    top.add_argument("--top", type=int, default=3)
    top.set_defaults(handler=cmd_rankings)
    ranking_actions.add_parser("history", help="every publish attempt").set_defaults(handler=cmd_rankings)
    back = ranking_actions.add_parser("rollback", help="publish an earlier ranking version again (a new commit)")
    back.add_argument("--to-version", type=int, required=True)
    back.set_defaults(handler=cmd_rankings)

    lookup = commands.add_parser("lookup", help="ranked offers for a placement on a channel, as a channel sees them")
    lookup.add_argument("--placement", required=True)
    lookup.add_argument("--channel", required=True)
    lookup.add_argument("--profile", help="profile id: its segment's list on personalized placements, audiences")
    lookup.add_argument("--decision", help="decision id, when several decisions assign the placement")
    lookup.add_argument("--limit", type=int, default=10)
    lookup.add_argument(
        "--mode",
        choices=("policy", "published"),
        default="policy",
        help="policy: the order decided for this request (random share, Thompson draw); published: the fixed order",
    )
    lookup.add_argument("--request-id", help="fixes the request's draws (a retry gets the same answer)")
    lookup.add_argument("--json", action="store_true", help="print the answer as JSON")
    lookup.add_argument(
        "--context",
        action="append",
        type=context_item,
        help="request context for contextual models, KEY=VALUE (device, hour; repeatable)",
    )
    lookup.set_defaults(handler=cmd_lookup)

    serve = commands.add_parser("serve", help="the HTTP lookup service (FastAPI + uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)
