"""The catalog and AI model registry, kept in one Delta table so every change is a versioned commit.

Table `registry` (under the warehouse root): one row per entity: `kind` (datasets, placements, offers,
formulas, ai_models, decisions), `id`, `spec` (canonical JSON), `created_at`, `updated_at`. Each change
(`apply` of a catalog file, or one model operation) is validated against the whole catalog and lands as a
single MERGE, so the registry's history and time travel show every version of the catalog. Each commit records its
actor (`OFFERRANK_ACTOR`, else the OS user) in the commit's user metadata (`userMetadata`, as Spark's MERGE did
before). When `OFFERRANK_RANKING_MANAGERS` names principals, a change by anyone else is refused (PermissionDenied),
logged and recorded in `registry_refusals`. A change is based on the version it read: when another writer committed
the registry meanwhile, it is a ConcurrentCommit and nothing changed.

Reads and writes go through `deltalake` (`offerrank.engines.delta_rs`), so the registry commands start no JVM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import pyarrow as pa
from deltalake.exceptions import DeltaError

from offerrank.catalog import (
    KINDS,
    AIModel,
    Catalog,
    CatalogError,
    ModelStatus,
    build_catalog,
    entity_json,
)
from offerrank.catalog.layout import check_dataset_layout
from offerrank.catalog.permissions import PermissionDenied, current_actor, refusal
from offerrank.catalog.stored import catalog_from_rows
from offerrank.engines.delta_rs import ConcurrentCommit, merge_frame, one_line, open_table, read_rows, write_frame
from offerrank.settings import Settings
from offerrank.tables import REGISTRY, REGISTRY_REFUSALS

log = logging.getLogger(__name__)

# The commit-info entry of a commit's user metadata (Spark's `userMetadata`): the registry's commits record their actor.
USER_METADATA = "userMetadata"

# what reading a version whose data files VACUUM removed raises (pyarrow's FileNotFoundError is an OSError)
UNREADABLE = (OSError, DeltaError)

ALLOWED_TRANSITIONS = {
    (ModelStatus.draft, ModelStatus.active),
    (ModelStatus.active, ModelStatus.inactive),
    (ModelStatus.inactive, ModelStatus.active),
}


@dataclass
class ChangeSet:
    """What a registry change did, by `kind/id`."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    version: int | None = None
    actor: str | None = None
    warnings: list[str] = field(default_factory=list)  # accepted, but worth a look (a dataset with no files yet)

    @property
    def touched(self) -> list[str]:
        return self.created + self.changed + self.deleted

    def summary(self) -> str:
        lines = [
            f"{label}: {', '.join(items) if items else '-'}"
            for label, items in (("created", self.created), ("changed", self.changed), ("deleted", self.deleted))
        ]
        lines.append(f"left alone: {len(self.unchanged)} entities")
        lines.append(
            f"registry version: {self.version} (by {self.actor})"
            if self.version is not None
            else "registry unchanged (no new version)"
        )
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


class Registry:
    """Reads and changes the registry table of one warehouse."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = settings.table_path(REGISTRY.name)

    def rows(self) -> dict[tuple[str, str], dict]:
        """The latest version's rows by (kind, id) (a few hundred small rows)."""
        return self._read()[1]

    def _read(self) -> tuple[int | None, dict[tuple[str, str], dict]]:
        """The latest version (None before the first commit) and its rows by (kind, id)."""
        table = open_table(self.settings, REGISTRY)
        if table is None:
            return None, {}
        return table.version(), {(r["kind"], r["id"]): r for r in read_rows(table)}

    def catalog(self, version: int | None = None) -> Catalog:
        """The registry's catalog (at `version`, else the latest); CatalogError naming the readable versions when
        VACUUM has removed that version's files."""
        if version is not None:
            try:
                return catalog_from_rows(
                    read_rows(open_table(self.settings, REGISTRY, version)), f"registry {self.path}"
                )
            except UNREADABLE as error:
                raise CatalogError(
                    f"registry version {version} is no longer readable ({one_line(error)}): VACUUM removes the files "
                    f"of versions older than {self.settings.vacuum_retention_hours} h; readable versions: "
                    f"{', '.join(str(v) for v in self.readable_versions())}"
                ) from None
        return catalog_from_rows(self.rows().values(), f"registry {self.path}")

    def readable_versions(self) -> list[int]:
        """The registry versions whose files are all still there (VACUUM removes older ones)."""
        return [entry["version"] for entry in self._versions() if entry["rows"] is not None]

    def offer_ids_since(self, start: datetime) -> list[str] | None:
        """The ids of every offer of the catalog versions current at some time from `start` on (the one current at
        `start` and every later one), so that an event of that time may name an offer deleted since; None before
        any catalog has offers."""
        versions = self._versions(since=start)
        if unreadable := [str(version["version"]) for version in versions if version["rows"] is None]:
            log.warning(
                "registry versions %s are no longer readable (VACUUM): their offers are not known to ingest",
                ", ".join(unreadable),
            )
        ids = {r["id"] for version in versions for r in version["rows"] or [] if r["kind"] == "offers"}
        return sorted(ids) or None

    def _versions(self, since: datetime | None = None) -> list[dict]:
        """Every version in the registry's log (or from the one current at `since` on), oldest first: version,
        timestamp, operation, and its rows (None when VACUUM removed its files)."""
        table = open_table(self.settings, REGISTRY)
        if table is None:
            return []
        commits = sorted(table.history(), key=lambda c: c["version"])
        if since is not None:
            current_at = [i for i, c in enumerate(commits) if c["timestamp"] <= since.timestamp() * 1000]
            commits = commits[current_at[-1] if current_at else 0 :]
        versions = []
        for commit in commits:
            try:
                rows = read_rows(open_table(self.settings, REGISTRY, commit["version"]), ["kind", "id", "spec"])
            except UNREADABLE:
                rows = None
            versions.append(
                {
                    "version": commit["version"],
                    "timestamp": datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
                    "operation": commit["operation"],
                    "actor": _actor_of(commit),
                    "rows": rows,
                }
            )
        return versions

    def commit(
        self,
        desired: Catalog | Callable[[Catalog], Catalog],
        now: datetime,
        check_datasets: bool = True,
        actor: str | None = None,
    ) -> ChangeSet:
        """Make the registry equal `desired` in one MERGE, recording `actor` (default: `current_actor`); no commit
        when nothing differs; PermissionDenied when the actor may not manage ranking strategies.

        `desired`: a catalog (`apply`: the file is the truth), or a function of the registry's catalog returning the
        changed one (a `models` command: its change is derived from what it read). When another writer commits the
        registry between the read and this MERGE, the change is re-read, re-validated (transitions, permissions, the
        function run again on the new version) and tried once more; a second conflict is a ConcurrentCommit saying
        that nothing changed."""
        try:
            return self._commit_once(desired, now, check_datasets, actor)
        except ConcurrentCommit as first:
            log.warning("registry changed meanwhile (%s): re-reading and trying once more", first)
        try:
            return self._commit_once(desired, now, check_datasets, actor)
        except ConcurrentCommit:
            raise ConcurrentCommit("the registry changed meanwhile; nothing changed; run it again") from None

    def _commit_once(
        self,
        desired: Catalog | Callable[[Catalog], Catalog],
        now: datetime,
        check_datasets: bool,
        actor: str | None,
    ) -> ChangeSet:
        """One attempt of `commit`, based on the version it reads; ConcurrentCommit when another writer committed
        the registry after that version."""
        read_version, current = self._read()
        if callable(desired):
            desired = desired(catalog_from_rows(current.values(), f"registry {self.path}"))
        _check_transitions(current, desired)
        layout_warnings = [check_dataset_layout(dataset) for dataset in desired.datasets] if check_datasets else []
        warnings = [warning for warning in layout_warnings if warning]
        wanted = {
            (kind, getattr(e, key)): entity_json(e) for kind, key in KINDS.items() for e in getattr(desired, kind)
        }
        changes = ChangeSet(actor=actor or current_actor(self.settings), warnings=warnings)
        at = _utc(now)
        upserts = []
        for ref, spec in sorted(wanted.items()):
            label = "/".join(ref)
            if ref not in current:
                changes.created.append(label)
                upserts.append((*ref, spec, at, at))
            elif current[ref]["spec"] != spec:
                changes.changed.append(label)
                upserts.append((*ref, spec, _utc(current[ref]["created_at"]), at))
            else:
                changes.unchanged.append(label)
        deletions = [(*ref, None, None, None) for ref in sorted(set(current) - set(wanted))]
        changes.deleted = ["/".join(d[:2]) for d in deletions]
        if not upserts and not deletions:
            return changes
        self._authorize(changes, now)
        source = pa.Table.from_pylist(
            [dict(zip(REGISTRY.column_names, row)) for row in upserts + deletions], schema=REGISTRY.arrow_schema()
        )
        changes.version = merge_frame(
            self.settings,
            REGISTRY,
            source,
            ("kind", "id"),
            read_version,
            delete_if_null="spec",
            metadata={USER_METADATA: json.dumps({"actor": changes.actor})},
        )
        return changes

    def _authorize(self, changes: ChangeSet, now: datetime) -> None:
        """Refuse (and log, and record in `registry_refusals`) a change by an actor who is not a ranking manager."""
        assert changes.actor is not None  # `commit` names one
        reason = refusal(self.settings, changes.actor)
        if reason is None:
            return
        touched = ", ".join(changes.touched)
        log.warning("registry change refused: %s; it would have changed %s", reason, touched)
        refused = {"refused_at": now, "actor": changes.actor, "changes": touched, "reason": reason}
        write_frame(self.settings, REGISTRY_REFUSALS, pa.Table.from_pylist([refused], REGISTRY_REFUSALS.arrow_schema()))
        raise PermissionDenied(f"{reason}; nothing changed (it would have changed {touched})")

    def version(self) -> int | None:
        """The registry's latest version (None before its first commit)."""
        table = open_table(self.settings, REGISTRY)
        return None if table is None else table.version()

    def history(self, kind: str, ident: str) -> list[dict]:
        """Every registry version in which the entity changed: version, timestamp, operation, actor, its spec (None
        once deleted), `changes` (what differs from its previous spec) and `readable`; a version whose files VACUUM
        removed is listed as not readable (spec unknown)."""
        entries, previous = [], None
        for commit in self._versions():
            if commit["rows"] is None:
                entries.append({**_commit_fields(commit), "spec": None, "changes": None, "readable": False})
                previous = _UNKNOWN
                continue
            spec = next((r["spec"] for r in commit["rows"] if (r["kind"], r["id"]) == (kind, ident)), None)
            if spec != previous:
                after = json.loads(spec) if spec else None
                if previous is _UNKNOWN:
                    changes = "changed"
                else:  # the spec of a readable version: a JSON text, or None where the entity did not exist
                    changes = spec_changes(json.loads(cast("str | None", previous) or "null"), after)
                entries.append({**_commit_fields(commit), "spec": after, "changes": changes, "readable": True})
            previous = spec
        return entries


def _utc(moment: datetime) -> datetime:
    """A time in UTC (a naive one taken as local time, as Spark's `createDataFrame` took it)."""
    return moment.astimezone(UTC)


_UNKNOWN = object()  # the entity's spec in a version that can no longer be read


def _commit_fields(commit: dict) -> dict:
    return {name: commit[name] for name in ("version", "timestamp", "operation", "actor")}


def _actor_of(commit: dict) -> str:
    """The actor a registry commit recorded (`unknown` for commits made before actors were recorded)."""
    try:
        return json.loads(commit.get("userMetadata") or "{}").get("actor") or "unknown"
    except (json.JSONDecodeError, AttributeError):
        return "unknown"


def spec_changes(before: dict | None, after: dict | None) -> str:
    """What changed in an entity between two specs, e.g. `exploration_share 0.1 -> 0.2; status draft -> active`."""
    if before is None or after is None:
        return "created" if after is not None else "deleted"
    fields = sorted(set(before) | set(after))
    changed = [
        f"{name} {_short(before.get(name))} -> {_short(after.get(name))}"
        for name in fields
        if before.get(name) != after.get(name)
    ]
    return "; ".join(changed) or "unchanged"


def _short(value: object) -> str:
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _check_transitions(current: dict[tuple[str, str], dict], desired: Catalog) -> None:
    for model in desired.ai_models:
        before = current.get(("ai_models", model.name))
        if before is None:
            continue
        old = ModelStatus(json.loads(before["spec"])["status"])
        if old != model.status and (old, model.status) not in ALLOWED_TRANSITIONS:
            raise CatalogError(
                f"ai_models[{model.name}].status: cannot go from {old.value} to {model.status.value} "
                f"(allowed: draft -> active -> inactive -> active)"
            )


def with_model(catalog: Catalog, model: AIModel | None, name: str) -> Catalog:
    """The catalog with AI model `name` replaced by `model` (or removed when None), re-validated."""
    models = [m for m in catalog.ai_models if m.name != name] + ([model] if model else [])
    data = catalog.model_dump(mode="json")
    data["ai_models"] = [m.model_dump(mode="json") for m in sorted(models, key=lambda m: m.name)]
    return build_catalog(data, "registry")


def refuse_if_in_use(catalog: Catalog, name: str, action: str) -> None:
    users = catalog.models_in_use().get(name)
    if users:
        raise CatalogError(
            f"cannot {action} AI model {name!r}: active decision placements use it ({', '.join(users)}); "
            f"assign them another ranking first"
        )
