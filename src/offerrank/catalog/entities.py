"""The decisioning catalog: datasets, placements, offers, ranking formulas, AI models and decisions.

A catalog is read from YAML (`load_catalog`) or from the registry, and validated as a whole: every entity
by its fields, then every reference between them. Errors name the file, the entity and the field.
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from offerrank.catalog.formula import Formula, FormulaError
from offerrank.errors import BadInput
from offerrank.learning.contextual.features import CONTEXT_KEYS, SEGMENT
from offerrank.tables import ALL_SEGMENTS

if TYPE_CHECKING:
    from offerrank.ranking import RankingMethod

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_SEGMENTS = 50
MAX_FEATURE_COLUMNS = 256  # a contextual model's one-hot columns: its parameters per offer grow with their square
MAX_CAPS = 10
METRIC = "conversion_rate"  # the one optimization metric: clicks per impression
CHANNELS = ("web", "email", "push", "sms", "mobileApp", "inApp", "directMail", "code")


class CatalogError(BadInput):
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


# A feature weight's prior sd below this learns nothing (a weight of 0.01 is a 1% change in the odds of a click) and,
# far below, overflows the prior's precision (1 / sd^2).
MIN_PRIOR_SD = 0.01


class Personalization(_Entity):
    """Traffic an offer needs in the look-back window before the contextual model scores it (Adobe's defaults for
    personalized models); below it, the offer is ranked by its segment posterior."""

    min_impressions: int = Field(250, ge=0)
    min_conversions: int = Field(25, ge=0)
    # the Gaussian prior's standard deviation of each feature weight
    prior_sd: float = Field(1.0, ge=MIN_PRIOR_SD, le=10)


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
        shadowed = [f.name for f in self.attributes if f.name in CONTEXT_KEYS]
        if shadowed:
            raise ValueError(
                f"profile attribute {shadowed[0]!r} is named like a request-context key ({', '.join(CONTEXT_KEYS)}): "
                "the model would learn the profile's value and be served the request's; list it under `context`, "
                "or name the attribute by its path (e.g. `person.channel`)"
            )
        if not self.contextual and self.personalization != Personalization():
            raise ValueError(
                "`personalization` sets the thresholds of a contextual model's training (with profile attributes or "
                "context) and nothing else: a model without them leaves cold start by `cold_start`"
            )
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

    def settings_in_use(self) -> dict[str, Any]:
        """The model's settings as `models show` prints them: only those that take effect (a model that is not
        contextual has no `personalization` thresholds; its lists leave cold start by `cold_start`)."""
        return self.model_dump(mode="json", exclude=None if self.contextual else {"personalization"})

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
