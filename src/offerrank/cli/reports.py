"""What the served rankings achieved: an AI model's report (`report`) and off-policy evaluation (`evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from offerrank.cli.common import iso_date
from offerrank.settings import Settings


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.report import ReportUnavailable, latest_fact_date, reports_for, write_report_files

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
    if args.format == "json" and args.out is None:
        print(json.dumps(report.as_json(), indent=1))
        return 0
    out = (args.out or Path(".")).resolve()
    path = out / f"{report.model.name}_{report.window_start}_{report.window_end}.{args.format}"
    write_report_files(report, *((str(path), None) if args.format == "html" else (None, str(path))))
    print(f"{report.model.name} from {report.window_start} to {report.window_end}: {report.verdict}\n{path}")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import load_catalog
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.evaluate import run
    from offerrank.jobs.report import latest_fact_date
    from offerrank.tables import EvaluationSource

    catalog = load_catalog(args.catalog) if args.catalog else registry_catalog(settings)
    last = args.last or latest_fact_date(settings)
    source = (EvaluationSource.DRAFT if args.catalog else EvaluationSource.AD_HOC) if args.write else None
    rows = run(settings, catalog, args.model, args.first, last, args.policy, source)
    if args.format == "json":
        print(rows.to_json(orient="records", date_format="iso", indent=1))
    else:
        print(evaluation_table(rows, source))
    return 0 if rows["refused"].isna().any() else 1


def evaluation_table(rows, source=None) -> str:
    """The all-slots estimates of an evaluation, a line per placement x segment x policy, then the refusals;
    `source`: where they were stored (None: not stored)."""
    first = rows.iloc[0]
    stored = f"stored in policy_evaluations as {source.value}" if source else "not stored: --write stores them"
    lines = [
        f"{first.model_name}: off-policy estimates of each policy's conversion rate on the impressions logged "
        f"{first.window_start}..{first.window_end} ({stored})",
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


def add_parsers(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="an AI model's report: its lift over random serving, per offer and segment (HTML or JSON)"
    )
    report.add_argument("--model", required=True, help="the AI model's name")
    report.add_argument(
        "--from", dest="first", type=iso_date, help="first event date (default: the model's look-back window)"
    )
    report.add_argument("--to", dest="last", type=iso_date, help="last event date (default: the latest aggregated)")
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
        "--from", dest="first", type=iso_date, help="first event date (default: the model's look-back window)"
    )
    evaluate.add_argument("--to", dest="last", type=iso_date, help="last event date (default: the latest aggregated)")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")
    evaluate.add_argument(
        "--write",
        action="store_true",
        help="also store the estimates in policy_evaluations, as source ad_hoc (draft with --catalog), replacing "
        "that source's rows of the same policies only (default: print them, store nothing)",
    )
    evaluate.set_defaults(handler=cmd_evaluate)
