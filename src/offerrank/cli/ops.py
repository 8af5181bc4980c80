"""Running offerrank: install (`setup`), upgrade a warehouse (`upgrade`), the Spark Connect server
(`spark-server`), a deployment's secrets (`check-deployment`) and the effective settings (`settings`)."""

from __future__ import annotations

import argparse
import os
import sys

from offerrank.cli.common import registry, spark
from offerrank.settings import Settings


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


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from offerrank.engines.delta_spark import Warehouse

    registry(settings).catalog().dataset(args.dataset, "the registry's catalog")
    updated = Warehouse(spark(settings, "registry"), settings).adopt_dataset(args.dataset)
    for table, rows in updated.items():
        print(f"{table}: {rows:,} rows without a dataset now in {args.dataset}")
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
    """Exit 1 when a secret is unset, a placeholder or too short: a failed check, like a day that fails validation."""
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


def add_parsers(commands: argparse._SubParsersAction) -> None:
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

    show = commands.add_parser("settings", help="print the effective settings as environment variables")
    show.set_defaults(handler=cmd_settings)
