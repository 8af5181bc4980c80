"""Sample data generator: determinism, the event contract, ground truth against what was emitted."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from datetime import date

import pytest
import yaml

from offerrank.sim.event_lines import CHANNEL_TYPE_PREFIX, FAULT_KINDS
from offerrank.sim.generator import generate

START = date(2026, 11, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return generate(out, START, days=3, seed=11, events_per_day=6_000)


def read_lines(out):
    for path in sorted((out / "events").glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield path.parent.name, line


def test_same_seed_gives_identical_files(tmp_path, sample):
    again = generate(tmp_path, START, days=3, seed=11, events_per_day=6_000)
    files = sorted(p.relative_to(sample.out) for p in sample.out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.out) for p in again.out.rglob("*") if p.is_file())
    for relative in files:
        assert (sample.out / relative).read_bytes() == (again.out / relative).read_bytes(), relative
    other = generate(tmp_path / "other", START, days=1, seed=12, events_per_day=200)
    assert (other.out / "events/2026-11-01/events-2026-11-01.jsonl").read_bytes()[:500] != (
        sample.out / "events/2026-11-01/events-2026-11-01.jsonl"
    ).read_bytes()[:500]


def test_events_follow_the_contract(sample):
    counted = Counter()
    for folder, line in read_lines(sample.out):
        event = json.loads(line)
        assert event["timestamp"].startswith(folder), "an event lands in the folder of its UTC date"
        decisioning = event["_experience"]["decisioning"]
        kind = {"decisioning.propositionDisplay": "display", "decisioning.propositionInteract": "interact"}[
            event["eventType"]
        ]
        assert decisioning["propositionEventType"] == {kind: 1}
        assert event["identityMap"]["ECID"][0]["primary"] is True
        assert event["channel"]["_type"].startswith(CHANNEL_TYPE_PREFIX)
        for proposition in decisioning["propositions"]:
            assert proposition["id"] and proposition["scopeDetails"]["placement"]["id"] == proposition["scope"]
            assert all(
                item["id"]
                and item["itemSelection"]["rankingDetail"]["trafficType"] in ("model", "random")
                and 0 < item["itemSelection"]["rankingDetail"]["propensity"] <= 1
                for item in proposition["items"]
            )
        counted[(kind, event["channel"]["_type"].rsplit("/", 1)[1])] += 1
    assert sum(counted.values()) == sample.events_written == sum(sample.lines_per_date.values())
    assert {channel for _, channel in counted} == {"web", "email", "push", "mobileApp"}
    assert 0.005 < sum(v for (k, _), v in counted.items() if k == "interact") / sample.events_written < 0.1


def test_email_shows_several_items_and_some_clicks_land_next_day(sample):
    items_per_email = set()
    next_day_clicks = 0
    for _folder, line in read_lines(sample.out):
        event = json.loads(line)
        proposition = event["_experience"]["decisioning"]["propositions"][0]
        if event["eventType"].endswith("Display") and event["channel"]["_type"].endswith("email"):
            items_per_email.add(len(proposition["items"]))
        if event["eventType"].endswith("Interact") and "T00:" in event["timestamp"]:
            next_day_clicks += 1
    assert items_per_email >= {2, 3}
    assert next_day_clicks > 0


def test_ground_truth_matches_emitted_counts_and_true_rates(sample):
    impressions, clicked_items = Counter(), set()
    for _, line in read_lines(sample.out):
        event = json.loads(line)
        channel = event["channel"]["_type"].rsplit("/", 1)[1]
        for proposition in event["_experience"]["decisioning"]["propositions"]:
            for item in proposition["items"]:
                key = (item["id"], proposition["scope"], channel)
                if event["eventType"].endswith("Display"):
                    impressions[key] += 1
                else:
                    clicked_items.add((proposition["id"], key))
    conversions = Counter(key for _, key in clicked_items)

    with open(sample.out / "ground_truth.csv", encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    truth_impressions, truth_conversions = Counter(), Counter()
    for row in truth:
        key = (row["offer_id"], row["placement_id"], row["channel"])
        truth_impressions[key] += int(row["impressions"])
        truth_conversions[key] += int(row["conversions"])
        n, rate = int(row["impressions"]), float(row["true_conversion_rate"])
        if n >= 300:  # a generous 5-sigma band keeps this test stable yet catches a wrong rate model
            observed = int(row["conversions"]) / n
            assert abs(observed - rate) <= 5 * math.sqrt(rate * (1 - rate) / n) + 1 / n, row
    assert truth_impressions == impressions
    assert truth_conversions == conversions


def test_injected_faults_are_counted_per_folder(tmp_path):
    result = generate(tmp_path, START, days=2, seed=3, events_per_day=3_000, fault_rate=0.05)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["faults"] == {day: dict(kinds) for day, kinds in result.faults.items()}
    kinds_seen = {kind for kinds in manifest["faults"].values() for kind in kinds}
    assert kinds_seen == set(FAULT_KINDS)
    malformed = 0
    for _, line in read_lines(tmp_path):
        try:
            if not isinstance(json.loads(line), dict):
                malformed += 1
        except json.JSONDecodeError:
            malformed += 1
    assert malformed == sum(
        kinds.get("malformed_json", 0) + kinds.get("not_an_object", 0) for kinds in manifest["faults"].values()
    )


def test_catalog_covers_every_ranking_method(sample):
    catalog = yaml.safe_load((sample.out / "catalog.yaml").read_text())
    methods = {p["ranking"].split(":")[0] for d in catalog["decisions"] for p in d["placements"]}
    assert methods == {"ai_model", "priority", "formula"}
    offer_ids = {o["id"] for o in catalog["offers"]}
    for decision in catalog["decisions"]:
        for placement in decision["placements"]:
            assert placement["fallback_offer"] in placement["eligible_offers"]
            assert set(placement["eligible_offers"]) <= offer_ids


def segments_of_profiles(out):
    """ECID -> the segment the generator put the profile in (its realized membership)."""
    (path,) = (out / "profiles").glob("*/profiles.jsonl")
    segments = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        profile = json.loads(line)
        ((segment, _),) = [(s, m) for s, m in profile["segmentMembership"]["ups"].items() if m["status"] == "realized"]
        segments[profile["identityMap"]["ECID"][0]["id"]] = segment
    return segments


def test_the_logged_propensity_is_how_often_the_traffics_policy_puts_an_offer_in_a_slot(sample):
    """Random traffic draws uniformly (propensity 1/offers in every slot); model traffic draws by a policy per
    segment, whose exact slot probabilities are logged."""
    segment_of = segments_of_profiles(sample.out)
    shown, logged, displays, offers = Counter(), {}, Counter(), {}
    for _folder, line in read_lines(sample.out):
        event = json.loads(line)
        if not event["eventType"].endswith("Display"):
            continue
        (proposition,) = event["_experience"]["decisioning"]["propositions"]
        traffic = proposition["items"][0]["itemSelection"]["rankingDetail"]["trafficType"]
        policy = (proposition["scope"], traffic, segment_of[event["identityMap"]["ECID"][0]["id"]])
        displays[policy] += 1
        for slot, item in enumerate(proposition["items"]):
            shown[policy, item["id"], slot] += 1
            logged[policy, item["id"], slot] = item["itemSelection"]["rankingDetail"]["propensity"]
    for (policy, offer, slot), count in shown.items():  # a 5-sigma band: stable, yet catches a wrong propensity
        n, p = displays[policy], logged[policy, offer, slot]
        assert abs(count / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1 / n, (policy, offer, slot)
    catalog = yaml.safe_load((sample.out / "catalog.yaml").read_text())
    for placement in (p for d in catalog["decisions"] for p in d["placements"]):
        offers[placement["placement"]] = len(placement["eligible_offers"])
    assert all(
        math.isclose(propensity, 1 / offers[policy[0]], rel_tol=1e-5)
        for (policy, _, _), propensity in logged.items()
        if policy[1] == "random"
    )


def test_model_traffic_converts_better_than_random_by_a_known_margin(sample):
    with open(sample.out / "ground_truth.csv", encoding="utf-8") as handle:
        by_offer = list(csv.DictReader(handle))
    with open(sample.out / "ground_truth_traffic.csv", encoding="utf-8") as handle:
        by_traffic = list(csv.DictReader(handle))
    assert sum(int(r["items_shown"]) for r in by_traffic) == sum(int(r["impressions"]) for r in by_offer)
    random_share = sum(int(r["items_shown"]) for r in by_traffic if r["traffic_type"] == "random") / sum(
        int(r["items_shown"]) for r in by_traffic
    )
    assert 0.08 < random_share < 0.12
    expected = {
        (r["placement_id"], r["segment"], r["traffic_type"]): float(r["expected_conversion_rate"]) for r in by_traffic
    }
    assert all(expected[p, s, "model"] > expected[p, s, "random"] for p, s, _ in expected)
    # the expected rate of random traffic is the mean true rate of the placement's offers
    hero = [
        float(r["true_conversion_rate"])
        for r in by_offer
        if r["placement_id"] == "home-hero" and r["segment"] == "loyal-customers"
    ]
    assert math.isclose(expected["home-hero", "loyal-customers", "random"], sum(hero) / len(hero), rel_tol=1e-4)


def test_slot_probabilities_of_a_draw_without_replacement_are_exact():
    import numpy as np

    from offerrank.sim.generator import slot_probabilities_of_draw

    in_slot = slot_probabilities_of_draw(np.array([0.5, 0.3, 0.2]), slots=2)
    assert np.allclose(in_slot[:, 0], [0.5, 0.3, 0.2])
    # offer 0 second: 0.3 * 0.5 / 0.7 + 0.2 * 0.5 / 0.8
    assert np.isclose(in_slot[0, 1], 0.3 * 0.5 / 0.7 + 0.2 * 0.5 / 0.8) and np.allclose(in_slot.sum(axis=0), 1)
