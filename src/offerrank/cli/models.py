"""AI models in the registry: create, list, show, history, update, activate, deactivate, delete (`models ...`), and
what drives a contextual model's scores (`models explain`)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from offerrank.cli.common import now, registry
from offerrank.settings import Settings

if TYPE_CHECKING:
    from offerrank.catalog import Catalog

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


def model_spec(args: argparse.Namespace, base: dict | None = None) -> dict:
    """A model's spec: `base` (the current one, for an update) with the options given on the command line."""
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


def explain_model(settings: Settings, name: str, offer_id: str, placement: str | None, top: int) -> int:
    """Print the feature levels with the largest effects on an offer's click rate in a contextual model's latest
    training."""
    from datetime import date

    from offerrank.catalog import CatalogError
    from offerrank.jobs.rank import latest_parameters
    from offerrank.learning.contextual.training import explain

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
    row: Any  # a named tuple of the frame's columns
    for row in rows.itertuples():
        print(
            f"{name}: offer {offer_id} on {row.placement_id} ({row.channel}), trained {row.as_of_date} on "
            f"{row.window_start}..{row.as_of_date}: {row.impressions:,} impressions, {row.conversions:,} conversions"
        )
        print(f"  {'feature level':<40} {'effect':>8}  90% interval  (click rate against the feature's average level)")
        for reason in explain(list(row.features), list(row.weights), list(row.covariance), top):
            print(f"  {reason['feature']:<40} {reason['effect']:>+8.4f}  [{reason['low']:+.4f}, {reason['high']:+.4f}]")
    return 0


def print_history(opened, name: str) -> None:
    from offerrank.catalog import CatalogError

    entries = opened.history("ai_models", name)
    if not entries:
        raise CatalogError(f"the registry never held an AI model named {name!r}")
    print(f"{'version':>7}  {'when (UTC)':<19}  {'by':<16} {'status':<9} what changed")
    for entry in entries:
        if not entry["readable"]:
            status, changes = "?", "no longer readable (VACUUM removed its files)"
        else:
            status, changes = (entry["spec"]["status"] if entry["spec"] else "-"), entry["changes"]
        print(
            f"{entry['version']:>7}  {entry['timestamp']:%Y-%m-%d %H:%M:%S}  {entry['actor']:<16} {status:<9} {changes}"
        )


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import CatalogError

    if args.action == "explain":  # reads the trained parameters only: no Spark
        return explain_model(settings, args.name, args.offer, args.placement, args.top)
    opened = registry(settings)
    if args.action == "list":
        print(f"{'name':<24} {'type':<18} {'status':<9} {'lookback':>8} {'explore':>7}  datasets")
        for m in opened.catalog().ai_models:
            print(
                f"{m.name:<24} {m.type.value:<18} {m.status.value:<9} {m.lookback_days:>7}d "
                f"{m.exploration_share:>7.2f}  {', '.join(m.datasets)}"
            )
        return 0
    if args.action == "history":  # also for deleted models
        print_history(opened, args.name)
        return 0
    if args.action == "show":
        current = opened.catalog().get("ai_models", args.name)
        if current is None:
            raise CatalogError(f"no AI model named {args.name!r}")
        print(json.dumps(current.settings_in_use(), indent=2))
        return 0
    changes = opened.commit(lambda latest: changed_catalog(latest, args), now())
    print(f"AI model {args.name}: {args.action} done (registry version {changes.version})")
    return 0


def changed_catalog(catalog: Catalog, args: argparse.Namespace) -> Catalog:
    """The catalog after `args.action` on AI model `args.name`, checked against `catalog` (the registry calls it
    again on its new version when another writer committed meanwhile)."""
    from offerrank.catalog import AIModel, CatalogError, ModelStatus
    from offerrank.catalog.registry import refuse_if_in_use, with_model

    current = catalog.get("ai_models", args.name)
    if args.action == "create":
        if current is not None:
            raise CatalogError(f"an AI model named {args.name!r} already exists")
        model = AIModel.model_validate({"name": args.name, **model_spec(args)})
    elif current is None:
        raise CatalogError(f"no AI model named {args.name!r}")
    elif args.action == "update":
        model = AIModel.model_validate(model_spec(args, current.model_dump(mode="json")))
    elif args.action == "activate":
        model = current.model_copy(update={"status": ModelStatus.active})
    elif args.action == "deactivate":
        refuse_if_in_use(catalog, args.name, "deactivate")
        model = current.model_copy(update={"status": ModelStatus.inactive})
    else:  # delete
        refuse_if_in_use(catalog, args.name, "delete")
        model = None
    return with_model(catalog, model, args.name)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="create, list, show, update, activate, deactivate, delete AI models")
    model_actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    model_actions.add_parser("list", help="list AI models").set_defaults(handler=cmd_models)
    explain = model_actions.add_parser("explain", help="the feature levels that change an offer's click rate most")
    explain.add_argument("name")
    explain.add_argument("--offer", required=True)
    explain.add_argument("--placement", help="one placement (default: each the offer was trained on)")
    explain.add_argument("--top", type=int, default=5, help="feature levels, largest effect first")
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
