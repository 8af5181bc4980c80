"""Off-policy evaluation's pure parts on inline frames: candidate slot probabilities, the reward model, support."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from offerrank.jobs.evaluate import Policy, estimate_units, replaced_by, reward_model, slot_targets, unsupported_share
from offerrank.tables import EvaluationSource

D1 = date(2026, 11, 1)
RANKED = pd.DataFrame(
    {
        "offer_id": ["o2", "o1", "o3"],
        "rank": [1, 2, 3],
        "alpha": [60.0, 20.0, 2.0],
        "beta": [940.0, 980.0, 98.0],
        "exploration_share": [0.1] * 3,
        "reason": ["model"] * 3,
    }
)


def matrix(targets: pd.DataFrame) -> pd.DataFrame:
    return targets.pivot(index="offer_id", columns="slot", values="target")


def test_a_fixed_order_puts_rank_k_in_slot_k_and_random_spreads_evenly():
    published = matrix(slot_targets(RANKED, Policy("ai_model:m/published"), slots=2, seed=1))
    assert published.loc["o2", 1] == 1 and published.loc["o1", 2] == 1 and published.loc["o3"].sum() == 0
    random = matrix(slot_targets(RANKED, Policy("random"), slots=2, seed=1))
    assert np.allclose(random.to_numpy(), 1 / 3)


def test_the_served_policy_mixes_exploration_with_the_thompson_draws_slot_probabilities():
    served = matrix(slot_targets(RANKED, Policy("ai_model:m"), slots=2, seed=1))
    assert served.sum(axis=0).to_numpy() == pytest.approx([1, 1], abs=1e-9)  # each slot holds one offer
    assert (served.to_numpy() >= 0.1 / 3 - 1e-12).all()  # never below the exploration share's
    assert served.loc["o2", 1] > 0.8  # the clear best is first in most draws


def test_a_candidate_with_offers_in_cold_start_is_evaluated_as_the_lookup_serves_it():
    # random traffic shows the cold-start offer first; every Thompson draw puts it after the offers past cold start
    cold = RANKED.assign(reason=["model", "model", "cold_start"])
    served = matrix(slot_targets(cold, Policy("ai_model:m"), slots=2, seed=1))
    assert served.loc["o3", 1] == pytest.approx(0.1)  # the exploration share alone
    assert served.loc["o3", 2] == pytest.approx(0.0)
    assert served.sum(axis=0).to_numpy() == pytest.approx([1, 1], abs=1e-9)
    # without random traffic to carry it, a cold-start offer competes by its posterior: never starved
    greedy = matrix(slot_targets(cold.assign(exploration_share=0.0), Policy("ai_model:m"), slots=2, seed=1))
    assert greedy.loc["o3", 2] > 0


LOGGED = pd.DataFrame(
    {
        "event_date": [D1, D1, D1],
        "placement_id": ["hero"] * 3,
        "channel": ["web"] * 3,
        "segment": ["*"] * 3,
        "slot": [1, 1, 1],
        "offer_id": ["o1", "o2", "o2"],
        "propensity": [0.5, 0.25, 0.25],
        "impressions": [100, 50, 50],
        "conversions": [10, 2, 3],
    }
)


def test_the_reward_model_shrinks_each_offers_rate_towards_its_slots_mean():
    rewards = reward_model(LOGGED).set_index("offer_id")
    mean = 15 / 200
    assert rewards.loc["o1", "reward"] == pytest.approx((10 + 20 * mean) / 120)
    assert rewards.loc["o2", "reward"] == pytest.approx((5 + 20 * mean) / 120)


def test_support_is_the_candidates_mass_on_items_the_logs_never_showed():
    targets = (
        LOGGED[["event_date", "placement_id", "channel", "segment", "slot"]]
        .iloc[:1]
        .merge(pd.DataFrame({"offer_id": ["o1", "o2", "o9"], "target": [0.5, 0.3, 0.2]}), how="cross")
    )
    (row,) = unsupported_share(LOGGED, targets).itertuples()
    assert row.unsupported_share == pytest.approx(0.2) and row.worst_offer == "o9"


def test_a_list_of_the_fallback_alone_is_always_shown():
    fallback = RANKED.iloc[:1].assign(exploration_share=None)
    (row,) = slot_targets(fallback, Policy("ai_model:m"), slots=2, seed=1).itertuples()
    assert (row.offer_id, row.slot, row.target) == ("o2", 1, 1.0)


def test_each_source_replaces_only_its_own_rows_and_an_evaluation_only_its_policies():
    """The nightly report replaces its window's rows (and those stored before sources were); `evaluate --write`
    replaces its own source's rows of the policies it evaluated, never the nightly's."""
    nightly = replaced_by(D1, "auto-web", ["random", "priority"], EvaluationSource.NIGHTLY)
    assert nightly == {"window_end": D1, "model_name": "auto-web", "source": ["nightly", None]}
    ad_hoc = replaced_by(D1, "auto-web", ["random", "random", "ai_model:draft"], EvaluationSource.AD_HOC)
    assert ad_hoc == {
        "window_end": D1,
        "model_name": "auto-web",
        "source": "ad_hoc",
        "policy": ["ai_model:draft", "random"],
    }
    assert replaced_by(D1, "auto-web", ["random"], EvaluationSource.DRAFT)["source"] == "draft"


def test_a_unit_whose_importance_weights_are_not_finite_is_refused_with_the_reason():
    # issue #54, item 9: the unit gets a refusal in the output, not NaN estimates
    rows = pd.DataFrame(
        {
            "placement_id": ["home-hero"] * 2,
            "channel": ["web"] * 2,
            "segment": ["*"] * 2,
            "slot": [1, 1],
            "offer_id": ["o1", "o2"],
            "impressions": [100, 300],
            "conversions": [10, 30],
            "propensity": [0.0, 0.5],
            "target": [0.5, 0.5],
            "reward": [0.1, 0.1],
            "direct": [0.1, 0.1],
        }
    )
    support = pd.DataFrame(columns=["placement_id", "channel", "segment", "slot", "unsupported_share", "worst_offer"])
    units = estimate_units(Policy("random"), rows, support)
    assert [unit["slot"] for unit in units] == [1, None]
    for unit in units:
        assert "no finite importance weight" in unit["refused"] and "ipw" not in unit
