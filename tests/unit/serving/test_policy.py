"""The per-request serving policy: slot probabilities, seeded draws, random and Thompson decisions."""

from __future__ import annotations

import numpy as np

from offerrank.learning.bandit import posterior_table, probability_best
from offerrank.serving.policy import (
    MODEL,
    RANDOM,
    Contenders,
    ServingPolicy,
    contender_slot_probabilities,
    random_order,
    request_generator,
    slot_probabilities,
    thompson_draws,
)

ALPHA = np.array([30.0, 28.0, 26.0, 5.0])
BETA = np.array([400.0, 400.0, 400.0, 400.0])


def test_slot_probabilities_are_a_distribution_per_slot_and_column_0_is_p_best():
    in_slot = slot_probabilities(posterior_table(ALPHA, BETA), slots=3, seed=1)
    assert in_slot.shape == (4, 3)
    assert np.allclose(in_slot.sum(axis=0), 1.0) and (in_slot.sum(axis=1) <= 1.0 + 1e-12).all()
    assert np.abs(in_slot[:, 0] - probability_best(ALPHA, BETA, seed=2)).max() < 0.015
    assert in_slot[3, 0] < 0.001  # a clearly worse offer is almost never first
    assert np.allclose(
        slot_probabilities(posterior_table(ALPHA, BETA), slots=10, seed=1).sum(axis=1), 1.0
    )  # every slot: 4 columns


def test_a_request_generator_repeats_for_the_same_request_and_differs_across_requests():
    first = request_generator("r-1", "home-hero", "web", 3).random(5)
    assert np.array_equal(first, request_generator("r-1", "home-hero", "web", 3).random(5))
    assert not np.array_equal(first, request_generator("r-2", "home-hero", "web", 3).random(5))
    assert not np.array_equal(first, request_generator("r-1", "home-hero", "web", 4).random(5))


def test_decisions_are_random_with_the_exploration_share_and_carry_the_policys_propensity():
    in_slot = slot_probabilities(posterior_table(ALPHA, BETA), slots=2, seed=1)
    contenders = Contenders.of(posterior_table(ALPHA, BETA), in_slot)
    policy = ServingPolicy(contenders, 0.25, in_slot, 2)
    decisions = [policy.decide(request_generator(i)) for i in range(4_000)]
    random = [order for order, traffic_type, _ in decisions if traffic_type == RANDOM]
    assert abs(len(random) / len(decisions) - 0.25) < 0.03
    for order, _, propensity in decisions:
        assert len(order) == 2 and len(set(order)) == 2
        expected = 0.25 / 4 + 0.75 * in_slot[order, [0, 1]]
        assert np.allclose(propensity, expected)
    model_first = np.bincount([order[0] for order, kind, _ in decisions if kind == MODEL], minlength=4)
    assert np.abs(model_first / model_first.sum() - in_slot[:, 0]).max() < 0.04
    assert ServingPolicy(contenders, 0.0, in_slot, 2).decide(request_generator("x"))[1] == MODEL


def test_a_random_order_gives_every_offer_every_slot_with_one_over_k():
    decision = random_order(request_generator("r"), offers=5, slots=3)
    assert decision.traffic_type == RANDOM and sorted(set(decision.order)) == sorted(decision.order)
    assert np.allclose(decision.propensity, 0.2) and len(decision.order) == 3


def test_offers_that_never_reach_the_first_slots_are_left_out_of_the_draw():
    alpha = np.array([300.0, 290.0, 280.0, 2.0, 1.0])  # the last two: rates near 0.5% against 40%
    beta = np.array([400.0, 400.0, 400.0, 400.0, 400.0])
    table = posterior_table(alpha, beta)
    in_slot = slot_probabilities(table, slots=2, seed=3)
    contenders = Contenders.of(table, in_slot)
    assert list(contenders.offers) == [0, 1, 2] and np.array_equal(contenders.table, table[:3])
    policy = ServingPolicy(contenders, 0.5, in_slot, 2)
    decisions = [policy.decide(request_generator(i)) for i in range(2_000)]
    assert {o for order, kind, _ in decisions if kind == MODEL for o in order} <= {0, 1, 2}
    # random traffic still shows every offer, and logs the policy's propensity of what it showed
    shown = {o for order, kind, _ in decisions if kind == RANDOM for o in order}
    assert shown == {0, 1, 2, 3, 4}
    assert all(min(propensity) >= 0.5 / 5 for _, kind, propensity in decisions if kind == RANDOM)


def test_draws_from_the_quantile_table_follow_the_beta_posterior():
    from scipy.stats import beta as beta_distribution
    from scipy.stats import kstest

    alpha, beta = np.array([1.0, 12.0, 300.0]), np.array([1.0, 88.0, 9_700.0])
    samples = thompson_draws(np.random.default_rng(4), posterior_table(alpha, beta), 20_000)
    for offer in range(3):  # cold start (uniform), a few conversions, a long history
        assert kstest(samples[:, offer], beta_distribution(alpha[offer], beta[offer]).cdf).statistic < 0.01


def test_contender_slot_probabilities_leave_out_offers_that_cannot_reach_a_slot():
    alpha, beta = np.array([300.0, 280.0, 260.0, 5.0, 4.0]), np.full(5, 4000.0)
    in_slot = contender_slot_probabilities(posterior_table(alpha, beta), slots=2, seed=1)
    assert in_slot.shape == (5, 2) and np.allclose(in_slot.sum(axis=0), 1.0)
    assert (in_slot[3:] == 0).all()  # never drawn: their highest quantile is below the second lowest of the rest
    full = slot_probabilities(posterior_table(alpha, beta), slots=2, seed=1)
    assert np.abs(in_slot - full).max() < 0.03


def test_a_draw_orders_the_contenders_as_their_thompson_samples():
    alpha = 1.0 + np.arange(60.0)[::-1]
    table = posterior_table(alpha, np.full(60, 500.0))
    contenders = Contenders.of(table, slot_probabilities(table, slots=10, seed=5, draws=4_000))
    for request in range(200):
        (draw,) = thompson_draws(request_generator(request), contenders.table, 1)
        best_first = contenders.offers[np.argsort(-draw)[:10]]
        assert contenders.draw_order(request_generator(request), 10).tolist() == best_first.tolist()
