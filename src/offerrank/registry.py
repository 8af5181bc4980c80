"""The catalog and AI model registry, kept in one Delta table so every change is a versioned commit.

Table `registry` (under the warehouse root): one row per entity: `kind` (datasets, placements, offers,
formulas, ai_models, decisions), `id`, `spec` (canonical JSON), `created_at`, `updated_at`. Each change
(`apply` of a catalog file, or one model operation) is validated against the whole catalog and lands as a
single MERGE, so the registry's history and time travel show every version of the catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from offerrank.catalog import (
    KINDS,
    AIModel,
    Catalog,
    CatalogError,
    ModelStatus,
    build_catalog,
    check_dataset_layout,
    entity_json,
)
from offerrank.settings import Settings
from offerrank.storage import Warehouse
from offerrank.tables import REGISTRY

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

    def summary(self) -> str:
        lines = [
            f"{label}: {', '.join(items) if items else '-'}"
            for label, items in (("created", self.created), ("changed", self.changed), ("deleted", self.deleted))
        ]
        lines.append(f"left alone: {len(self.unchanged)} entities")
        lines.append(
            f"registry version: {self.version}" if self.version is not None else "registry unchanged (no new version)"
        )
        return "\n".join(lines)


class Registry:
    """Reads and changes the registry table of one warehouse."""

    def __init__(self, spark: SparkSession, settings: Settings):
        self.spark = spark
        self.warehouse = Warehouse(spark, settings)
        self.path = self.warehouse.path(REGISTRY)

    def rows(self, version: int | None = None) -> dict[tuple[str, str], dict]:
        table = self.warehouse.read(REGISTRY, version)
        return {(r.kind, r.id): r.asDict() for r in table.collect()} if table is not None else {}

    def catalog(self, version: int | None = None) -> Catalog:
        """The registry's catalog (at `version`, else the latest)."""
        data: dict[str, list] = {kind: [] for kind in KINDS}
        for (kind, _), row in sorted(self.rows(version).items()):
            data[kind].append(json.loads(row["spec"]))
        return build_catalog(data, f"registry {self.path}")

    def commit(self, desired: Catalog, now: datetime, check_datasets: bool = True) -> ChangeSet:
        """Make the registry equal `desired` in one MERGE; no commit when nothing differs."""
        current = self.rows()
        _check_transitions(current, desired)
        if check_datasets:
            for dataset in desired.datasets:
                check_dataset_layout(dataset)
        wanted = {
            (kind, getattr(e, key)): entity_json(e) for kind, key in KINDS.items() for e in getattr(desired, kind)
        }
        changes = ChangeSet()
        upserts = []
        for ref, spec in sorted(wanted.items()):
            label = "/".join(ref)
            if ref not in current:
                changes.created.append(label)
                upserts.append((*ref, spec, now, now))
            elif current[ref]["spec"] != spec:
                changes.changed.append(label)
                upserts.append((*ref, spec, current[ref]["created_at"], now))
            else:
                changes.unchanged.append(label)
        deletions = [(*ref, None, None, None) for ref in sorted(set(current) - set(wanted))]
        changes.deleted = ["/".join(d[:2]) for d in deletions]
        if not upserts and not deletions:
            return changes
        source = self.spark.createDataFrame(upserts + deletions, REGISTRY.ddl)
        if not current:
            self.warehouse.overwrite(source, REGISTRY)
        else:
            (
                self.warehouse.delta_table(REGISTRY)
                .alias("r")
                .merge(source.alias("s"), "r.kind = s.kind AND r.id = s.id")
                .whenMatchedDelete(condition="s.spec IS NULL")
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll(condition="s.spec IS NOT NULL")
                .execute()
            )
        changes.version = self.version()
        return changes

    def version(self) -> int:
        return self.warehouse.version(REGISTRY)

    def history(self, kind: str, ident: str) -> list[dict]:
        """Every registry version in which the entity changed: version, timestamp, operation, its spec or None."""
        if not self.warehouse.exists(REGISTRY):
            return []
        versions = self.warehouse.delta_table(REGISTRY).history().select("version", "timestamp", "operation")
        entries, previous = [], None
        for commit in versions.orderBy("version").collect():
            row = (
                self.warehouse.read(REGISTRY, commit.version)
                .filter((F.col("kind") == kind) & (F.col("id") == ident))
                .select("spec")
                .first()
            )
            spec = row.spec if row else None
            if spec != previous:
                entries.append(
                    {
                        "version": commit.version,
                        "timestamp": commit.timestamp,
                        "operation": commit.operation,
                        "spec": json.loads(spec) if spec else None,
                    }
                )
            previous = spec
        return entries


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
