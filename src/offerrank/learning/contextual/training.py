"""Training the contextual model: a Bayesian logistic regression per offer on one-hot features, fitted from
aggregated counts.

Training input is `feature_stats_daily`: per day, placement, channel, offer and *cell* (one combination of feature
levels, e.g. `person.ageBand=25-34`, `device=mobile`) the impressions and conversions. Spark aggregates the events
into cells (`offerrank.jobs.contextual`); here each offer's cells are one small binomial regression: the weights w
of P(click | x) = sigmoid(w . x) get a Gaussian prior N(0, prior_sd^2) (the intercept a wide N(0, 10^2)), the MAP
by Newton's method on the counts (started at the offer's own rate), and the Laplace approximation of the
posterior: N(MAP, H^-1), H the Hessian of the negative log posterior. Only offers past the model's
personalization thresholds are trained; the others are ranked by their segment posterior. Days are weighed by the
model's half-life, as the Beta posteriors. The rows `train` returns are the model's `model_parameters`; `explain`
reads them back: each feature level's effect on the predicted click rate, with its posterior interval. Pure numpy
and pandas: no Spark, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from offerrank.learning.contextual.features import OTHER, UNKNOWN, FeatureDictionary

if TYPE_CHECKING:
    from offerrank.catalog import AIModel

PARAMETER_KEYS = ["placement_id", "channel", "offer_id"]
_INTERCEPT_SD = 10.0  # the intercept is the offer's base rate on the logit scale: a weak prior
_NEWTON_STEPS = 50
_EXPLAIN_DRAWS = 4000  # posterior draws per explained offer: effects to about 1.5% of their sd


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


class TrainingFailed(ArithmeticError):
    """A model's training gives no usable posterior (a singular or non-finite system); its last parameters stay."""


def fit_logistic(
    design: np.ndarray, impressions: np.ndarray, conversions: np.ndarray, prior_precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Laplace posterior (mean, covariance) of logistic weights on binomial counts: rows of `design` (0/1),
    their `impressions` and `conversions` (possibly weighted), a Gaussian prior N(0, diag(1 / prior_precision)).
    TrainingFailed when an input or the result is not finite; numpy's LinAlgError when the Hessian is singular."""
    inputs = {"impressions": impressions, "conversions": conversions, "prior precision": prior_precision}
    for name, values in inputs.items():
        if not np.isfinite(values).all():
            raise TrainingFailed(f"non-finite {name}")
    rate = np.clip(conversions.sum() / max(impressions.sum(), 1e-9), 1e-4, 1 - 1e-4)
    weights = np.zeros(design.shape[1])
    weights[0] = np.log(rate / (1 - rate))
    prior = np.diag(prior_precision)
    with np.errstate(all="ignore"):  # overflow shows as a non-finite result, refused below
        for _ in range(_NEWTON_STEPS):
            p = sigmoid(design @ weights)
            gradient = design.T @ (conversions - impressions * p) - prior_precision * weights
            hessian = (design * (impressions * p * (1 - p))[:, None]).T @ design + prior
            step = np.linalg.solve(hessian, gradient)
            if not np.isfinite(step).all():
                raise TrainingFailed("a non-finite Newton step")
            weights += step
            if np.abs(step).max() < 1e-8:
                break
        p = sigmoid(design @ weights)
        hessian = (design * (impressions * p * (1 - p))[:, None]).T @ design + prior
        covariance = np.linalg.inv(hessian)
    if not (np.isfinite(weights).all() and np.isfinite(covariance).all()):
        raise TrainingFailed("a non-finite posterior")
    return weights, covariance


def cell_levels(cells: pd.Series) -> list[dict[str, str]]:
    """Each cell's `name=level` strings as a {name: level} mapping."""
    return [dict(item.split("=", 1) for item in items) for items in cells]


def dictionary_of(model: AIModel, window: pd.DataFrame) -> FeatureDictionary:
    """The model's feature dictionary from its window's cells: each feature's most shown levels."""
    shown: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for levels, impressions in zip(cell_levels(window["features"]), window["impressions"]):
        for name, value in levels.items():
            shown[name][value] += impressions
    return FeatureDictionary.from_counts(model.features, shown)


def design_of(dictionary: FeatureDictionary, cells: pd.Series) -> np.ndarray:
    """The 0/1 design matrix of `cells` (one row per cell)."""
    design = np.zeros((len(cells), len(dictionary)))
    for row, levels in enumerate(cell_levels(cells)):
        design[row, dictionary.active(levels)] = 1.0
    return design


def train(cells: pd.DataFrame, model: AIModel, as_of: date) -> pd.DataFrame:
    """The model's parameters as of `as_of` from `cells` (event_date, placement_id, channel, offer_id, features,
    impressions, conversions; other days ignored): one row per placement x channel x offer past the personalization
    thresholds, with the feature dictionary, posterior mean and covariance (row-major), the window's counts.
    The rows of `model_parameters`. TrainingFailed naming the first offer without a usable posterior."""
    first = model.window_start(as_of)
    window = cells[cells["event_date"].between(first, as_of)].copy()
    columns = ["as_of_date", "model_name", *PARAMETER_KEYS, "window_start", "features", "weights", "covariance"]
    if window.empty:
        return pd.DataFrame(columns=[*columns, "impressions", "conversions"])
    age = np.array([(as_of - day).days for day in window["event_date"]], dtype=float)
    weight = 0.5 ** (age / model.half_life_days) if model.half_life_days else np.ones(len(window))
    window["n"], window["c"] = window["impressions"] * weight, window["conversions"] * weight
    window["cell"] = window["features"].map(lambda items: "|".join(sorted(items)))
    dictionary = dictionary_of(model, window)
    with np.errstate(over="ignore", divide="ignore"):  # a tiny prior sd is an infinite precision, which the fit refuses
        precision = np.full(len(dictionary), float(model.personalization.prior_sd)) ** -2.0
    precision[0] = 1.0 / _INTERCEPT_SD**2
    thresholds = model.personalization
    rows = []
    for (placement_id, channel, offer_id), offer in window.groupby(PARAMETER_KEYS, sort=True):
        impressions, conversions = int(offer["impressions"].sum()), int(offer["conversions"].sum())
        if impressions < thresholds.min_impressions or conversions < thresholds.min_conversions:
            continue
        by_cell = offer.groupby("cell", sort=True).agg(features=("features", "first"), n=("n", "sum"), c=("c", "sum"))
        try:
            mean, covariance = fit_logistic(
                design_of(dictionary, by_cell["features"]), by_cell["n"].to_numpy(), by_cell["c"].to_numpy(), precision
            )
        except (TrainingFailed, np.linalg.LinAlgError) as error:
            raise TrainingFailed(f"offer {offer_id} on {placement_id} ({channel}): {error}") from error
        rows.append(
            (
                as_of,
                model.name,
                placement_id,
                channel,
                offer_id,
                first,
                list(dictionary.names),
                mean.tolist(),
                covariance.ravel().tolist(),
                impressions,
                conversions,
            )
        )
    return pd.DataFrame(rows, columns=[*columns, "impressions", "conversions"])


def explain(features: list[str], weights: list[float], covariance: list[float], top: int = 5) -> list[dict]:
    """What drives an offer's score: each feature level's effect on the predicted click rate against its feature's
    average level (the mean of the feature's kept levels on the logit scale, every other feature at its average too),
    as the posterior median and 90% interval of that rate difference over draws of the Laplace posterior; the `top`
    largest effects (either sign) first. The median, not the mean: a level the offer was never shown with keeps its
    prior, whose draws skew the mean of a rate (convex in them) but not its median, 0. Per-column weights are not
    identified in a one-hot design with an intercept (adding c to every level of a feature and -c to the intercept
    changes no prediction); these differences are."""
    dictionary = FeatureDictionary(tuple(features))
    mean = np.asarray(weights, float)
    draws = np.random.default_rng(0).multivariate_normal(
        mean, np.asarray(covariance, float).reshape(len(mean), len(mean)), size=_EXPLAIN_DRAWS, method="eigh"
    )
    columns = {
        name: [at for at, column in enumerate(features) if column.partition("=")[0] == name]
        for name in dictionary.feature_names
    }
    average = {}
    for name, at in columns.items():
        kept = [a for a in at if features[a].partition("=")[2] not in (UNKNOWN, OTHER)] or at
        average[name] = draws[:, kept].mean(axis=1)
    base = draws[:, 0] + sum(average.values())
    rows: list[dict[str, Any]] = []
    for name, at in columns.items():
        for column in at:
            effect = sigmoid(base - average[name] + draws[:, column]) - sigmoid(base)
            low, median, high = (float(bound) for bound in np.quantile(effect, [0.05, 0.5, 0.95]))
            rows.append({"feature": features[column], "effect": median, "low": low, "high": high})
    return sorted(rows, key=lambda row: -abs(row["effect"]))[:top]
