"""A small world through the real lookup and the real nightly chain; off-policy estimates checked against its truth."""

from __future__ import annotations

import pandas as pd
import pytest

from offerrank.sim.simulator import World, simulate, summarize

WORLD = World.model_validate(
    {
        "start": "2026-11-01",
        "requests_per_day": 3_000,
        "profiles": 1_000,
        "segments": {"a": 0.6, "b": 0.4},
        "attributes": {"loyalty.tier": {"gold": 0.5, "silver": 0.5}},
        "context": {"device": {"mobile": 0.5, "desktop": 0.5}},
        "personalization": {"min_impressions": 100, "min_conversions": 10},
        "placements": [
            {"id": "hero", "channel": "web", "share": 0.5, "slots": 2, "model": "auto"},
            {"id": "push", "channel": "push", "share": 0.2, "model": "pers", "personalized": True},
            {"id": "app", "channel": "mobileApp", "share": 0.3, "model": "ctx", "contextual": True},
        ],
        "offers": [
            {"id": "h1", "placements": ["hero"], "rate": 0.02},
            {"id": "h2", "placements": ["hero"], "rate": 0.05},
            {"id": "h3", "placements": ["hero"], "rate": 0.12},
            {"id": "h4", "placements": ["hero"], "rate": 0.07},
            {"id": "p1", "placements": ["push"], "rate": 0.03, "segment_rates": {"a": 0.12}},
            {"id": "p2", "placements": ["push"], "rate": 0.03, "segment_rates": {"b": 0.12}},
            {"id": "c1", "placements": ["app"], "rate": 0.04, "lifts": {"loyalty.tier=gold": 4.0}},
            {"id": "c2", "placements": ["app"], "rate": 0.04, "lifts": {"device=mobile": 4.0}},
            {"id": "c3", "placements": ["app"], "rate": 0.06},
        ],
    }
)


@pytest.fixture(scope="module")
def simulated(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("simulation")
    simulate(WORLD, days=2, out=out, seed=3, spark=spark, echo=lambda _: None)
    return out


def test_the_lookup_serves_at_random_until_the_first_ranking_then_by_the_model(simulated):
    days = pd.read_csv(simulated / "simulation.csv")
    assert set(days.loc[days["day"] == 1, "traffic_type"]) == {"random"}
    second = days[days["day"] == 2].groupby("traffic_type")["items"].sum()
    assert 0.05 < second["random"] / second.sum() < 0.15  # the models' exploration share, 0.1
    model = days[(days["day"] == 2) & (days["traffic_type"] == "model")]
    expected = (model["expected_rate"] * model["items"]).sum() / model["items"].sum()
    random = (model["random_policy_rate"] * model["items"]).sum() / model["items"].sum()
    assert expected > 1.3 * random  # one night of learning already beats random serving
    leaders = pd.read_csv(simulated / "leaders.csv")
    assert set(leaders["serving_day"]) == {2, 3}
    assert set(leaders.loc[leaders["placement_id"] == "push", "segment"]) == {"*", "a", "b"}
    assert "model/oracle" in summarize(WORLD, simulated)


def test_the_off_policy_estimate_of_random_serving_contains_its_true_rate(simulated):
    """Uniformly random serving over the run, estimated from the logged traffic (day 2 mostly the model's): its
    95% interval must contain the rate the world says random serving has on the same requests."""
    from offerrank.catalog.stored import registry_catalog
    from offerrank.jobs.evaluate import run as evaluate
    from offerrank.settings import load_settings

    settings = load_settings(home=simulated)
    rows = evaluate(settings, registry_catalog(settings), "auto", WORLD.day(1), WORLD.day(2), ["random"])
    (hero,) = rows[rows["slot"].isna()].itertuples()
    days = pd.read_csv(simulated / "simulation.csv")
    served = days[days["placement_id"] == "hero"]
    truth = (served["random_policy_rate"] * served["items"]).sum() / served["items"].sum()
    assert pd.isna(hero.refused) and hero.impressions == served["items"].sum()
    assert hero.dr_low <= truth <= hero.dr_high and hero.snipw_low <= truth <= hero.snipw_high, (truth, hero)


def test_a_contextual_model_publishes_its_parameters_and_the_lookup_scores_each_request(simulated):
    from datetime import UTC, datetime

    from offerrank.engines.delta_rs import table_rows
    from offerrank.serving.lookup import RankingLookup
    from offerrank.settings import load_settings
    from offerrank.tables import OFFER_RANKINGS

    settings = load_settings(home=simulated)
    app = [row for row in table_rows(settings, OFFER_RANKINGS) if row["placement_id"] == "app"]
    assert {row["offer_id"] for row in app if row["weights"]} == {"c1", "c2", "c3"}
    lookup = RankingLookup(settings, clock=lambda: datetime.combine(WORLD.day(3), datetime.min.time(), UTC))
    gold, silver = {}, {}
    for profile_id in (f"sim0003{i:08d}" for i in range(40)):
        tier = lookup.snapshot.attributes.attributes_of(profile_id)["loyalty.tier"]
        (gold if tier == "gold" else silver).setdefault("id", profile_id)
    best = {}
    for tier, profile in (("gold", gold), ("silver", silver)):
        for device in ("mobile", "desktop"):
            answer = lookup.top("app", "mobileApp", profile["id"], 1, "published", context={"device": device})
            assert answer.offers[0].reason == "personalized"
            best[tier, device] = answer.offers[0].offer_id
    # true rates: gold 0.16 (c1), mobile 0.16 (c2), else c3 0.06 - the model must at least find c3 for silver desktop
    assert best["silver", "desktop"] == "c3" and best["gold", "desktop"] == "c1" and best["silver", "mobile"] == "c2"
    days = pd.read_csv(simulated / "simulation.csv")
    served = days[(days["placement_id"] == "app") & (days["day"] == 2) & (days["traffic_type"] == "model")]
    expected = (served["expected_rate"] * served["items"]).sum() / served["items"].sum()
    oracle = (served["oracle_rate"] * served["items"]).sum() / served["items"].sum()
    assert expected > 0.8 * oracle  # one night of contextual learning
    from offerrank.jobs.report import page_path

    with open(page_path(settings, "ctx", WORLD.day(2)), encoding="utf-8") as page:
        html = page.read()
    assert "What drives the scores" in html and "loyalty.tier=gold" in html
