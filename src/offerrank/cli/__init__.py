"""The `offerrank` command line."""

from offerrank.cli.main import build_parser, entry, main

__all__ = ["build_parser", "entry", "main"]
