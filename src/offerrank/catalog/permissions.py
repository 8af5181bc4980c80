"""Who changes ranking strategies: the actor of a registry change and whether it may manage them.

Adobe's "Manage Ranking Strategies" permission, as a setting: `OFFERRANK_RANKING_MANAGERS` names the principals
allowed to change the catalog, AI models and decisions (empty: everyone). The actor is `OFFERRANK_ACTOR` (a service
account, say), else the OS user. Cheap to import: the CLI maps PermissionDenied to exit 2 before any Spark starts.
"""

from __future__ import annotations

import getpass
import os

from offerrank.errors import Refused
from offerrank.settings import Settings


class PermissionDenied(Refused, PermissionError):
    """A registry change by a principal who may not manage ranking strategies."""


def current_actor(settings: Settings) -> str:
    """Who is making a change: the `actor` setting, else the OS user (`uid:N` for a user without a name, as in a
    container run under an arbitrary id)."""
    if settings.actor:
        return settings.actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def refusal(settings: Settings, actor: str) -> str | None:
    """Why `actor` may not manage ranking strategies (None: it may)."""
    managers = settings.ranking_managers
    if not managers or actor in managers:
        return None
    return (
        f"{actor!r} may not manage ranking strategies (the catalog, AI models, decisions): only "
        f"{', '.join(managers)} may (setting OFFERRANK_RANKING_MANAGERS)"
    )
