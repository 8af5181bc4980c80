"""The decisioning catalog: datasets, placements, offers, ranking formulas, AI models and decisions.

A catalog is read from YAML (`load_catalog`) or from the registry, and validated as a whole: every entity
by its fields, then every reference between them. Errors name the file, the entity and the field.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from offerrank.features import CONTEXT_KEYS, SEGMENT
from offerrank.formula import Formula, FormulaError
from offerrank.landing import date_folders, open_file, scan
from offerrank.tables import ALL_SEGMENTS

if TYPE_CHECKING:
    from offerrank.ranking import RankingMethod

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_SEGMENTS = 50
MAX_FEATURE_COLUMNS = 256  # a contextual model's one-hot columns: its parameters per offer grow with their square
MAX_CAPS = 10
METRIC = "conversion_rate"  # the one optimization metric: clicks per impression
CHANNELS = ("web", "email", "push", "sms", "mobileApp", "inApp", "directMail", "code")


class CatalogError(ValueError):
    """A catalog that is not valid; the message names file, entity and field."""


class _Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dataset(_Entity):
    """An event dataset: a landing root (a folder, or an object-store URI) with one folder per UTC date, in the
    proposition-interactions layout; AI models name the datasets they learn from."""

    name: str = Field(pattern=ID_PATTERN)
    path: str = Field(min_length=1)


class Placement(_Entity):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    channel: Literal[CHANNELS]  # type: ignore[valid-type]


def _check_segment_ids(segments: tuple[str, ...]) -> None:
    """ValueError unless `segments` are distinct segment ids (at most MAX_SEGMENTS)."""
    not_ids = [segment for segment in segments if not re.match(ID_PATTERN, segment)]
    if not_ids:
        raise ValueError(f"segment {not_ids[0]!r} is not a segment id ({ALL_SEGMENTS!r} means all traffic: list none)")
    twice = sorted({segment for segment in segments if segments.count(segment) > 1})
    if twice:
        raise ValueError(f"segments listed more than once: {', '.join(twice)}")
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"{len(segments)} segments given; at most {MAX_SEGMENTS}")


class FrequencyCap(_Entity):
    """At most `limit` `event`s of an offer per `period`, over all traffic (`per: total`) or per profile.

    Periods are calendar periods in UTC: a day resets at 00:00, a week on Monday, a month on its first day; a
    lifetime cap counts from the offer's start date. Clicks are counted from the events, nightly: a click cap per
    day could never bind, and is refused."""

    event: Literal["impression", "click"]
    per: Literal["total", "profile"] = "total"
    limit: int = Field(ge=1)
    period: Literal["day", "week", "month", "lifetime"]

    @model_validator(mode="after")
    def _enforceable(self) -> FrequencyCap:
        if self.event == "click" and self.period == "day":
            raise ValueError(
                "a click cap per day cannot be enforced: clicks are counted nightly from the events; "
                "use week, month or lifetime"
            )
        return self

    @property
    def key(self) -> str:
        """What identifies the rule among the offer's (and its counts in `offer_cap_counts`)."""
        return f"{self.event}:{self.per}:{self.period}"

    def window_start(self, on: date, offer_start: date) -> date:
        """The first day counted on day `on`."""
        if self.period == "day":
            return on
        if self.period == "week":
            return on - timedelta(days=on.weekday())
        if self.period == "month":
            return on.replace(day=1)
        return offer_start


class Offer(_Entity):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    priority: int = Field(ge=0)
    start_date: date
    end_date: date
    placements: tuple[str, ...] = Field(min_length=1)
    characteristics: dict[str, str | int | float | bool] = Field(default_factory=dict)
    segments: tuple[str, ...] = ()  # its audiences: shown only to profiles in one of them (empty: to everyone)
    caps: tuple[FrequencyCap, ...] = Field(default=(), max_length=MAX_CAPS)  # frequency capping rules

    @model_validator(mode="after")
    def _date_range(self) -> Offer:
        if self.end_date < self.start_date:
            raise ValueError(
                f"the date range is empty: end_date {self.end_date} is before start_date {self.start_date}"
            )
        _check_segment_ids(self.segments)
        keys = [cap.key for cap in self.caps]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise ValueError(f"caps: one rule per event, per and period; given more than once: {', '.join(twice)}")
        return self

    def fields(self) -> dict[str, Any]:
        """What a ranking formula may read: the priority and the characteristics."""
        return {**self.characteristics, "priority": self.priority}

    def is_live(self, on: date) -> bool:
        return self.start_date <= on <= self.end_date

    def ranked_for(self, segment: str) -> bool:
        """Whether a ranked list of `segment` may hold the offer: all traffic's list holds every offer (the lookup
        then checks the profile), a segment's list the offers of its audience and those without one."""
        return segment == ALL_SEGMENTS or not self.segments or segment in self.segments

    def shown_to(self, profile_segments: frozenset[str]) -> bool:
        """Whether a profile in `profile_segments` is in the offer's audience."""
        return not self.segments or not profile_segments.isdisjoint(self.segments)


class RankingFormula(_Entity):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    expression: str

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        try:
            Formula(expression)
        except FormulaError as error:
            raise ValueError(str(error)) from None
        return expression

    def compiled(self) -> Formula:
        return Formula(self.expression)


class ModelType(str, Enum):
    auto_optimization = "auto_optimization"
    personalized = "personalized"


class ModelStatus(str, Enum):
    draft = "draft"
    active = "active"
    inactive = "inactive"


class ColdStart(_Entity):
    """Traffic an offer needs within the look-back window before the model ranks it on its own data."""

    min_impressions: int = Field(100, ge=0)
    min_conversions: int = Field(5, ge=0)


ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,9}$"


class Feature(_Entity):
    """One feature of a contextual model: a profile attribute path (e.g. `person.ageBand`) or a request context key,
    categorical (its most frequent `max_levels` values) or numeric (`buckets`: ascending edges). A plain string in
    the catalog is a categorical feature of that name."""

    name: str = Field(pattern=ATTRIBUTE_PATTERN)
    buckets: tuple[float, ...] = Field((), max_length=50)
    max_levels: int = Field(20, ge=1, le=200)
    values: tuple[str, ...] = ()  # a categorical profile attribute's allowed values (empty: any); others quarantined

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("buckets")
    @classmethod
    def _ascending(cls, buckets: tuple[float, ...]) -> tuple[float, ...]:
        if any(not math.isfinite(edge) for edge in buckets) or list(buckets) != sorted(set(buckets)):
            raise ValueError("bucket edges must be finite, distinct and ascending")
        return buckets


class Personalization(_Entity):
    """Traffic an offer needs in the look-back window before the contextual model scores it (Adobe's defaults for
    personalized models); below it, the offer is ranked by its segment posterior."""

    min_impressions: int = Field(250, ge=0)
    min_conversions: int = Field(25, ge=0)
    prior_sd: float = Field(1.0, gt=0, le=10)  # the Gaussian prior's standard deviation of each feature weight


class AIModel(_Entity):
    name: str = Field(pattern=ID_PATTERN)
    description: str = ""
    type: ModelType
    metric: str = METRIC
    datasets: tuple[str, ...] = Field(min_length=1)
    lookback_days: int = Field(14, ge=1, le=365)
    exploration_share: float = Field(0.1, ge=0.0, le=1.0)
    cold_start: ColdStart = ColdStart()
    half_life_days: float | None = Field(None, gt=0)
    segments: tuple[str, ...] = ()
    attributes: tuple[Feature, ...] = Field((), max_length=20)  # profile attributes (paths in the profile export)
    context: tuple[Feature, ...] = Field((), max_length=len(CONTEXT_KEYS))  # what the channel passes per request
    personalization: Personalization = Personalization()
    schedule: Literal["daily", "weekly"] = "daily"  # how often a contextual model trains (weekly: on Mondays)
    status: ModelStatus = ModelStatus.draft

    @field_validator("metric")
    @classmethod
    def _served_metric(cls, metric: str) -> str:
        if metric != METRIC:
            raise ValueError(
                f"metric {metric!r} is not served: {METRIC!r} (clicks per impression) is the only optimization "
                "metric offerrank learns; see the README's 'Optimization metric' for how another would plug in"
            )
        return metric

    @model_validator(mode="after")
    def _personalization(self) -> AIModel:
        _check_segment_ids(self.segments)
        if self.type is ModelType.personalized and not (self.segments or self.contextual):
            raise ValueError("a personalized model needs segments, profile attributes or context")
        if self.type is ModelType.auto_optimization and (self.segments or self.contextual):
            raise ValueError(
                "an auto-optimization model is not personalized: it takes no segments, attributes or context"
            )
        if any(f.name == SEGMENT for f in self.attributes):
            raise ValueError(f"{SEGMENT!r} is not a profile attribute: list segments under `segments`")
        unknown = [f.name for f in self.context if f.name not in CONTEXT_KEYS]
        if unknown:
            raise ValueError(f"unknown context key {unknown[0]!r}; one of {', '.join(CONTEXT_KEYS)}")
        names = [f.name for f in self.features]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"features listed more than once: {', '.join(twice)}")
        columns = 1 + sum((len(f.buckets) + 1 if f.buckets else f.max_levels) + 2 for f in self.features)
        if columns > MAX_FEATURE_COLUMNS:
            raise ValueError(
                f"the features make {columns} model columns (levels, other and unknown each); at most "
                f"{MAX_FEATURE_COLUMNS}: lower max_levels or use fewer buckets"
            )
        return self

    @property
    def features(self) -> tuple[Feature, ...]:
        """A contextual model's features: its profile attributes, its context keys, then (when it has segments)
        the first of its segments the profile is in."""
        if not self.contextual:
            return ()
        segment = [Feature(name=SEGMENT, max_levels=MAX_SEGMENTS)] if self.segments else []
        return (*self.attributes, *self.context, *segment)

    @property
    def contextual(self) -> bool:
        """Whether the model scores each request from profile attributes or context (a contextual model)."""
        return bool(self.attributes or self.context)

    def trains_on(self, day: date, last_trained: date | None) -> bool:
        """Whether a contextual model's parameters are retrained by the run of `day`, last trained `last_trained`:
        daily, or weekly on Mondays (and whenever the last training is a week old or missing)."""
        if self.schedule == "daily" or last_trained is None:
            return True
        return day.weekday() == 0 or (day - last_trained).days >= 7

    @property
    def ranked_segments(self) -> tuple[str, ...]:
        """The segments the model ranks for: all traffic, plus each of a personalized model's segments."""
        return (ALL_SEGMENTS, *self.segments) if self.type is ModelType.personalized else (ALL_SEGMENTS,)

    def window_start(self, last: date) -> date:
        """The first day of the model's look-back window ending `last`."""
        return last - timedelta(days=self.lookback_days - 1)


class DecisionPlacement(_Entity):
    placement: str
    eligible_offers: tuple[str, ...] = ()
    eligible_filter: dict[str, str | int | float | bool] = Field(default_factory=dict)
    ranking: str
    fallback_offer: str

    @field_validator("ranking")
    @classmethod
    def _known_method(cls, ranking: str) -> str:
        from offerrank.ranking import method_of

        method_of(ranking)
        return ranking

    @model_validator(mode="after")
    def _one_eligibility_rule(self) -> DecisionPlacement:
        if bool(self.eligible_offers) == bool(self.eligible_filter):
            raise ValueError(
                "give either eligible_offers (explicit ids) or eligible_filter (characteristics), not both or neither"
            )
        return self

    @property
    def method(self) -> RankingMethod:
        """The ranking method (strategy) this placement is ranked with."""
        from offerrank.ranking import method_of

        return method_of(self.ranking)


class DecisionStatus(str, Enum):
    active = "active"
    draft = "draft"


class Decision(_Entity):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    status: DecisionStatus = DecisionStatus.active
    placements: tuple[DecisionPlacement, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _each_placement_once(self) -> Decision:
        assigned = [assignment.placement for assignment in self.placements]
        twice = sorted({placement for placement in assigned if assigned.count(placement) > 1})
        if twice:
            raise ValueError(f"placements assigned more than once: {', '.join(twice)} (one ranking per placement)")
        return self


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
                active = decision.status is DecisionStatus.active
                method_problems = assignment.method.problems(self, active)
                problems += [f"{where}.ranking: {problem}" for problem in method_problems]
                if not problems:
                    problems += [f"{where}.ranking: {problem}" for problem in self._scoring_problems(assignment)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def get(self, kind: str, ident: str) -> Any:
        key = KINDS[kind]
        return next((e for e in getattr(self, kind) if getattr(e, key) == ident), None)

    def _scoring_problems(self, assignment: DecisionPlacement) -> list[str]:
        """A static score (a formula) that cannot be computed for an offer the placement may rank: found when the
        catalog is applied, not at night."""
        score = assignment.method.scorer(self)
        problems = []
        for offer in self.eligible_offers(assignment) if score else []:
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
        """The offers a decision placement may rank: its explicit ids, or those matching its filter."""
        if assignment.eligible_offers:
            return [self.get("offers", i) for i in assignment.eligible_offers]
        return [
            o for o in self.offers if all(o.characteristics.get(k) == v for k, v in assignment.eligible_filter.items())
        ]

    def eligible_live_offers(self, assignment: DecisionPlacement, on: date) -> list[Offer]:
        """The eligible offers that are live on day `on` and may appear in the assignment's placement."""
        return [o for o in self.eligible_offers(assignment) if o.is_live(on) and assignment.placement in o.placements]

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
    parts, node = [], data
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


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog YAML file; dataset paths are resolved against the file's folder."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such catalog file") from None
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: a catalog is a mapping of entity lists, not {type(data).__name__}")
    for dataset in data.get("datasets") or []:
        if isinstance(dataset, dict) and isinstance(dataset.get("path"), str) and "://" not in dataset["path"]:
            dataset["path"] = str((path.parent / dataset["path"]).resolve())
    return build_catalog(data, str(path))


def entity_json(entity: _Entity) -> str:
    """Canonical JSON of an entity: equal entities give equal text (used to detect changes)."""
    return json.dumps(entity.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def check_dataset_layout(dataset: Dataset, sample_lines: int = 20) -> None:
    """Refuse a dataset whose actual files lack the proposition-interactions layout."""
    files = sorted(
        name for folder in date_folders(dataset.path) for names in scan(folder).files.values() for name in names
    )
    if not files:
        raise CatalogError(
            f"datasets[{dataset.name}]: no event files under {dataset.path} (expected <date>/*.jsonl or *.parquet)"
        )
    newest = files[-1]
    if newest.endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_file(newest) as handle:
            schema = pq.read_schema(handle)
        names = set(schema.names)
        decisioning = schema.field("_experience").type if "_experience" in names else None
        has_propositions = (
            decisioning is not None and "decisioning" in str(decisioning) and "propositions" in str(decisioning)
        )
    else:
        names, has_propositions = set(), False
        with open_file(newest) as raw:
            binary = gzip.open(raw) if newest.endswith(".gz") else raw
            for _, line in zip(range(sample_lines), io.TextIOWrapper(binary, encoding="utf-8", errors="replace")):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    names |= set(record)
                    has_propositions |= "propositions" in (record.get("_experience") or {}).get("decisioning", {})
    missing = [f for f in ("_id", "timestamp", "eventType") if f not in names]
    if missing or not has_propositions:
        lacking = ", ".join(missing + ([] if has_propositions else ["_experience.decisioning.propositions"]))
        raise CatalogError(
            f"datasets[{dataset.name}]: {newest} does not have the proposition-interactions layout (missing {lacking})"
        )
