"""The catalog: make the registry match a file (`apply`), check a file (`catalog validate`), read the registry
(`catalog show`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from offerrank.cli.common import now, registry
from offerrank.settings import Settings


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import load_catalog

    desired = load_catalog(args.file)
    print(registry(settings).commit(desired, now()).summary())
    return 0


def cmd_catalog_validate(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.catalog import load_catalog
    from offerrank.catalog.layout import check_dataset_layout

    path = args.file or settings.catalog_file
    assert path is not None  # Settings derives a default catalog file
    catalog = load_catalog(path)
    warnings = [warning for warning in map(check_dataset_layout, catalog.datasets) if warning]
    counts = ", ".join(
        f"{len(getattr(catalog, kind))} {kind}"
        for kind in ("datasets", "placements", "offers", "formulas", "ai_models", "decisions")
    )
    print(f"{path}: valid ({counts})")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def cmd_catalog_show(args: argparse.Namespace, settings: Settings) -> int:
    catalog = registry(settings).catalog(args.version)
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


def add_parsers(commands: argparse._SubParsersAction) -> None:
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
