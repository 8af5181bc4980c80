"""Channel lookups on real Delta tables: published order, the per-request policy and what to log, version pickup,
fallbacks, consistency."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from offerrank.catalog import DecisionStatus, load_catalog
from offerrank.catalog.registry import Registry
from offerrank.engines.delta_rs import write_frame
from offerrank.errors import EXIT_REFUSED, Unavailable, exit_code
from offerrank.serving.answers import LookupRefused, NothingToServe, UnknownPlacement
from offerrank.serving.lookup import RankingLookup
from offerrank.settings import load_settings
from offerrank.tables import PROFILE_SEGMENTS
from tests.factories import publish_rows, published_order, ranking_rows, warehouse_copy

TODAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the day after ranking 1's data day: its serving day


def lookup_of(settings) -> RankingLookup:
    return RankingLookup(settings, clock=lambda: TODAY)


def wait_until_served(lookup: RankingLookup, table_version: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while lookup.snapshot.table_version != table_version:
        assert time.monotonic() < deadline, f"table version {table_version} not served (health: {lookup.health()})"
        time.sleep(0.01)


def test_top_serves_the_published_order_of_one_version(ranked_warehouse):
    lookup = lookup_of(ranked_warehouse)
    answer = lookup.top("home-hero", "web", limit=3, mode="published")
    assert answer.ranking_version == 1 and answer.decision_id == "dp-web-home" and answer.mode == "published"
    assert [o.offer_id for o in answer.offers] == published_order(1, "home-hero")[:3]
    assert [o.rank for o in answer.offers] == [1, 2, 3] and {o.reason for o in answer.offers} == {"model"}
    assert {(o.traffic_type, o.propensity) for o in answer.offers} == {("model", 1.0)}
    assert answer.traffic_type == "model"
    assert answer.dropped == {"not_eligible": 0, "not_live": 0, "audience": 0, "capped": 0}
    sidebar = lookup.top("product-sidebar", "web")  # a priority ranking is a fixed order in either mode
    assert [(o.offer_id, o.reason, o.propensity) for o in sidebar.offers] == [
        (i, "priority", 1.0) for i in published_order(1, "product-sidebar")
    ]
    assert lookup.health()["status"] == "ok" and lookup.health()["placements"] == 3


def test_a_placement_without_a_ranking_gets_its_fallback_then_the_priority_order(ranked_warehouse):
    answer = lookup_of(ranked_warehouse).top("checkout-banner", "web", limit=4)  # ranked by a formula
    assert answer.ranking_version is None and answer.decision_id == "dp-checkout"
    catalog = load_catalog(ranked_warehouse.catalog_file)
    (assignment,) = catalog.get("decisions", "dp-checkout").placements
    by_priority = sorted(
        (o for o in catalog.eligible_offers(assignment) if o.id != assignment.fallback_offer),
        key=lambda o: (-o.priority, o.id),
    )
    assert [(o.offer_id, o.reason) for o in answer.offers] == [(assignment.fallback_offer, "fallback")] + [
        (o.id, "priority_fallback") for o in by_priority[:3]
    ]
    assert [o.score for o in answer.offers[1:]] == [float(o.priority) for o in by_priority[:3]]


def test_an_ai_placement_without_a_ranking_is_served_at_random_until_its_first_ranking(ranked_warehouse):
    lookup = lookup_of(ranked_warehouse)
    catalog = load_catalog(ranked_warehouse.catalog_file)
    (assignment,) = [
        a for a in catalog.get("decisions", "dp-app-reengage").placements if a.placement == "app-home-card"
    ]
    eligible = sorted(o.id for o in catalog.eligible_offers(assignment))
    answers = [lookup.top("app-home-card", "mobileApp", limit=len(eligible)) for _ in range(30)]
    for answer in answers:
        assert answer.ranking_version is None and answer.traffic_type == "random"
        assert sorted(o.offer_id for o in answer.offers) == eligible
        assert {(o.reason, o.traffic_type, o.propensity) for o in answer.offers} == {
            ("random", "random", 1 / len(eligible))
        }
    assert len({tuple(o.offer_id for o in a.offers) for a in answers}) > 1
    published = lookup.top("app-home-card", "mobileApp", limit=2, mode="published")
    assert [(o.offer_id, o.reason) for o in published.offers][0] == (assignment.fallback_offer, "fallback")


def test_unknown_placements_and_malformed_arguments_are_refused(ranked_warehouse):
    lookup = lookup_of(ranked_warehouse)
    with pytest.raises(UnknownPlacement, match="unknown placement 'no-such-slot'"):
        lookup.top("no-such-slot", "web")
    with pytest.raises(UnknownPlacement, match="is on channel 'web', not 'email'"):
        lookup.top("home-hero", "email")
    with pytest.raises(LookupRefused, match="channel must be one of"):
        lookup.top("home-hero", "fax")
    with pytest.raises(LookupRefused, match="placement id must be"):
        lookup.top("home hero; drop", "web")
    with pytest.raises(LookupRefused, match="limit must be between 1 and 1000"):
        lookup.top("home-hero", "web", limit=0)
    with pytest.raises(LookupRefused, match="mode must be one of policy, published"):
        lookup.top("home-hero", "web", mode="best")
    with pytest.raises(LookupRefused, match="request id must be"):
        lookup.top("home-hero", "web", request_id="r 1")
    with pytest.raises(LookupRefused, match="decision 'dp-checkout' does not assign placement 'home-hero'"):
        lookup.top("home-hero", "web", decision_id="dp-checkout")


def test_the_policy_decides_per_request_and_a_request_id_repeats(ranked_warehouse):
    lookup = lookup_of(ranked_warehouse)
    first = lookup.top("home-hero", "web", request_id="r-1")
    assert first.mode == "policy" and first.request_id == "r-1"
    assert first == lookup.top("home-hero", "web", request_id="r-1")
    proposition = first.proposition(shown=2)  # what the channel logs with the impression of the first two
    assert proposition["id"] == "r-1" and proposition["scopeDetails"]["decisionPolicy"] == {"id": "dp-web-home"}
    assert [(i["id"], i["itemSelection"]["rankingDetail"]) for i in proposition["items"]] == [
        (o.offer_id, {"trafficType": o.traffic_type, "propensity": o.propensity}) for o in first.offers[:2]
    ]
    assert sorted(o.offer_id for o in first.offers) == sorted(published_order(1, "home-hero"))
    anonymous = [lookup.top("home-hero", "web") for _ in range(40)]
    assert len({a.request_id for a in anonymous}) == 40
    assert len({tuple(o.offer_id for o in a.offers) for a in anonymous}) > 1  # two anonymous requests differ
    for answer in anonymous:
        assert {o.traffic_type for o in answer.offers} == {answer.traffic_type}
        assert {o.reason for o in answer.offers} == ({"random"} if answer.traffic_type == "random" else {"model"})
        assert all(0 < o.propensity < 1 for o in answer.offers)


def test_100k_requests_follow_the_policy_and_log_its_propensities(ranked_warehouse):
    from collections import Counter

    import numpy as np

    lookup, requests = lookup_of(ranked_warehouse), 100_000
    p_best = {r["offer_id"]: r["p_best"] for r in ranking_rows(1) if r["placement_id"] == "home-hero"}
    offers = sorted(p_best)
    served, propensity, first_under_model, random = Counter(), {}, Counter(), 0
    for i in range(requests):
        answer = lookup.top("home-hero", "web", request_id=f"r-{i}")
        random += answer.traffic_type == "random"
        first_under_model[answer.offers[0].offer_id] += answer.traffic_type == "model"
        for slot, offer in enumerate(answer.offers):
            served[offer.offer_id, slot] += 1
            propensity.setdefault((offer.offer_id, slot), offer.propensity)
            assert propensity[offer.offer_id, slot] == offer.propensity  # one policy: one propensity per slot
    assert abs(random / requests - 0.1) <= 0.005
    model_requests = requests - random
    assert max(abs(first_under_model[o] / model_requests - p_best[o]) for o in offers) <= 0.01
    frequency = {key: count / requests for key, count in served.items()}
    assert max(abs(frequency[key] - propensity[key]) for key in frequency) <= 0.01
    assert np.isclose(sum(propensity[o, 0] for o in offers), 1.0)


def test_an_empty_warehouse_is_degraded_and_says_why(tmp_path):
    lookup = lookup_of(load_settings(home=tmp_path))
    assert lookup.health()["status"] == "degraded" and lookup.health()["ranking_version"] is None
    with pytest.raises(NothingToServe, match="no catalog was applied and no ranking was published") as refused:
        lookup.top("home-hero", "web")
    assert isinstance(refused.value, Unavailable) and exit_code(refused.value) == EXIT_REFUSED


def test_a_broken_new_version_keeps_the_last_good_snapshot(spark, tmp_path):
    settings = load_settings(home=tmp_path)
    version = publish_rows(settings, ranking_rows(2))
    lookup = lookup_of(settings)
    broken = Path(settings.table_path("offer_rankings")) / "_delta_log" / f"{version + 1:020d}.json"
    broken.write_text("this is not a Delta commit\n")
    assert lookup.refresh() is False
    assert lookup.health()["last_refresh_error"]
    assert lookup.health()["status"] == "degraded"
    assert [o.offer_id for o in lookup.top("home-hero", "web", mode="published").offers] == published_order(
        2, "home-hero"
    )
    broken.unlink()
    assert lookup.refresh() is False and lookup.health()["last_refresh_error"] is None


def test_polling_picks_up_new_versions_and_readers_see_one_complete_version(tmp_path):
    settings = load_settings(home=tmp_path)
    published = {publish_rows(settings, ranking_rows(1)): 1}
    lookup = lookup_of(settings).start(interval_seconds=0.02)
    answers, stop = [], threading.Event()

    def read_continuously():
        while not stop.is_set():
            answers.append(
                (
                    lookup.top("home-hero", "web", mode="published"),
                    lookup.top("newsletter-top", "email", mode="published"),
                )
            )

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for version in (2, 3, 4):
            table_version = publish_rows(settings, ranking_rows(version))
            published[table_version] = version
            wait_until_served(lookup, table_version)
            # a publish takes milliseconds now (no Spark): let the reader see this version before the next one
            deadline = time.monotonic() + 10
            while (not answers or answers[-1][0].ranking_version != version) and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        stop.set()
        reader.join()
        lookup.stop()
    assert {hero.ranking_version for hero, _ in answers} == {1, 2, 3, 4}
    orders = {(v, p): published_order(v, p) for v in (1, 2, 3, 4) for p in ("home-hero", "newsletter-top")}
    for hero, newsletter in answers:
        version = published[hero.table_version]
        assert hero.ranking_version == version
        assert [o.offer_id for o in hero.offers] == orders[version, "home-hero"]
        assert [o.offer_id for o in newsletter.offers] == orders[published[newsletter.table_version], "newsletter-top"]


def test_offers_are_judged_on_the_serving_day_and_by_the_profiles_audience(spark, ranked_warehouse, tmp_path):
    import pandas as pd

    settings = warehouse_copy(ranked_warehouse, tmp_path)
    order = published_order(1, "home-hero")
    ended, vip_only = order[0], order[2]
    catalog = load_catalog(ranked_warehouse.catalog_file)
    changes = {ended: {"end_date": TODAY.date() - timedelta(days=1)}, vip_only: {"segments": ("vip",)}}
    offers = tuple(o.model_copy(update=changes.get(o.id, {})) for o in catalog.offers)
    Registry(settings).commit(catalog.model_copy(update={"offers": offers}), TODAY, check_datasets=False)
    members = [{"snapshot_date": date(2026, 11, 1), "profile_id": "p-vip", "segment": "vip"}]
    write_frame(settings, PROFILE_SEGMENTS, pd.DataFrame(members), "append")
    lookup = lookup_of(settings)

    anonymous = lookup.top("home-hero", "web", mode="published")
    assert [o.offer_id for o in anonymous.offers] == [o for o in order if o not in (ended, vip_only)]
    assert [o.rank for o in anonymous.offers] == [1, 2, 3] and anonymous.ranking_version == 1
    assert anonymous.dropped == {"not_eligible": 0, "not_live": 1, "audience": 1, "capped": 0}
    vip = lookup.top("home-hero", "web", profile_id="p-vip", mode="published")
    assert [o.offer_id for o in vip.offers] == [o for o in order if o != ended]
    assert vip.dropped == {"not_eligible": 0, "not_live": 1, "audience": 0, "capped": 0}
    for i in range(20):
        decided = lookup.top("home-hero", "web", profile_id=f"p-{i}")
        assert sorted(o.offer_id for o in decided.offers) == sorted(o for o in order if o not in (ended, vip_only))
        assert decided.dropped == {"not_eligible": 0, "not_live": 1, "audience": 1, "capped": 0}

    # once every ranked offer has ended, the placement's fallback chain answers; its fallback offer has ended too,
    # and is not served after its end date either (issue #54 (2))
    later = RankingLookup(settings, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    fallback = later.top("home-hero", "web")
    assert fallback.ranking_version is None
    assert fallback.dropped == {"not_eligible": 0, "not_live": 5, "audience": 0, "capped": 0}
    assert fallback.offers == ()


def test_an_unreadable_ranking_still_serves_the_fallbacks_and_says_why_in_one_line(ranked_warehouse, tmp_path):
    settings = warehouse_copy(ranked_warehouse, tmp_path)
    log = Path(settings.table_path("offer_rankings")) / "_delta_log"
    for commit in log.glob("*.json"):
        commit.write_text("this is not a Delta commit\n")
    lookup = lookup_of(settings)
    answer = lookup.top("home-hero", "web", mode="published")
    assert answer.ranking_version is None and answer.offers[0].reason == "fallback"
    assert lookup.top("home-hero", "web").traffic_type == "random"  # no model to serve: random, as before training
    health = lookup.health()
    assert health["status"] == "degraded" and health["registry_version"] is not None
    assert health["last_refresh_error"].startswith("offer_rankings: ")
    assert "\n" not in health["last_refresh_error"] and len(health["last_refresh_error"]) < 400


def test_catalog_changes_to_decisions_take_effect_at_the_next_refresh(ranked_warehouse, tmp_path):
    """Issue #54 (1): a decision set to draft, an offer pulled from a placement's eligible offers, an offer that no
    longer names the placement among its own and a placement moved to another decision reach the lookup at its
    next registry refresh, not at the next publish."""
    settings = warehouse_copy(ranked_warehouse, tmp_path)
    lookup = lookup_of(settings)
    pulled = published_order(1, "newsletter-top")[0]
    assert pulled in [o.offer_id for o in lookup.top("newsletter-top", "email", mode="published").offers]
    catalog = load_catalog(ranked_warehouse.catalog_file)

    web_home, newsletter, checkout = (
        catalog.get("decisions", d) for d in ("dp-web-home", "dp-newsletter", "dp-checkout")
    )
    hero, sidebar = web_home.placements  # the sidebar moves to dp-checkout, dp-web-home goes back to draft
    top = [a for a in newsletter.placements if a.placement == "newsletter-top"][0]
    pulled_top = top.model_copy(update={"eligible_offers": tuple(o for o in top.eligible_offers if o != pulled)})
    changed = {
        "dp-web-home": web_home.model_copy(update={"status": DecisionStatus.draft, "placements": (hero,)}),
        "dp-newsletter": newsletter.model_copy(
            update={"placements": tuple(pulled_top if a is top else a for a in newsletter.placements)}
        ),
        "dp-checkout": checkout.model_copy(update={"placements": (*checkout.placements, sidebar)}),
    }
    decisions = tuple(changed.get(d.id, d) for d in catalog.decisions)
    unplaced = published_order(1, "newsletter-top")[1]  # the offer no longer names the placement among its own
    offers = tuple(
        o.model_copy(update={"placements": tuple(p for p in o.placements if p != "newsletter-top") or ("home-hero",)})
        if o.id == unplaced
        else o
        for o in catalog.offers
    )
    changed_catalog = catalog.model_copy(update={"decisions": decisions, "offers": offers})
    Registry(settings).commit(changed_catalog, TODAY, check_datasets=False)
    assert lookup.refresh() is True

    newsletter = lookup.top("newsletter-top", "email", mode="published")
    assert newsletter.ranking_version == 1 and newsletter.decision_id == "dp-newsletter"
    gone = {pulled, unplaced}
    assert [o.offer_id for o in newsletter.offers] == [o for o in published_order(1, "newsletter-top") if o not in gone]
    assert newsletter.dropped == {"not_eligible": 2, "not_live": 0, "audience": 0, "capped": 0}
    for _ in range(20):  # the per-request policy never draws them either
        assert gone.isdisjoint(o.offer_id for o in lookup.top("newsletter-top", "email").offers)
    hero = lookup.top("home-hero", "web", mode="published")  # no active decision assigns it: no ranked list
    assert hero.ranking_version is None and hero.decision_id is None
    assert {o.reason for o in hero.offers} == {"priority_fallback"}
    with pytest.raises(LookupRefused, match="decision 'dp-web-home' does not assign placement 'home-hero'"):
        lookup.top("home-hero", "web", decision_id="dp-web-home")
    moved = lookup.top("product-sidebar", "web")  # its published list is dp-web-home's
    assert moved.ranking_version is None and moved.decision_id == "dp-checkout"
    assert lookup.health()["placements"] == 1


def test_each_list_answers_with_its_own_run_and_the_newest_date_loads_the_profiles(ranked_warehouse, tmp_path):
    """Issue #54 (6): with a list kept from an older run (held back, or its method failed), each answer gives its
    list's own data day and run, and health and the profile snapshot follow the newest data day, whichever row
    sorts first."""
    import pandas as pd

    settings = warehouse_copy(ranked_warehouse, tmp_path)
    kept = [r for r in ranking_rows(1) if r["placement_id"] == "home-hero"]  # sorts first: decision, placement
    fresh = [{**r, "ranking_version": 1} for r in ranking_rows(2) if r["placement_id"] != "home-hero"]
    publish_rows(settings, kept + fresh)
    members = [
        {"snapshot_date": date(2026, 11, 1), "profile_id": "p-new", "segment": "gold"},
        {"snapshot_date": date(2026, 11, 2), "profile_id": "p-new", "segment": "vip"},
    ]
    write_frame(settings, PROFILE_SEGMENTS, pd.DataFrame(members), "append")
    catalog = load_catalog(ranked_warehouse.catalog_file)
    vip_only = published_order(2, "newsletter-top")[0]
    offers = tuple(o.model_copy(update={"segments": ("vip",)}) if o.id == vip_only else o for o in catalog.offers)
    Registry(settings).commit(catalog.model_copy(update={"offers": offers}), TODAY, check_datasets=False)
    lookup = lookup_of(settings)

    hero = lookup.top("home-hero", "web", mode="published")
    assert (hero.as_of_date, hero.run_id) == (date(2026, 11, 1), "run-1")
    newsletter = lookup.top("newsletter-top", "email", profile_id="p-new", mode="published")
    assert (newsletter.as_of_date, newsletter.run_id) == (date(2026, 11, 2), "run-2")
    assert newsletter.offers[0].offer_id == vip_only  # in `vip` in the snapshot of the newest date
    assert newsletter.as_dict()["run_id"] == "run-2"
    assert lookup.health()["as_of_date"] == "2026-11-02"
    fallback = lookup.top("checkout-banner", "web")
    assert (fallback.as_of_date, fallback.run_id) == (None, None)


def test_the_cold_start_thresholds_change_what_the_policy_serves(ranked_warehouse, tmp_path):
    """Issue #54 (7): the cold-start label changed nothing the policy served. Now random traffic shows the offers in
    cold start first and a Thompson draw the offers past it first, as the published traffic shares say."""
    from collections import Counter

    settings = warehouse_copy(ranked_warehouse, tmp_path)
    cold = set(published_order(1, "home-hero")[-2:])  # a wide prior: it would win many Thompson draws
    rows = [
        {**r, "alpha": 1.0, "beta": 1.0, "score": 0.5, "reason": "cold_start"} if r["offer_id"] in cold else r
        for r in (r for r in ranking_rows(1))
        if r["placement_id"] == "home-hero"
    ]
    publish_rows(settings, rows)
    lookup = lookup_of(settings)
    served, propensity = Counter(), {}
    for i in range(4_000):
        answer = lookup.top("home-hero", "web", limit=3, request_id=f"r-{i}")
        first_two = {o.offer_id for o in answer.offers[:2]}
        if answer.traffic_type == "random":
            assert first_two == cold  # a random order of the cold-start offers, then of the others
        else:
            assert not first_two & cold  # the three warm offers win every draw
        for slot, offer in enumerate(answer.offers):
            served[offer.offer_id, slot] += 1
            assert propensity.setdefault((offer.offer_id, slot), offer.propensity) == offer.propensity
    assert max(abs(count / 4_000 - propensity[key]) for key, count in served.items()) < 0.025
    for offer_id in cold:  # each first in half the random traffic: 0.1 / 2
        assert abs(propensity[offer_id, 0] - 0.05) < 1e-9
