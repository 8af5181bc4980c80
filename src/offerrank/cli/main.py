"""The `offerrank` command line: one sub-command per user task; settings flags override the environment."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from offerrank.settings import Settings, load_settings


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


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


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.jobs import ingest

    spark = _spark(settings, "ingest")
    last = args.through or args.date
    if last < args.date:
        raise SystemExit(f"offerrank ingest: --through {last} is before --date {args.date}")
    datasets = ingest.chosen_datasets(spark, settings, args.datasets, args.events)
    failed = 0
    for offset in range((last - args.date).days + 1):
        run_date = args.date + timedelta(days=offset)
        result = ingest.run(spark, settings, run_date, args.run_id, datasets, args.replace_accepted)
        print(result.summary(), flush=True)
        failed += not result.success
    return 1 if failed else 0


def _spark(settings: Settings, name: str):
    from offerrank.engines.spark import build_spark

    return build_spark(settings, f"offerrank-{name}")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.chain.nightly import run_day

    spark = _spark(settings, "run")
    report = run_day(spark, settings, args.date, args.run_id, _now())
    print(report.summary())
    if report.success:
        _print_top(settings, args.top)
    return 0 if report.success else 1


def cmd_profiles(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.registry import Registry
    from offerrank.jobs.profiles import SnapshotRejected, run

    spark = _spark(settings, "profiles")
    try:
        print(run(spark, settings, args.date, Registry(settings).catalog().contextual_attributes()).summary())
    except SnapshotRejected as rejected:
        print(f"offerrank profiles: {rejected}", file=sys.stderr)
        return 1
    return 0


def cmd_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.registry import Registry
    from offerrank.jobs import aggregate

    spark = _spark(settings, "aggregate")
    print(aggregate.run(spark, settings, Registry(settings).catalog(), args.date, args.full_refresh))
    return 0


def cmd_rank(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.publish import PublishRefused, rank_and_publish

    try:
        result = rank_and_publish(settings, registry_catalog(settings), args.date, args.run_id, _now(), args.dry_run)
    except PublishRefused as refused:
        print(f"offerrank rank: ranking refused: {refused}; channels keep the last good ranking", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.report import ReportUnavailable, latest_fact_date, reports_for, write_report_files

    try:
        catalog = registry_catalog(settings)
        known = sorted(m.name for m in catalog.ai_models)
        if args.model not in known:
            raise ReportUnavailable(f"no AI model {args.model!r} in the registry (known: {', '.join(known) or 'none'})")
        last = args.last or latest_fact_date(settings)
        if args.first and args.first > last:
            raise ReportUnavailable(f"--from {args.first} is after --to {last}")
        (report,) = reports_for(settings, catalog, [args.model], args.first, last)
        if isinstance(report, ReportUnavailable):
            raise report
    except ReportUnavailable as unavailable:
        print(f"offerrank report: {unavailable}", file=sys.stderr)
        return 2
    if args.format == "json" and args.out is None:
        print(json.dumps(report.as_json(), indent=1))
        return 0
    out = (args.out or Path(".")).resolve()
    path = out / f"{report.model.name}_{report.window_start}_{report.window_end}.{args.format}"
    write_report_files(report, *((str(path), None) if args.format == "html" else (None, str(path))))
    print(f"{report.model.name} from {report.window_start} to {report.window_end}: {report.verdict}\n{path}")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import CatalogError, load_catalog
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.evaluate import EvaluationUnavailable, run
    from offerrank.jobs.report import ReportUnavailable, latest_fact_date

    try:
        catalog = load_catalog(args.catalog) if args.catalog else registry_catalog(settings)
        last = args.last or latest_fact_date(settings)
        rows = run(settings, catalog, args.model, args.first, last, args.policy)
    except (EvaluationUnavailable, ReportUnavailable, CatalogError) as unavailable:
        print(f"offerrank evaluate: {unavailable}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(rows.to_json(orient="records", date_format="iso", indent=1))
    else:
        print(evaluation_table(rows))
    return 0 if rows["refused"].isna().any() else 1


def evaluation_table(rows) -> str:
    """The all-slots estimates of an evaluation, a line per placement x segment x policy, then the refusals."""
    first = rows.iloc[0]
    lines = [
        f"{first.model_name}: off-policy estimates of each policy's conversion rate on the impressions logged "
        f"{first.window_start}..{first.window_end} (table policy_evaluations)",
        f"{'placement/channel':<26} {'segment':<16} {'policy':<32} {'logged':>7} {'SNIPW [95% interval]':>26} "
        f"{'DR [95% interval]':>26} {'ESS':>8}",
    ]
    pooled = rows[rows["slot"].isna()]
    for row in pooled[pooled["refused"].isna()].itertuples():
        lines.append(
            f"{row.placement_id + '/' + row.channel:<26} {row.segment:<16} {row.policy:<32} {row.logged_rate:>7.4f} "
            f"{row.snipw:>8.4f} [{row.snipw_low:.4f}, {row.snipw_high:.4f}] "
            f"{row.dr:>8.4f} [{row.dr_low:.4f}, {row.dr_high:.4f}] {row.effective_sample_size:>8.0f}"
        )
    for row in rows[rows["refused"].notna()].itertuples():
        slot = "all slots" if row.slot != row.slot or row.slot is None else f"slot {int(row.slot)}"
        lines.append(f"refused {row.policy} on {row.placement_id}/{row.channel} {row.segment} {slot}: {row.refused}")
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from offerrank.sim.simulator import load_world, simulate, summarize

    try:
        world = load_world(args.world)
    except (OSError, ValidationError) as error:
        print(f"offerrank simulate: {args.world}: {error}", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"offerrank simulate: {args.out} is not empty: a simulation starts from an empty folder", file=sys.stderr)
        return 2
    path = simulate(world, args.days, args.out.resolve(), args.seed)
    print(summarize(world, path.parent))
    print(f"per day: {path}\nleaders per serving day: {path.with_name('leaders.csv')}")
    return 0


def cmd_rankings(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.delta_rs import table_rows
    from offerrank.jobs.publish import Publisher, PublishRefused
    from offerrank.tables import RANKING_RUNS

    if args.action == "show":
        _print_top(settings, args.top)
        return 0
    publisher = Publisher(settings)
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
    else:
        try:
            result = publisher.rollback(args.to_version, f"rollback__{_now().isoformat()}", _now())
        except PublishRefused as refused:
            print(f"offerrank rankings: {refused}", file=sys.stderr)
            return 2
        print(result.summary())
    return 0


def _print_top(settings: Settings, top: int) -> None:
    from offerrank.engines.delta_rs import top_offer_lines

    print("\n".join(top_offer_lines(settings, top)))


def cmd_lookup(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.serving.lookup import LookupRefused, RankingLookup
    from offerrank.tables import ALL_SEGMENTS

    lookup = RankingLookup(settings)
    if lookup.last_refresh_error:  # what could be read still answers (e.g. the catalog's fallbacks)
        print(f"offerrank lookup: warning: {lookup.last_refresh_error}", file=sys.stderr)
    try:
        context = dict(item.split("=", 1) for item in args.context or [])
        answer = lookup.top(
            args.placement, args.channel, args.profile, args.limit, args.mode, args.request_id, args.decision, context
        )
    except LookupRefused as refused:
        print(f"offerrank lookup: {refused}", file=sys.stderr)
        return 2
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


def _registry(settings: Settings):
    from offerrank.catalog.registry import Registry

    return Registry(settings)  # deltalake: no Spark, no JVM


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import load_catalog

    desired = load_catalog(args.file)
    print(_registry(settings).commit(desired, _now()).summary())
    return 0


def cmd_catalog_validate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import load_catalog
    from offerrank.catalog.layout import check_dataset_layout

    path = args.file or settings.catalog_file
    catalog = load_catalog(path)
    for dataset in catalog.datasets:
        check_dataset_layout(dataset)
    counts = ", ".join(
        f"{len(getattr(catalog, kind))} {kind}"
        for kind in ("datasets", "placements", "offers", "formulas", "ai_models", "decisions")
    )
    print(f"{path}: valid ({counts})")
    return 0


def cmd_catalog_show(args: argparse.Namespace, settings: Settings) -> int:
    catalog = _registry(settings).catalog(args.version)
    for decision in catalog.decisions:
        print(f"decision {decision.id} ({decision.status.value}): {decision.name}")
        for assignment in decision.placements:
            placement = catalog.get("placements", assignment.placement)
            offers = catalog.eligible_offers(assignment)
            print(
                f"  {assignment.placement} on {placement.channel}: {len(offers)} eligible offers, ranked by "
                f"{assignment.ranking}, fallback {assignment.fallback_offer}"
            )
    for model in catalog.ai_models:
        print(f"AI model {model.name} ({model.type.value}, {model.status.value}): datasets {', '.join(model.datasets)}")
    return 0


MODEL_OPTIONS = (
    "description",
    "type",
    "datasets",
    "lookback_days",
    "exploration_share",
    "half_life_days",
    "segments",
    "attributes",
    "context",
    "schedule",
)


def _model_spec(args: argparse.Namespace, base: dict | None = None) -> dict:
    spec = dict(base or {})
    for name in MODEL_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            spec[name] = value
    cold_start = dict(spec.get("cold_start") or {})
    for name in ("min_impressions", "min_conversions"):
        if getattr(args, name, None) is not None:
            cold_start[name] = getattr(args, name)
    spec["cold_start"] = cold_start
    return spec


def _context_item(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"context must be KEY=VALUE (got {text!r})")
    return text


def explain_model(settings: Settings, name: str, offer_id: str, placement: str | None, top: int) -> int:
    """Print the features that raise and lower an offer's score most in a contextual model's latest training."""
    from datetime import date

    from offerrank.catalog import CatalogError
    from offerrank.jobs.rank import latest_parameters
    from offerrank.learning.contextual import explain

    parameters = latest_parameters(settings, name, date.max)
    if parameters.empty:
        raise CatalogError(f"AI model {name!r} has no trained parameters (is it a contextual model, trained yet?)")
    rows = parameters[
        (parameters["offer_id"] == offer_id) & (placement is None or parameters["placement_id"] == placement)
    ]
    if rows.empty:
        raise CatalogError(
            f"AI model {name!r} has no parameters for offer {offer_id!r}"
            + (f" on placement {placement!r}" if placement else "")
            + " (below the personalization thresholds: it is ranked by its segment posterior)"
        )
    for row in rows.itertuples():
        print(
            f"{name}: offer {offer_id} on {row.placement_id} ({row.channel}), trained {row.as_of_date} on "
            f"{row.window_start}..{row.as_of_date}: {row.impressions:,} impressions, {row.conversions:,} conversions"
        )
        print(f"  {'feature':<40} {'weight':>8} {'sd':>6}  (log-odds of a click)")
        for reason in explain(list(row.features), list(row.weights), list(row.covariance), top):
            print(f"  {reason['feature']:<40} {reason['weight']:>+8.3f} {reason['sd']:>6.3f}")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import AIModel, CatalogError, ModelStatus
    from offerrank.catalog.registry import refuse_if_in_use, with_model

    if args.action == "explain":  # reads the trained parameters only: no Spark
        return explain_model(settings, args.name, args.offer, args.placement, args.top)
    registry = _registry(settings)
    catalog = registry.catalog()
    if args.action == "list":
        print(f"{'name':<24} {'type':<18} {'status':<9} {'lookback':>8} {'explore':>7}  datasets")
        for m in catalog.ai_models:
            print(
                f"{m.name:<24} {m.type.value:<18} {m.status.value:<9} {m.lookback_days:>7}d "
                f"{m.exploration_share:>7.2f}  {', '.join(m.datasets)}"
            )
        return 0
    if args.action == "history":  # also for deleted models
        entries = registry.history("ai_models", args.name)
        if not entries:
            raise CatalogError(f"the registry never held an AI model named {args.name!r}")
        print(f"{'version':>7}  {'when (UTC)':<19}  {'by':<16} {'status':<9} what changed")
        for entry in entries:
            if not entry["readable"]:
                status, changes = "?", "no longer readable (VACUUM removed its files)"
            else:
                status, changes = (entry["spec"]["status"] if entry["spec"] else "-"), entry["changes"]
            print(
                f"{entry['version']:>7}  {entry['timestamp']:%Y-%m-%d %H:%M:%S}  {entry['actor']:<16} {status:<9} "
                f"{changes}"
            )
        return 0
    current = catalog.get("ai_models", args.name)
    if args.action == "create":
        if current is not None:
            raise CatalogError(f"an AI model named {args.name!r} already exists")
        model = AIModel.model_validate({"name": args.name, **_model_spec(args)})
    elif current is None:
        raise CatalogError(f"no AI model named {args.name!r}")
    elif args.action == "show":
        print(json.dumps(current.model_dump(mode="json"), indent=2))
        return 0
    elif args.action == "update":
        model = AIModel.model_validate(_model_spec(args, current.model_dump(mode="json")))
    elif args.action == "activate":
        model = current.model_copy(update={"status": ModelStatus.active})
    elif args.action == "deactivate":
        refuse_if_in_use(catalog, args.name, "deactivate")
        model = current.model_copy(update={"status": ModelStatus.inactive})
    else:  # delete
        refuse_if_in_use(catalog, args.name, "delete")
        model = None
    changes = registry.commit(with_model(catalog, model, args.name), _now())
    print(f"AI model {args.name}: {args.action} done (registry version {changes.version})")
    return 0


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.delta_spark import Warehouse

    _registry(settings).catalog().dataset(args.dataset, "the registry's catalog")
    updated = Warehouse(_spark(settings, "registry"), settings).adopt_dataset(args.dataset)
    for table, rows in updated.items():
        print(f"{table}: {rows:,} rows without a dataset now in {args.dataset}")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.jars import cached_jars
    from offerrank.engines.spark import build_spark

    spark = build_spark(settings, app_name="offerrank-setup")
    jars = cached_jars(settings)
    print(
        f"Spark {spark.version} on {settings.spark_master}; "
        f"Delta jars cached in {jars[0].parent if jars else settings.jars_cache}"
    )
    spark.stop()
    return 0


def cmd_spark_server(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines import spark_server

    if args.action == "run":
        spark_server.run_server(settings)
    elif args.action == "start":
        spark_server.ensure_local_server(settings)
        print(f"Spark Connect server on sc://{settings.spark_local_ip}:{settings.spark_connect_port}")
    else:
        print("stopped" if spark_server.stop_local_server(settings) else "no local Spark Connect server was running")
    return 0


def cmd_check_deployment(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.deployment import deployment_problems

    problems = deployment_problems(os.environ)
    for problem in problems:
        print(f"offerrank check-deployment: {problem}", file=sys.stderr)
    if not problems:
        print("deployment secrets: ok")
    return 1 if problems else 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    for name, value in settings.model_dump().items():
        print(f"OFFERRANK_{name.upper()}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offerrank", description="Rank marketing offers from proposition-interaction events."
    )
    parser.add_argument("--home", type=Path, help="root of the local defaults (env OFFERRANK_HOME, default ./var)")
    parser.add_argument("--warehouse", help="root of the Delta tables (env OFFERRANK_WAREHOUSE)")
    parser.add_argument("--profiles-root", help="root of profile-segment snapshots (env OFFERRANK_PROFILES_ROOT)")
    parser.add_argument("--catalog", dest="catalog_file", type=Path, help="catalog YAML (env OFFERRANK_CATALOG_FILE)")
    parser.add_argument("--spark-master", help="Spark master URL (env OFFERRANK_SPARK_MASTER)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="write sample events, a catalog and the ground truth")
    generate.add_argument("--start", type=_iso_date, required=True, help="first UTC date, YYYY-MM-DD")
    generate.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    generate.add_argument("--out", type=Path, help="output folder (default $OFFERRANK_HOME/sample)")
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument("--events-per-day", type=int, default=20_000, help="event lines per day (default 20000)")
    generate.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of events followed by an injected bad record (default 0)"
    )
    generate.set_defaults(handler=cmd_generate)

    run = commands.add_parser(
        "run", help="the whole nightly chain for a date: ingest, validate, profiles, aggregate, rank, publish, report"
    )
    run.add_argument("--date", type=_iso_date, required=True, help="run date, YYYY-MM-DD")
    run.add_argument("--run-id", help="run id recorded in the tables (default manual__<date>)")
    run.add_argument("--top", type=int, default=3, help="offers per placement to print at the end (default 3)")
    run.set_defaults(handler=cmd_run)

    profiles = commands.add_parser("profiles", help="validate and load the profile-segment snapshot a date uses")
    profiles.add_argument(
        "--date", type=_iso_date, required=True, help="run date: its snapshot is the latest on or before it"
    )
    profiles.set_defaults(handler=cmd_profiles)

    aggregate = commands.add_parser("aggregate", help="daily offer facts and conversion rates for a date")
    aggregate.add_argument("--date", type=_iso_date, required=True)
    aggregate.add_argument(
        "--full-refresh", action="store_true", help="recompute the facts of the whole look-back window"
    )
    aggregate.set_defaults(handler=cmd_aggregate)

    rank = commands.add_parser("rank", help="rank every decision placement and publish (behind the publish gate)")
    rank.add_argument("--date", type=_iso_date, required=True)
    rank.add_argument("--run-id")
    rank.add_argument("--dry-run", action="store_true", help="rank and check the gate without publishing")
    rank.set_defaults(handler=cmd_rank)

    report = commands.add_parser(
        "report", help="an AI model's report: its lift over random serving, per offer and segment (HTML or JSON)"
    )
    report.add_argument("--model", required=True, help="the AI model's name")
    report.add_argument(
        "--from", dest="first", type=_iso_date, help="first event date (default: the model's look-back window)"
    )
    report.add_argument("--to", dest="last", type=_iso_date, help="last event date (default: the latest aggregated)")
    report.add_argument("--out", type=Path, help="folder of the page (default: here; JSON without --out: stdout)")
    report.add_argument("--format", choices=("html", "json"), default="html")
    report.set_defaults(handler=cmd_report)

    evaluate = commands.add_parser(
        "evaluate",
        help="off-policy evaluation: what other policies (a draft model, priority, random) would have converted",
    )
    evaluate.add_argument("--model", required=True, help="the AI model whose placements' logged impressions to use")
    evaluate.add_argument("--catalog", type=Path, help="a catalog file with draft models (default: the registry's)")
    evaluate.add_argument(
        "--policy",
        action="append",
        help="a candidate: ai_model:<name>[/published], priority, formula:<id> or random (repeatable; default: the "
        "model as served and as published, priority and random)",
    )
    evaluate.add_argument(
        "--from", dest="first", type=_iso_date, help="first event date (default: the model's look-back window)"
    )
    evaluate.add_argument("--to", dest="last", type=_iso_date, help="last event date (default: the latest aggregated)")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")
    evaluate.set_defaults(handler=cmd_evaluate)

    simulate = commands.add_parser(
        "simulate", help="a what-if world served through the real lookup and learned by the real nightly chain"
    )
    simulate.add_argument("--world", type=Path, required=True, help="the world file (see examples/worlds/)")
    simulate.add_argument("--days", type=int, default=7)
    simulate.add_argument("--out", type=Path, required=True, help="an empty folder: events, warehouse, results")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.set_defaults(handler=cmd_simulate)

    rankings = commands.add_parser("rankings", help="show, list or roll back published rankings")
    ranking_actions = rankings.add_subparsers(dest="action", required=True, metavar="ACTION")
    top = ranking_actions.add_parser("show", help="top offers of each placement in the current ranking")
    top.add_argument("--top", type=int, default=3)
    top.set_defaults(handler=cmd_rankings)
    ranking_actions.add_parser("history", help="every publish attempt").set_defaults(handler=cmd_rankings)
    back = ranking_actions.add_parser("rollback", help="publish an earlier ranking version again (a new commit)")
    back.add_argument("--to-version", type=int, required=True)
    back.set_defaults(handler=cmd_rankings)

    ingest = commands.add_parser("ingest", help="ingest and validate one landing date of events into Delta")
    ingest.add_argument("--date", type=_iso_date, required=True, help="landing date, YYYY-MM-DD")
    ingest.add_argument("--through", type=_iso_date, help="also ingest every later date up to this one, in order")
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
        type=_context_item,
        help="request context for contextual models, KEY=VALUE (device, hour; repeatable)",
    )
    lookup.set_defaults(handler=cmd_lookup)

    serve = commands.add_parser("serve", help="the HTTP lookup service (FastAPI + uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)

    setup = commands.add_parser("setup", help="fetch Delta's jars into the cache and check Spark starts")
    setup.set_defaults(handler=cmd_setup)

    server = commands.add_parser(
        "spark-server", help="the Spark Connect server the DAG's Spark steps run on (OFFERRANK_SPARK_REMOTE)"
    )
    server.add_argument(
        "action",
        choices=["start", "stop", "run"],
        help="start (or keep) the local server in the background, stop it, or run it in the foreground (a container)",
    )
    server.set_defaults(handler=cmd_spark_server)

    upgrade = commands.add_parser(
        "upgrade", help="bring a warehouse written by an earlier release up to date (once, after upgrading)"
    )
    upgrade.add_argument(
        "--dataset", required=True, help="the catalog dataset the rows written before event datasets came from"
    )
    upgrade.set_defaults(handler=cmd_upgrade)

    check = commands.add_parser(
        "check-deployment", help="refuse a deployment whose secrets are unset, placeholders or too short (compose)"
    )
    check.set_defaults(handler=cmd_check_deployment)

    apply = commands.add_parser("apply", help="make the registry match a catalog YAML file (idempotent)")
    apply.add_argument("-f", "--file", type=Path, required=True, help="catalog YAML")
    apply.set_defaults(handler=cmd_apply)

    catalog = commands.add_parser("catalog", help="validate a catalog file or show the registry's catalog")
    catalog_actions = catalog.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = catalog_actions.add_parser(
        "validate", help="validate a catalog YAML file (default OFFERRANK_CATALOG_FILE)"
    )
    validate.add_argument("-f", "--file", type=Path)
    validate.set_defaults(handler=cmd_catalog_validate)
    show_catalog = catalog_actions.add_parser("show", help="show the registry's decisions and models")
    show_catalog.add_argument("--version", type=int, help="registry version (time travel)")
    show_catalog.set_defaults(handler=cmd_catalog_show)

    models = commands.add_parser("models", help="create, list, show, update, activate, deactivate, delete AI models")
    model_actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    model_actions.add_parser("list", help="list AI models").set_defaults(handler=cmd_models)
    explain = model_actions.add_parser("explain", help="the features that raise or lower an offer's score most")
    explain.add_argument("name")
    explain.add_argument("--offer", required=True)
    explain.add_argument("--placement", help="one placement (default: each the offer was trained on)")
    explain.add_argument("--top", type=int, default=5, help="features of each sign")
    explain.set_defaults(handler=cmd_models)
    for action, text in (
        ("show", "show one model"),
        ("history", "versions in which the model changed"),
        ("activate", "activate a model"),
        ("deactivate", "deactivate a model"),
        ("delete", "delete a model"),
    ):
        sub = model_actions.add_parser(action, help=text)
        sub.add_argument("name")
        sub.set_defaults(handler=cmd_models)
    for action, text in (("create", "create a model (status draft)"), ("update", "change a model's settings")):
        sub = model_actions.add_parser(action, help=text)
        sub.add_argument("name")
        sub.add_argument("--description")
        sub.add_argument("--type", choices=["auto_optimization", "personalized"], required=action == "create")
        sub.add_argument(
            "--dataset",
            dest="datasets",
            action="append",
            required=action == "create",
            help="event dataset name (repeatable)",
        )
        sub.add_argument("--lookback-days", type=int)
        sub.add_argument("--exploration-share", type=float)
        sub.add_argument("--min-impressions", type=int, help="cold start: impressions needed in the window")
        sub.add_argument("--min-conversions", type=int, help="cold start: conversions needed in the window")
        sub.add_argument("--half-life-days", type=float, help="exponential time decay of old traffic")
        sub.add_argument(
            "--segment", dest="segments", action="append", help="personalized: a segment (repeatable, at most 50)"
        )
        sub.add_argument(
            "--attribute",
            dest="attributes",
            action="append",
            help="personalized: a profile attribute path, e.g. person.ageBand (repeatable)",
        )
        sub.add_argument(
            "--context", action="append", help="personalized: a request context key: device, hour, channel (repeatable)"
        )
        sub.add_argument("--schedule", choices=["daily", "weekly"], help="how often a contextual model trains")
        sub.set_defaults(handler=cmd_models)

    show = commands.add_parser("settings", help="print the effective settings as environment variables")
    show.set_defaults(handler=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = load_settings(
        home=args.home,
        warehouse=args.warehouse,
        catalog_file=args.catalog_file,
        spark_master=args.spark_master,
    )
    from offerrank.catalog import CatalogError
    from offerrank.catalog.permissions import PermissionDenied
    from offerrank.tables import WarehouseOutdated

    try:
        return args.handler(args, settings)
    except (CatalogError, FileNotFoundError, ValidationError, PermissionDenied, WarehouseOutdated) as error:
        print(f"offerrank {args.command}: {_message(error)}", file=sys.stderr)
        return 2


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors())
    return str(error)


def entry() -> None:
    """The `offerrank` command: `main`, then a clean exit (see `offerrank.engines.process`)."""
    from offerrank.engines.process import exit_cleanly

    exit_cleanly(main())


if __name__ == "__main__":
    entry()
