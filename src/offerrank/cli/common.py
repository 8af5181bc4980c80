"""What the command groups share: argument types, the settings flags, the clock, and the Spark-backed handles."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path

from offerrank.settings import Settings, load_settings


def iso_date(text: str) -> date:
    """An argparse type: a YYYY-MM-DD date (argparse exits 2 with the message otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def context_item(text: str) -> str:
    """An argparse type: a request context item, KEY=VALUE."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"context must be KEY=VALUE (got {text!r})")
    return text


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override the environment's settings for one command."""
    parser.add_argument("--home", type=Path, help="root of the local defaults (env OFFERRANK_HOME, default ./var)")
    parser.add_argument("--warehouse", help="root of the Delta tables (env OFFERRANK_WAREHOUSE)")
    parser.add_argument("--profiles-root", help="root of profile-segment snapshots (env OFFERRANK_PROFILES_ROOT)")
    parser.add_argument("--catalog", dest="catalog_file", type=Path, help="catalog YAML (env OFFERRANK_CATALOG_FILE)")
    parser.add_argument("--spark-master", help="Spark master URL (env OFFERRANK_SPARK_MASTER)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The effective settings: the environment's, overridden by the settings flags given."""
    return load_settings(
        home=args.home,
        warehouse=args.warehouse,
        catalog_file=args.catalog_file,
        spark_master=args.spark_master,
        profiles_root=args.profiles_root,
    )


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def spark(settings: Settings, name: str):
    """This command's SparkSession (started on first use)."""
    from offerrank.engines.spark import build_spark

    return build_spark(settings, f"offerrank-{name}")


def registry(settings: Settings):
    """The catalog registry (deltalake: no Spark, no JVM)."""
    from offerrank.catalog.registry import Registry

    return Registry(settings)
