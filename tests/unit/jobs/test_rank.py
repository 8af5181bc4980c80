"""Ranking one group of candidates by its method, and the fallback, on hand-built rows (no Spark session)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from offerrank.jobs.rank import rank_placement

RUN = date(2026, 11, 3)


def frame(method, rows, exploration=None, segment="*"):
    return pd.DataFrame(
        [
            {
                "decision_id": "d",
                "placement_id": "p",
                "channel": "web",
                "segment": segment,
                "ranking": {"ai_model": "ai_model:m", "formula": "formula:f"}.get(method, method),
                "model_name": "m" if method == "ai_model" else method,
                "offer_id": offer,
                "priority": priority,
                "formula_score": formula,
                "is_fallback": fallback,
                "exploration_share": exploration,
                "alpha": alpha,
                "beta": beta,
                "impressions": 0,
                "conversions": 0,
                "cold_start": cold,
            }
            for offer, priority, formula, fallback, alpha, beta, cold in rows
        ]
    )


def test_priority_and_formula_rankings():
    rows = [
        ("a", 10, 5.0, False, 1.0, 1.0, True),
        ("b", 30, 1.0, False, 1.0, 1.0, True),
        ("c", 30, 9.0, False, 1.0, 1.0, True),
        ("fb", 1, None, True, 1.0, 1.0, True),
    ]
    by_priority = rank_placement(frame("priority", rows), RUN)
    assert by_priority[["offer_id", "rank", "score", "reason"]].values.tolist() == [
        ["b", 1, 30.0, "priority"],
        ["c", 2, 30.0, "priority"],
        ["a", 3, 10.0, "priority"],
    ]
    by_formula = rank_placement(frame("formula", rows), RUN)
    assert by_formula["offer_id"].tolist() == ["c", "a", "b"]


def test_the_fallback_offer_when_nothing_is_eligible():
    ranked = rank_placement(frame("ai_model", [("fb", 1, None, True, 1.0, 1.0, True)], 0.1), RUN)
    assert ranked[["offer_id", "rank", "reason"]].values.tolist() == [["fb", 1, "fallback"]]


def test_ai_ranking_is_seeded_per_run():
    rows = [
        ("a", 1, None, False, 30.0, 970.0, False),
        ("b", 1, None, False, 31.0, 969.0, False),
        ("n", 1, None, False, 1.0, 1.0, True),
        ("fb", 1, None, True, 1.0, 1.0, True),
    ]
    first, again = rank_placement(frame("ai_model", rows, 0.1), RUN), rank_placement(frame("ai_model", rows, 0.1), RUN)
    pd.testing.assert_frame_equal(first, again)
    assert "fb" not in first["offer_id"].tolist()
    assert first.set_index("offer_id").loc["n", "reason"] == "cold_start"
    in_segment = rank_placement(frame("ai_model", rows, 0.1, segment="loyal"), RUN)
    assert in_segment["segment"].unique().tolist() == ["loyal"]
    assert in_segment["p_best"].tolist() != first["p_best"].tolist()  # each segment draws with its own seed


def test_traffic_shares_do_not_depend_on_where_the_fallback_row_is():
    """The fallback candidate carries no exploration share: coming first in its group must not make shares NaN."""
    rows = [
        ("fb", 1, None, True, 1.0, 1.0, True),
        ("a", 1, None, False, 30.0, 970.0, False),
        ("n", 1, None, False, 1.0, 1.0, True),
    ]
    group = frame("ai_model", rows, 0.1)
    group.loc[group["is_fallback"], "exploration_share"] = None
    ranked = rank_placement(group, RUN)
    assert ranked["traffic_share"].notna().all() and abs(ranked["traffic_share"].sum() - 1) < 1e-12
    assert ranked.set_index("offer_id")["traffic_share"].to_dict() == pytest.approx({"a": 0.9, "n": 0.1})


@pytest.fixture(scope="module")
def catalog_data(tmp_path_factory):
    import yaml

    from offerrank.sim.generator import generate

    out = tmp_path_factory.mktemp("rank-catalog")
    generate(out, date(2026, 11, 1), days=1, events_per_day=300)
    return yaml.safe_load((out / "catalog.yaml").read_text())


def test_candidates_are_the_offers_live_on_the_serving_day_and_each_segment_gets_its_audiences(catalog_data):
    import copy

    from offerrank.catalog import build_catalog
    from offerrank.jobs.rank import candidates

    data = copy.deepcopy(catalog_data)
    catalog = build_catalog(data, "catalog.yaml")
    (decision, assignment), *_ = [(d, a) for d, a in catalog.active_assignments() if a.placement == "push-evening"]
    fallbacks = {a.fallback_offer for _, a in catalog.active_assignments()}  # a fallback has no audience
    eligible = [o.id for o in catalog.eligible_offers(assignment) if o.id != assignment.fallback_offer]
    ending, restricted = eligible[0], next(o for o in eligible[1:] if o not in fallbacks)
    for offer in data["offers"]:
        if offer["id"] == ending:
            offer["end_date"] = RUN.isoformat()  # live on the data day, ended on the serving day
        if offer["id"] == restricted:
            offer["segments"] = ["loyal-customers"]
    rows = [c for c in candidates(build_catalog(data, "catalog.yaml"), RUN) if c.placement_id == "push-evening"]
    offers_of = {
        s: {c.offer_id for c in rows if c.segment == s and not c.is_fallback} for s in {c.segment for c in rows}
    }
    assert all(ending not in offers for offers in offers_of.values())
    assert restricted in offers_of["*"] and restricted in offers_of["loyal-customers"]
    assert restricted not in offers_of["new-visitors"] and restricted not in offers_of["bargain-hunters"]
    assert offers_of["new-visitors"] == offers_of["*"] - {restricted}


def test_an_offer_without_data_gets_its_lists_prior_as_the_posteriors_of_the_others_do():
    """One place sets the prior (`list_priors`): rank fills a never-shown offer with what `posteriors` built on."""
    from offerrank.jobs.rank import with_posteriors
    from offerrank.learning.bandit import Prior

    candidates = frame("ai_model", [(offer, 1, None, False, None, None, None) for offer in ("a", "b", "new")])
    candidates = candidates.drop(columns=["alpha", "beta", "impressions", "conversions", "cold_start"])
    rates = pd.DataFrame(
        [
            {"model_name": "m", "offer_id": offer, "placement_id": "p", "channel": "web", "segment": "*"}
            | {"alpha": 0.5 + conversions, "beta": 9.5 + shown - conversions, "impressions": shown}
            | {"conversions": conversions, "cold_start": False}
            for offer, shown, conversions in (("a", 1000, 40), ("b", 998, 18))
        ]
    )
    joined = with_posteriors(candidates, rates, Prior(impressions=10.0, alpha=1.0, beta=1.0)).set_index("offer_id")
    pooled = (58 + 1) / (1998 + 2)
    assert joined.loc["new", ["alpha", "beta"]].tolist() == pytest.approx([10 * pooled, 10 * (1 - pooled)])
    assert joined.loc["new", "cold_start"] and joined.loc["new", "impressions"] == 0
    assert joined.loc["a", "alpha"] == 40.5
