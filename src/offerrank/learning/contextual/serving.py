"""Serving a contextual model's lists: a request's features, and each offer's score distribution for one request.

A request's feature vector x is a set of active columns, so under a trained offer's Laplace posterior N(mu, S) the
score's logit is univariate normal, N(mu . x, x' S x) (`logit_moments`); its quantile table (`logit_normal_table`)
drives the same Thompson draws and slot probabilities as a Beta posterior's (see offerrank.serving.policy).

`ContextualList` holds the parameters a published list carries (the feature dictionary, and per offer the posterior
mean and covariance) and turns a request's cell (its active features: the profile's attributes, from
`offerrank.serving.profiles.AttributeIndex`, and the request's context, from `request_context`) into what the
serving policy draws from (`CellModel`): each offer's quantile table, the logit-normal of its score for a trained
offer, the Beta posterior for an offer below the personalization thresholds. Reads and writes nothing: pure numpy
and pyarrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

from offerrank.learning.bandit import QUANTILES, posterior_table
from offerrank.learning.contextual.features import REQUEST_CONTEXT_KEYS, FeatureDictionary, level
from offerrank.learning.contextual.training import sigmoid

if TYPE_CHECKING:
    from offerrank.catalog import Catalog, Feature

MAX_CONTEXT_VALUE = 100
_GRID_NORMAL = ndtri((np.arange(QUANTILES) + 0.5) / QUANTILES)


def logit_moments(weights: np.ndarray, covariance: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per offer, the mean and standard deviation of the logit of a request with `active` columns, from stacked
    posteriors (`weights`: offers x d, `covariance`: offers x d x d)."""
    mean = weights[:, active].sum(axis=1)
    variance = covariance[:, active[:, None], active[None, :]].sum(axis=(1, 2))
    return mean, np.sqrt(np.maximum(variance, 0.0))


def logit_normal_table(mean: np.ndarray, sd: np.ndarray, grid_normal: np.ndarray) -> np.ndarray:
    """Each offer's conversion-probability quantiles (offers x len(grid)) when its logit is N(mean, sd^2);
    `grid_normal` holds the standard normal's quantiles at the grid."""
    return sigmoid(mean[:, None] + sd[:, None] * grid_normal[None, :])


def contextual_attribute_names(catalog: Catalog | None) -> list[str]:
    """The profile attributes the active contextual models of `catalog` read (the lookup indexes them)."""
    return [feature.name for feature in catalog.contextual_attributes()] if catalog else []


def request_context(context: Mapping[str, object] | None, channel: str, utc_hour: int) -> dict[str, object]:
    """A request's context as a contextual model reads it: the device and hour it passes (the hour an integer
    0-23, by default the UTC hour, as the events' timestamps give it when they have no local time) and its
    channel. ValueError naming the first key or value a request may not pass."""
    context = dict(context or {})
    for key, value in context.items():
        if key not in REQUEST_CONTEXT_KEYS:
            raise ValueError(
                f"context key must be one of {', '.join(REQUEST_CONTEXT_KEYS)} (got {str(key)[:40]!r}; the channel "
                "is the request's)"
            )
        if not isinstance(value, str | int | float) or isinstance(value, bool) or len(str(value)) > MAX_CONTEXT_VALUE:
            raise ValueError(f"context value of {key!r} must be a string or number of at most {MAX_CONTEXT_VALUE}")
    hour = context.get("hour", utc_hour)
    if not str(hour).strip().isdigit() or not 0 <= int(str(hour).strip()) <= 23:
        raise ValueError(f"context hour must be a whole hour 0-23 (got {str(hour)[:20]!r})")
    return {**context, "hour": int(str(hour).strip()), "channel": channel}


@dataclass(frozen=True)
class CellModel:
    """What a contextual list serves one cell of requests: per servable row its quantile table, the mean score
    and whether it is personalized (scored by its own parameters)."""

    table: np.ndarray
    score: np.ndarray
    personalized: np.ndarray


@dataclass(frozen=True)
class ContextualList:
    """A published list's contextual parameters: row i of the list (from its start) has parameters
    `position[i]` (-1: none, below the personalization thresholds)."""

    dictionary: FeatureDictionary
    features: dict[str, Feature | None]  # name -> how its raw values become levels (None: categorical, undeclared)
    position: np.ndarray
    weights: np.ndarray  # offers with parameters x d
    covariance: np.ndarray  # offers with parameters x d x d

    @classmethod
    def of(cls, ranking: pa.Table, start: int, stop: int, model_features: tuple[Feature, ...]) -> ContextualList | None:
        """The parameters of rows [start, stop) of a published ranking (None when no row has any)."""
        rows = ranking.slice(start, stop - start)
        weights = rows["weights"].to_pylist()
        have = [at for at, w in enumerate(weights) if w]
        if not have:
            return None
        names = tuple(rows["features"][have[0]].as_py())
        dictionary = FeatureDictionary(names)
        declared = {feature.name: feature for feature in model_features}
        features = {name: declared.get(name) for name in dictionary.feature_names}
        position = np.full(stop - start, -1, np.intp)
        position[have] = np.arange(len(have))
        covariance = rows["covariance"].to_pylist()
        return cls(
            dictionary,
            features,
            position,
            np.array([weights[at] for at in have], float),
            np.array([covariance[at] for at in have], float).reshape(len(have), len(names), len(names)),
        )

    def cell(self, attributes: Mapping[str, object], context: Mapping[str, object]) -> np.ndarray:
        """The active columns of a request: its profile attributes and context, as levels."""
        raw = {**attributes, **context}
        return self.dictionary.active({name: level(f, raw.get(name)) for name, f in self.features.items()})

    def cell_model(self, rows: np.ndarray, alpha: np.ndarray, beta: np.ndarray, active: np.ndarray) -> CellModel:
        """The quantile tables and mean scores of the servable `rows` (positions in the list) for one cell;
        `alpha`, `beta`: the rows' Beta posteriors, for rows without parameters."""
        position = self.position[rows]
        personalized = position >= 0
        table = np.empty((len(rows), QUANTILES))
        score = np.empty(len(rows))
        if personalized.any():
            mean, sd = logit_moments(
                self.weights[position[personalized]], self.covariance[position[personalized]], active
            )
            table[personalized] = logit_normal_table(mean, sd, _GRID_NORMAL)
            score[personalized] = 1.0 / (1.0 + np.exp(-mean))
        if (~personalized).any():
            table[~personalized] = posterior_table(alpha[~personalized], beta[~personalized])
            score[~personalized] = alpha[~personalized] / (alpha[~personalized] + beta[~personalized])
        return CellModel(table, score, personalized)
