"""offerrank's errors: one base, three kinds, and the exit code of each, defined once.

- `Refused`: the request is not allowed or not possible as asked (a permission, a gate, a publish older than the
  served one); nothing changed. Exit 2.
- `BadInput`: what the user gave is wrong (a catalog, a world file, a date, a lookup's arguments). Exit 2.
- `Unavailable`: the data the command needs is not there yet (no facts, no ranking, no landed events). Exit 2:
  the command did nothing, and says what to run first.
Any other exception is a failure: exit 1. Every entry point (the CLI, the Spark jobs' `main`) maps errors with
`exit_code`; the message of an `OfferrankError` is one line meant for the user.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


class OfferrankError(Exception):
    """Base of every error offerrank raises on purpose; its message is one line for the user."""

    exit_code = EXIT_FAILED


class Refused(OfferrankError):
    """Not allowed or not possible as asked; nothing changed."""

    exit_code = EXIT_REFUSED


class BadInput(OfferrankError, ValueError):
    """The input given (a file, a parameter, a request) is wrong."""

    exit_code = EXIT_REFUSED


class Unavailable(OfferrankError):
    """The data needed is not there (yet)."""

    exit_code = EXIT_REFUSED


def exit_code(error: BaseException) -> int:
    """The process exit code for an error that ended a command."""
    return error.exit_code if isinstance(error, OfferrankError) else EXIT_FAILED
