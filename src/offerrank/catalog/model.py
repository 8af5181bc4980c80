"""The catalog as a whole: its entities validated together (every reference between them, every ranking method's
needs), built from data with errors that name the source, the entity and the field, or read from a YAML file.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError, model_validator

from offerrank.catalog.entities import (
    AIModel,
    CatalogError,
    Dataset,
    Decision,
    DecisionPlacement,
    DecisionStatus,
    Feature,
    ModelStatus,
    Offer,
    Placement,
    RankingFormula,
    _Entity,
)
from offerrank.catalog.formula import FormulaError
from offerrank.engines.landing import root_identity
from offerrank.errors import BadInput

if TYPE_CHECKING:
    from offerrank.ranking import RankingMethod


class Catalog(_Entity):
    datasets: tuple[Dataset, ...] = ()
    placements: tuple[Placement, ...] = ()
    offers: tuple[Offer, ...] = ()
    formulas: tuple[RankingFormula, ...] = ()
    ai_models: tuple[AIModel, ...] = ()
    decisions: tuple[Decision, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        problems = []
        for kind, key in KINDS.items():
            seen: set[str] = set()
            for entity in getattr(self, kind):
                ident = getattr(entity, key)
                if ident in seen:
                    problems.append(f"{kind}[{ident}]: duplicate {key} {ident!r}")
                seen.add(ident)
        problems += _shared_landing_roots(self.datasets)
        placements = {p.id for p in self.placements}
        offers = {o.id: o for o in self.offers}
        datasets = {d.name for d in self.datasets}
        for offer in self.offers:
            for placement in offer.placements:
                if placement not in placements:
                    problems.append(f"offers[{offer.id}].placements: unknown placement {placement!r}")
        declared: dict[str, tuple[str, Feature]] = {}
        for model in self.ai_models:
            for feature in model.attributes:
                first = declared.setdefault(feature.name, (model.name, feature))
                if first[1] != feature:
                    problems.append(
                        f"ai_models[{model.name}].attributes: {feature.name!r} is declared otherwise by AI model "
                        f"{first[0]!r}: one profile attribute, one declaration (buckets, values, max_levels)"
                    )
            for dataset in model.datasets:
                if dataset not in datasets:
                    problems.append(f"ai_models[{model.name}].datasets: unknown dataset {dataset!r}")
        for decision in self.decisions:
            for assignment in decision.placements:
                where = f"decisions[{decision.id}].placements[{assignment.placement}]"
                if assignment.placement not in placements:
                    problems.append(f"{where}.placement: unknown placement {assignment.placement!r}")
                for offer_id in (*assignment.eligible_offers, assignment.fallback_offer):
                    if offer_id not in offers:
                        problems.append(f"{where}: unknown offer {offer_id!r}")
                problems += _fallback_problems(where, offers.get(assignment.fallback_offer))
                active = decision.status is DecisionStatus.active
                method_problems = assignment.method.problems(self, active)
                problems += [f"{where}.ranking: {problem}" for problem in method_problems]
                if not problems:
                    problems += [f"{where}.ranking: {problem}" for problem in self._scoring_problems(assignment)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def get(self, kind: str, ident: str | None) -> Any:
        key = KINDS[kind]
        return next((e for e in getattr(self, kind) if getattr(e, key) == ident), None)

    def _scoring_problems(self, assignment: DecisionPlacement) -> list[str]:
        """A static score (a formula) that cannot be computed for an offer the placement may rank: found when the
        catalog is applied, not at night."""
        score = assignment.method.scorer(self)
        if score is None:
            return []
        problems = []
        for offer in self.eligible_offers(assignment):
            try:
                score(offer)
            except FormulaError as error:
                problems.append(f"formula {assignment.method.ref!r} fails for offer {offer.id}: {error}")
        return problems

    def dataset(self, name: str, source: str = "the catalog") -> Dataset:
        """The event dataset `name`; CatalogError naming the known ones (`source`: where the catalog came from)."""
        found = self.get("datasets", name)
        if found is None:
            known = ", ".join(sorted(dataset.name for dataset in self.datasets)) or "none"
            raise CatalogError(f"no event dataset {name!r} in {source} (known: {known})")
        return found

    def eligible_offers(self, assignment: DecisionPlacement) -> list[Offer]:
        """The offers a decision placement may rank: its explicit ids, or those matching its filter, that may appear
        in its placement (an offer's `placements`)."""
        if assignment.eligible_offers:
            listed = [self.get("offers", i) for i in assignment.eligible_offers]
        else:
            wanted = assignment.eligible_filter.items()
            listed = [o for o in self.offers if all(o.characteristics.get(k) == v for k, v in wanted)]
        return [o for o in listed if assignment.placement in o.placements]

    def eligible_live_offers(self, assignment: DecisionPlacement, on: date) -> list[Offer]:
        """The eligible offers that are live on day `on`."""
        return [o for o in self.eligible_offers(assignment) if o.is_live(on)]

    def active_assignments(self) -> list[tuple[Decision, DecisionPlacement]]:
        """Every placement of an active decision, with its decision, in catalog order."""
        return [(d, a) for d in self.decisions if d.status is DecisionStatus.active for a in d.placements]

    def channel_of(self, placement_id: str) -> str:
        return self.get("placements", placement_id).channel

    def models_in_use(self) -> dict[str, list[str]]:
        """AI model name -> the active decisions' placements that rank with it."""
        used: dict[str, list[str]] = {}
        for decision, assignment in self.active_assignments():
            model = assignment.method.model(self)
            if model is not None:
                used.setdefault(model.name, []).append(f"{decision.id}/{assignment.placement}")
        return used

    def placements_of(self, model: AIModel) -> list[tuple[str, str]]:
        """The (placement id, channel) pairs that active decisions rank with `model`."""
        return sorted(
            {
                (a.placement, self.channel_of(a.placement))
                for _, a in self.active_assignments()
                if a.method.model(self) == model
            }
        )

    def active_models(self) -> list[AIModel]:
        """The active AI models that an active decision ranks with."""
        return [m for m in self.ai_models if m.status is ModelStatus.active and self.placements_of(m)]

    def contextual_attributes(self) -> list[Feature]:
        """The profile attributes of the active contextual models (the first declaration of each path)."""
        found: dict[str, Feature] = {}
        for model in self.active_models():
            for feature in model.attributes:
                found.setdefault(feature.name, feature)
        return list(found.values())

    def ranking_methods(self) -> list[RankingMethod]:
        """The ranking methods active decisions use, by unit: one ranking task each."""
        return sorted({a.method for _, a in self.active_assignments()}, key=lambda m: m.unit)


def _fallback_problems(where: str, fallback: Offer | None) -> list[str]:
    """A fallback offer is what a placement shows when nothing else may be shown, to anyone: like Adobe's, it has no
    audience (the lookup serves it without checking the profile)."""
    if fallback is None or not fallback.segments:
        return []
    return [
        f"{where}.fallback_offer: offer {fallback.id!r} has an audience (segments {', '.join(fallback.segments)}); "
        "a fallback offer is shown to every profile, so it may have none"
    ]


KINDS = {
    "datasets": "name",
    "placements": "id",
    "offers": "id",
    "formulas": "id",
    "ai_models": "name",
    "decisions": "id",
}


def build_catalog(data: dict[str, Any], source: str) -> Catalog:
    """Validate catalog data; a CatalogError names `source`, the entity and the field of every problem."""
    try:
        return Catalog.model_validate(data)
    except ValidationError as error:
        raise CatalogError(
            "\n".join(f"{source}: {_where(data, e['loc'])}: {e['msg']}" for e in error.errors())
        ) from None


def _where(data: dict[str, Any], loc: tuple) -> str:
    """('offers', 3, 'end_date') -> 'offers[offer-004].end_date' (entities named by id, not position)."""
    parts: list[str] = []
    node: Any = data
    for step in loc:
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            node = node[step]
            ident = next(
                (node.get(k) for k in ("id", "name", "placement") if isinstance(node, dict) and node.get(k)), step
            )
            parts[-1] = f"{parts[-1]}[{ident}]" if parts else f"[{ident}]"
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(str(step))
    return ".".join(parts) or "catalog"


def read_yaml(path: Path, what: str = "catalog", error: type[BadInput] = CatalogError) -> Any:
    """The data of the YAML file `path` (a `what` file: a catalog, a world) given by a user; `error` (one line naming
    the file and what is wrong) for anything that makes it unreadable: missing, a folder, not UTF-8, not YAML, a
    number too long for Python to read, nesting too deep to read."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = f"no such {what} file"
    except IsADirectoryError:
        problem = f"is a folder, not a {what} file"
    except OSError as os_error:
        problem = f"cannot be read: {os_error.strerror or os_error}"
    except UnicodeDecodeError as decode_error:
        problem = (
            f"is not UTF-8 text (byte 0x{decode_error.object[decode_error.start]:02x} at offset {decode_error.start}): "
            f"save the {what} file as UTF-8"
        )
    except yaml.YAMLError as yaml_error:
        problem = f"not valid YAML: {_yaml_problem(yaml_error)}"
    except RecursionError:
        problem = f"not readable: its lists or mappings are nested too deeply for a {what} file"
    except ValueError as value_error:  # a scalar YAML reads but Python refuses: a huge integer, a 13th month
        if "integer string conversion" in str(value_error):
            problem = f"not readable: a number has more than {sys.get_int_max_str_digits()} digits"
        else:
            problem = f"not valid YAML: {value_error}"
    raise error(f"{path}: {problem}")


def _shared_landing_roots(datasets: tuple[Dataset, ...]) -> list[str]:
    """A dataset whose landing root is another's, or inside or around it (however spelled): each event would be
    ingested, and counted, once per dataset."""
    problems = []
    roots = [(dataset, root_identity(dataset.path)) for dataset in datasets]
    for at, (dataset, root) in enumerate(roots):
        for other, other_root in roots[:at]:
            shorter = min(len(root), len(other_root))
            if root[:shorter] != other_root[:shorter]:
                continue
            how = "is" if len(root) == len(other_root) else "is inside" if len(root) > shorter else "holds"
            problems.append(
                f"datasets[{dataset.name}].path: {dataset.path} {how} the landing root of dataset {other.name!r} "
                f"({other.path}): its events would count once per dataset"
            )
    return problems


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: where and what (PyYAML's own text spans several lines, with a snippet)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        context = f" ({error.context})" if error.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}{context}"
    return " ".join(str(error).split())


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog YAML file; dataset paths are resolved against the file's folder."""
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: a catalog is a mapping of entity lists, not {type(data).__name__}")
    for dataset in data.get("datasets") or []:
        if isinstance(dataset, dict) and isinstance(dataset.get("path"), str) and "://" not in dataset["path"]:
            dataset["path"] = str((path.parent / dataset["path"]).resolve())
    return build_catalog(data, str(path))


def entity_json(entity: _Entity) -> str:
    """Canonical JSON of an entity: equal entities give equal text (used to detect changes)."""
    return json.dumps(entity.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
