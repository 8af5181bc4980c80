"""The `offerrank` command line: one sub-command per user task, one module per group of them (each with its
handlers and its `add_parsers`); the settings flags override the environment.

Handlers raise; `main` alone turns an error into the message (one line on stderr) and the exit code:

    exit  meaning                                   raised as (offerrank.errors)
    0     done
    1     failed: a step or check did not succeed   OfferrankError, any unexpected error (with its traceback)
    2     refused: not allowed, nothing changed     Refused (a permission, a gate, an outdated warehouse)
    2     bad input: fix the arguments or files     BadInput (a catalog, a formula, a world file), pydantic's
                                                    ValidationError, FileNotFoundError, argparse's usage errors
    2     unavailable: run what it needs first      Unavailable (no facts, no ranking, no landed events)

Logging (`entry`): offerrank's loggers at OFFERRANK_LOG_LEVEL (default INFO), other libraries' at WARNING, to
stderr; the summaries a command prints go to stdout.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from offerrank.cli import catalog, data, models, ops, rankings, reports, simulate
from offerrank.cli.common import add_settings_flags, settings_of
from offerrank.errors import EXIT_REFUSED, OfferrankError, exit_code

GROUPS = (data, reports, rankings, catalog, models, simulate, ops)
BAD_INPUT = (ValidationError, FileNotFoundError)  # foreign errors that mean the input given is wrong


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offerrank", description="Rank marketing offers from proposition-interaction events."
    )
    add_settings_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (see the module's table)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, settings_of(args))
    except OfferrankError as error:
        print(f"offerrank {args.command}: {error}", file=sys.stderr)
        return exit_code(error)
    except BAD_INPUT as error:
        print(f"offerrank {args.command}: {_message(error)}", file=sys.stderr)
        return EXIT_REFUSED


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors())
    return str(error)


def entry() -> None:
    """The `offerrank` command: logging set up once, `main`, then a clean exit (see `offerrank.engines.process`)."""
    from offerrank.engines.process import configure_logging, exit_cleanly

    configure_logging()
    exit_cleanly(main())


if __name__ == "__main__":
    entry()
