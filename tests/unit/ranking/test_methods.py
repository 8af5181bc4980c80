"""Ranking methods as strategies: resolved from a decision placement's `ranking`, validated by the catalog, and
what each one tells ranking and the lookup."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from offerrank.catalog import CatalogError, build_catalog
from offerrank.learning.bandit import thompson_rank
from offerrank.ranking import METHODS, method_of
from offerrank.ranking.formula import FormulaRanking
from offerrank.ranking.priority import PriorityRanking
from offerrank.ranking.thompson import ThompsonSampling
from offerrank.sim.generator import generate
from offerrank.tables import ALL_SEGMENTS


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from offerrank.catalog import load_catalog

    home = tmp_path_factory.mktemp("methods")
    generate(home, date(2026, 11, 1), days=1, seed=3, events_per_day=100)
    return load_catalog(home / "catalog.yaml")


def test_every_ranking_text_resolves_to_its_strategy():
    assert set(METHODS) == {"priority", "formula", "ai_model"}
    assert method_of("priority") == PriorityRanking() and method_of("priority").unit == "priority"
    assert isinstance(method_of("formula:margin-boost"), FormulaRanking)
    thompson = method_of("ai_model:auto-web")
    assert isinstance(thompson, ThompsonSampling) and thompson.model_name == "auto-web"
    assert thompson.explorable and thompson.uses_posteriors and not method_of("priority").explorable


@pytest.mark.parametrize("text", ["random", "priority:x", "formula:", "ai_model", ""])
def test_unknown_or_malformed_rankings_name_the_known_ones(text):
    with pytest.raises(ValueError, match="one of ai_model:<id>, formula:<id>, priority"):
        method_of(text)


def test_the_catalog_groups_placements_by_method_and_a_personalized_model_ranks_its_segments(catalog):
    units = [method.unit for method in catalog.ranking_methods()]
    assert units == [
        "ai_model:auto-email",
        "ai_model:auto-web",
        "ai_model:personalized-mobile",
        "formula:margin-boost",
        "priority",
    ]
    personalized = method_of("ai_model:personalized-mobile")
    assert personalized.segments(catalog) == (ALL_SEGMENTS, *catalog.get("ai_models", "personalized-mobile").segments)
    assert method_of("ai_model:auto-web").segments(catalog) == (ALL_SEGMENTS,)
    assert catalog.models_in_use()["auto-web"] == ["dp-web-home/home-hero", "dp-app-reengage/app-home-card"]


def test_a_method_refers_to_what_the_catalog_holds(catalog):
    data = catalog.model_dump(mode="json")
    data["decisions"][0]["placements"][0]["ranking"] = "formula:ghost"
    data["decisions"][1]["placements"][0]["ranking"] = "ai_model:ghost"
    with pytest.raises(CatalogError) as refused:
        build_catalog(data, "test")
    assert "unknown formula 'ghost'" in str(refused.value) and "unknown AI model 'ghost'" in str(refused.value)


def test_eligible_live_offers_are_judged_on_the_day(catalog):
    _, assignment = catalog.active_assignments()[0]
    offers = catalog.eligible_offers(assignment)
    first = min(o.start_date for o in offers)
    assert catalog.eligible_live_offers(assignment, first) == [
        o for o in offers if o.start_date <= first <= o.end_date and assignment.placement in o.placements
    ]
    assert catalog.eligible_live_offers(assignment, date(1999, 1, 1)) == []


def test_the_reasons_a_ranking_writes_are_plain_strings():
    """A `Reason` member formats as `Reason.MODEL`: the tables hold its value."""
    eligible = pd.DataFrame(
        {
            "offer_id": ["a", "b"],
            "priority": [2, 1],
            "alpha": [5.0, 1.0],
            "beta": [50.0, 1.0],
            "cold_start": [False, True],
        }
    )
    reasons = [*PriorityRanking().rank(eligible, None)["reason"], *thompson_rank(eligible, 0.1, seed=1)["reason"]]
    assert reasons == ["priority", "priority", "model", "cold_start"]
    assert {type(reason) for reason in reasons} == {str}
