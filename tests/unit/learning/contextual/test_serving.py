"""Serving a contextual list: a request's cell, its offers' score distributions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from offerrank.catalog import Feature
from offerrank.learning.contextual.serving import ContextualList, request_context


def test_request_context_adds_the_channel_and_hour_and_refuses_unknown_keys_and_odd_values():
    expected = {"device": "mobile", "hour": 21, "channel": "web"}
    assert request_context({"device": "mobile", "hour": "21"}, "web", 3) == expected
    assert request_context(None, "push", 3) == {"hour": 3, "channel": "push"}  # the UTC hour by default
    for bad, message in (
        ({"weather": "rain"}, "context key"),
        ({"channel": "email"}, "the channel is the request's"),
        ({"device": "x" * 101}, "at most"),
        ({"hour": True}, "must be a string"),
        ({"hour": 24}, "0-23"),
        ({"hour": "9.5"}, "0-23"),
    ):
        with pytest.raises(ValueError, match=message):
            request_context(bad, "web", 0)


def published_list(with_parameters: list[bool]) -> pa.Table:
    features = ["(intercept)", "person.age=<40", "person.age=>=40", "person.age=other", "person.age=unknown"]
    young = [-3.0, 1.0, -1.0, 0.0, 0.0]
    old = [-3.0, -1.0, 1.0, 0.0, 0.0]
    rows = [(features, weights, (np.eye(5) * 0.01).ravel().tolist()) for weights in (young, old)]
    rows += [(None, None, None)] * (len(with_parameters) - 2)
    rows = [row if keep else (None, None, None) for row, keep in zip(rows, with_parameters)]
    return pa.table(
        {
            "features": pa.array([r[0] for r in rows], pa.list_(pa.string())),
            "weights": pa.array([r[1] for r in rows], pa.list_(pa.float64())),
            "covariance": pa.array([r[2] for r in rows], pa.list_(pa.float64())),
        }
    )


def test_a_cell_scores_trained_offers_by_their_posterior_and_the_rest_by_their_beta():
    age = Feature(name="person.age", buckets=[40])
    contextual = ContextualList.of(published_list([True, True, False]), 0, 3, (age,))
    alpha, beta = np.array([1.0, 1.0, 30.0]), np.array([1.0, 1.0, 970.0])
    rows = np.arange(3)
    young = contextual.cell_model(rows, alpha, beta, contextual.cell({"person.age": "25"}, {}))
    old = contextual.cell_model(rows, alpha, beta, contextual.cell({"person.age": "65"}, {}))
    assert young.personalized.tolist() == [True, True, False]
    assert young.score[0] > young.score[2] > young.score[1] and old.score[1] > old.score[2] > old.score[0]
    assert young.score[0] == pytest.approx(1 / (1 + np.exp(2.0)))
    assert young.table.shape == (3, 256) and (np.diff(young.table, axis=1) >= 0).all()
    unknown = contextual.cell_model(rows, alpha, beta, contextual.cell({}, {"device": "mobile"}))
    assert unknown.score[0] == pytest.approx(unknown.score[1])  # no age: neither offer is favoured
    assert ContextualList.of(published_list([False, False]), 0, 2, (age,)) is None
