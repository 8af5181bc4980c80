"""The features of a contextual model: how a profile attribute or request context value becomes a level, and how
levels become the one-hot vector the model scores.

A feature is categorical (its values are its levels, the most frequent `max_levels` kept, the rest `other`) or
numeric (`buckets`: ascending edges, levels `<e0`, `e0-e1`, ..., `>=en`). A missing value, or a numeric one that
is not a number, is the level `unknown`. The `FeatureDictionary` of a trained model lists its features as
`name=level` (plus the intercept), each with an `unknown` and an `other` level, so every request encodes, whatever
it holds. Pure Python and numpy; `spark_level` is the same bucketing as a Spark column.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, SupportsFloat, cast

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import Column

    from offerrank.catalog import Feature

UNKNOWN, OTHER = "unknown", "other"
INTERCEPT = "(intercept)"
# The context a contextual model may declare, and where the events carry it (see offerrank.events.xdm); a lookup request
# passes the device and the hour, the channel is the request's.
CONTEXT_KEYS = ("channel", "device", "hour")
REQUEST_CONTEXT_KEYS = ("device", "hour")
SEGMENT = "segment"  # a contextual model with segments: the first of them the profile is in


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """The level names of numeric buckets with `edges`: below the first, between neighbours, from the last."""
    text = [f"{edge:g}" for edge in edges]
    return [f"<{text[0]}", *(f"{low}-{high}" for low, high in zip(text, text[1:])), f">={text[-1]}"]


def level(feature: Feature | None, raw: object) -> str:
    """The level of one raw value (a profile attribute or a context value); `feature` None: a categorical feature
    the model does not declare."""
    if isinstance(raw, str):
        raw = raw.strip()
    elif isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # as Spark writes a whole number: 21, not 21.0
    if raw is None or raw == "":
        return UNKNOWN
    if feature is None or not feature.buckets:
        return str(raw)
    try:
        number = float(cast("SupportsFloat | str", raw))  # anything else raises TypeError: unknown
    except (TypeError, ValueError):
        return UNKNOWN
    if not math.isfinite(number):
        return UNKNOWN
    return bucket_labels(feature.buckets)[bisect.bisect_right(feature.buckets, number)]


def spark_level(feature: Feature, column: Column) -> Column:
    """`level` as a Spark column of the raw values in `column` (strings)."""
    from pyspark.sql import functions as F

    text = F.nullif(F.trim(column.cast("string")), F.lit(""))
    if not feature.buckets:
        return F.coalesce(text, F.lit(UNKNOWN))
    number = text.try_cast("double")
    labels = bucket_labels(feature.buckets)
    bucketed = F.when(number < feature.buckets[0], F.lit(labels[0]))
    for edge, label in zip(feature.buckets[1:], labels[1:]):
        bucketed = bucketed.when(number < edge, F.lit(label))
    finite = number.isNotNull() & ~F.isnan(number) & (F.abs(number) != float("inf"))
    return F.when(finite, bucketed.otherwise(F.lit(labels[-1]))).otherwise(F.lit(UNKNOWN))


def feature_name(name: str, value: str) -> str:
    return f"{name}={value}"


@dataclass(frozen=True)
class FeatureDictionary:
    """The columns of a trained model's design: the intercept, then per feature its kept levels, `other` and
    `unknown`, as `name=level`."""

    names: tuple[str, ...]

    @classmethod
    def from_counts(
        cls, features: Sequence[Feature], impressions: Mapping[str, Mapping[str, float]]
    ) -> FeatureDictionary:
        """Keep each feature's `max_levels` levels with the most impressions (`impressions[feature][level]`)."""
        names = [INTERCEPT]
        for feature in features:
            seen = {k: v for k, v in impressions.get(feature.name, {}).items() if k not in (UNKNOWN, OTHER)}
            kept = sorted(seen, key=lambda value: (-seen[value], value))[: feature.max_levels]
            names += [feature_name(feature.name, value) for value in [*sorted(kept), OTHER, UNKNOWN]]
        return cls(tuple(names))

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: at for at, name in enumerate(self.names)}

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in their order in the dictionary."""
        return tuple(dict.fromkeys(name.partition("=")[0] for name in self.names[1:]))

    def active(self, levels: Mapping[str, str]) -> np.ndarray:
        """The columns set for one row: the intercept and, per feature, its level's (`other` for a level the model
        did not keep, `unknown` for a feature the row lacks). Features the dictionary does not have are ignored."""
        index = self.index
        active = [0]
        for name in self.feature_names:
            value = levels.get(name, UNKNOWN)
            at = index.get(feature_name(name, value))
            active.append(at if at is not None else index[feature_name(name, OTHER)])
        return np.array(active, np.intp)
