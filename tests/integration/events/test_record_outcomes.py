"""Record-level outcomes of the events pipeline that ingest runs (read, parse, route, flatten, label), one bad-input
class at a time, on a handful of inline records."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from offerrank.engines.quality import load_suite
from offerrank.events.day_checks import interactions_per_offer, record_parameters
from offerrank.events.dedup import label_records
from offerrank.events.quarantine import route_records
from offerrank.events.records import read_records
from offerrank.events.xdm import EVENT_SCHEMA, flatten_records, parse_json_lines, parse_records, to_interactions
from tests.factories import DATA

RUN_DATE = date(2026, 11, 22)
# A copy of shared/events/examples.jsonl (the event contract's examples), so the suite runs from any checkout.
EXAMPLES = DATA / "proposition_interactions_examples.jsonl"


@pytest.fixture(scope="module")
def examples() -> list[dict]:
    return [json.loads(line) for line in EXAMPLES.read_text().splitlines()]


@pytest.fixture
def event(examples):
    """A fresh copy of the first example (a web impression) to break in one way."""
    return copy.deepcopy(examples[0])


def classify_lines(
    spark, settings, folder, lines: list, other_days=None, max_record_bytes=1_000_000, known_offers=None
):
    """Run records through parse -> route -> flatten -> label; returns ([(outcome, reason codes)] of the records
    that are not bytes, in input order; the labelled frame, a row per item)."""
    suite = load_suite(settings.expectations_dir, "events_records")
    path = folder / f"part-{len(list(folder.iterdir()))}.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else _text(line).encode() for line in lines) + b"\n")
    records = read_records(spark, {"json": [str(path)], "parquet": []})
    routed = route_records(
        parse_records(records, max_record_bytes, known_offers), suite, record_parameters(settings, RUN_DATE)
    )
    seen = spark.createDataFrame(other_days, "event_id string, landing_date date") if other_days else None
    flat = flatten_records(routed)
    labelled = label_records(flat, flat.filter("record_row"), seen, RUN_DATE)
    rows = {r.raw: (r.outcome, sorted(r.reason_codes)) for r in labelled.filter("record_row").collect()}
    return [
        rows[_text(line) if not isinstance(line, bytes) else line.decode("utf-8", "replace")]
        for line in lines
        if not isinstance(line, bytes)
    ], labelled


@pytest.fixture
def classify(spark, settings, tmp_path):
    """`classify_lines` in the test's own folder."""
    return lambda lines, **options: classify_lines(spark, settings, tmp_path, lines, **options)


def _text(line) -> str:
    return line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))


def outcome(classify, broken: dict | str, *others):
    (result, *_), _ = classify([broken, *others])
    return result


def test_valid_examples_are_accepted_and_flattened_per_item(classify, examples):
    results, labelled = classify(examples)
    assert results == [("accepted", [])] * 4
    interactions = to_interactions(labelled.filter("outcome = 'accepted'"), RUN_DATE, "run-1").collect()
    assert len(interactions) == 5  # the email impression carries two offers
    click = next(r for r in interactions if r.interaction == "conversion")
    assert (click.offer_id, click.placement_id, click.channel, click.decision_id, click.traffic_type) == (
        "offer-spring-10",
        "home-hero",
        "web",
        "dp-spring-sale",
        "model",
    )
    assert click.profile_id == "41520911863207584021459103812775114701"
    assert click.event_date == date(2026, 11, 22) and click.landing_date == RUN_DATE
    assert sorted(r.offer_id for r in interactions if r.channel == "email") == [
        "offer-free-shipping",
        "offer-loyalty-2x",
    ]


UNREADABLE = [
    ('{"_id": "x", "timestamp": ', "malformed_json"),
    ('[{"_id": "x"}]', "not_an_object"),
    ("42", "not_an_object"),
    ('{"_id": "x", "_experience": {"decisioning": {"propositions": {"id": "p"}}}}', "wrong_field_type"),
]


@pytest.fixture(scope="module")
def unreadable_outcomes(spark, settings, tmp_path_factory, examples):
    """The outcome of each UNREADABLE line, all classified in one run beside a valid record."""
    lines = [line for line, _ in UNREADABLE]
    return classify_lines(spark, settings, tmp_path_factory.mktemp("unreadable"), [*lines, examples[1]])[0]


@pytest.mark.parametrize("case", range(len(UNREADABLE)), ids=[code for _, code in UNREADABLE])
def test_unreadable_records_are_quarantined_with_why(unreadable_outcomes, case):
    assert unreadable_outcomes[case] == ("quarantined", [UNREADABLE[case][1]])
    assert unreadable_outcomes[-1] == ("accepted", [])


def test_items_that_are_not_an_array(classify, event):
    event["_experience"]["decisioning"]["propositions"][0]["items"] = {"id": "offer-spring-10"}
    assert outcome(classify, event) == ("quarantined", ["wrong_field_type"])


def test_invalid_utf8_is_quarantined_and_the_rest_of_the_file_kept(classify, examples):
    bad = b'{"_id":"caf\xe9-1","timestamp":"2026-11-22T08:00:00Z"}'
    results, labelled = classify([bad, examples[0]])
    assert results == [("accepted", [])]
    quarantined = labelled.filter("outcome = 'quarantined'").collect()
    assert [r.reason_codes for r in quarantined] == [["invalid_utf8"]]


def test_a_line_of_several_megabytes_is_quarantined_as_oversized(classify, event, examples):
    event["padding"] = "x" * 3_000_000
    results, _ = classify([event, examples[1]], max_record_bytes=1_000_000)
    assert results == [("quarantined", ["oversized_record"]), ("accepted", [])]


def test_an_oversized_record_is_not_parsed(spark, event, examples):
    items = [{"id": f"offer-{i % 7:03d}"} for i in range(100_000)]  # 2 MB of items: would be 100,000 structs
    event["_experience"]["decisioning"]["propositions"][0]["items"] = items
    lines = [json.dumps(event), json.dumps(examples[1])]
    records = spark.createDataFrame([("f.jsonl", line) for line in lines], "source_file string, raw string")
    parsed = parse_json_lines(records, EVENT_SCHEMA, 1_000_000).select(
        "parse_status", F.col("j").isNull().alias("skipped")
    )
    assert [tuple(row) for row in parsed.collect()] == [("oversized_record", True), ("ok", False)]


def _rankingdetail(event: dict) -> dict:
    return event["_experience"]["decisioning"]["propositions"][0]["items"][0]["itemSelection"]["rankingDetail"]


# One broken copy of the first example per record-level rule, and the reason code it must get.
RULES = [
    (lambda e: e.pop("_id"), "missing_event_id"),
    (lambda e: e.update(_id="has spaces/and slashes"), "invalid_event_id"),
    (lambda e: e.pop("timestamp"), "missing_timestamp"),
    (lambda e: e.update(timestamp="yesterday at noon"), "unparseable_timestamp"),
    (lambda e: e.update(timestamp="2026-11-23T00:30:00Z"), "future_timestamp"),
    (lambda e: e.update(timestamp="2026-11-18T23:59:59Z"), "beyond_lateness_window"),
    (lambda e: e["_experience"]["decisioning"].update(propositionEventType={"interact": 1}), "event_type_mismatch"),
    (lambda e: e.update(eventType="commerce.purchases"), "unknown_event_type"),
    (lambda e: e.pop("eventType"), "missing_event_type"),
    (lambda e: e["_experience"]["decisioning"].update(propositions=[]), "no_propositions"),
    (lambda e: e["_experience"]["decisioning"].pop("propositions"), "no_propositions"),
    (lambda e: e["_experience"]["decisioning"]["propositions"][0].update(items=[]), "proposition_without_items"),
    (lambda e: e["_experience"]["decisioning"]["propositions"][0].pop("id"), "proposition_without_id"),
    (
        lambda e: [e["_experience"]["decisioning"]["propositions"][0].pop(k) for k in ("scope", "scopeDetails")],
        "proposition_without_placement",
    ),
    (lambda e: e["_experience"]["decisioning"]["propositions"][0]["items"][0].pop("id"), "item_without_id"),
    (
        lambda e: e["_experience"]["decisioning"]["propositions"][0]["items"][0].update(id="offer <script>"),
        "invalid_id_format",
    ),
    (lambda e: e["_experience"]["decisioning"]["propositions"][0].update(id=""), "invalid_id_format"),
    (lambda e: e["_experience"]["decisioning"]["propositions"][0].update(id="prop-1\nprop-2"), "invalid_id_format"),
    (lambda e: _rankingdetail(e).update(propensity=1.5), "invalid_propensity"),
    (lambda e: _rankingdetail(e).update(propensity=-0.1), "invalid_propensity"),
    # issue #54, item 9: a weight of 1/0 or 1e300 would turn every estimate of the placement into inf or NaN
    (lambda e: _rankingdetail(e).update(propensity=0), "propensity_below_floor"),
    (lambda e: _rankingdetail(e).update(propensity=1e-300), "propensity_below_floor"),
    (lambda e: _rankingdetail(e).update(propensity="high"), "wrong_field_type"),
    (lambda e: e.pop("identityMap"), "missing_identity"),
    (lambda e: e.pop("channel"), "missing_channel"),
    (lambda e: e.update(channel={"_type": "https://ns.adobe.com/xdm/channel-types/we b"}), "invalid_channel"),
]


@pytest.fixture(scope="module")
def rule_outcomes(spark, settings, tmp_path_factory, examples):
    """The outcome of each RULES case, all classified in one run beside a valid record: each case is its own event
    (an _id of its own, unless the rule is about the _id)."""
    broken = []
    for index, (mutate, _) in enumerate(RULES):
        event = copy.deepcopy(examples[0])
        event["_id"] = f"rule-case-{index}"
        mutate(event)
        broken.append(event)
    return classify_lines(spark, settings, tmp_path_factory.mktemp("rules"), [*broken, examples[1]])[0]


@pytest.mark.parametrize("case", range(len(RULES)), ids=[code for _, code in RULES])
def test_record_level_rules(rule_outcomes, case):
    assert rule_outcomes[case] == ("quarantined", [RULES[case][1]])
    assert rule_outcomes[-1] == ("accepted", [])


def test_late_events_within_the_window_and_other_decisioning_types_are_accepted(classify, event, examples):
    event["timestamp"] = "2026-11-19T00:00:00Z"  # three days late: the edge of the default window
    dismiss = copy.deepcopy(examples[3])
    dismiss["eventType"] = "decisioning.propositionDismiss"
    dismiss["_experience"]["decisioning"]["propositionEventType"] = {"dismiss": 1}
    results, labelled = classify([event, dismiss])
    assert results == [("accepted", []), ("accepted", [])]
    interactions = to_interactions(labelled.filter("outcome = 'accepted'"), RUN_DATE, "r").collect()
    assert [(r.event_id, r.event_date) for r in interactions] == [(event["_id"], date(2026, 11, 19))]


def test_the_logged_traffic_type_and_propensity_are_kept(classify, event):
    _rankingdetail(event).update(trafficType="random", propensity=0.025)
    results, labelled = classify([event])
    assert results == [("accepted", [])]
    (row,) = to_interactions(labelled, RUN_DATE, "r").collect()
    assert (row.traffic_type, row.propensity) == ("random", 0.025)


def test_channel_type_stands_in_and_primary_identity_wins(classify, event):
    event.pop("channel")
    event["_experience"]["decisioning"]["channelType"] = "email"
    event["identityMap"] = {"ECID": [{"id": "ecid-1"}], "Email": [{"id": "crm-9", "primary": True}]}
    results, labelled = classify([event])
    assert results == [("accepted", [])]
    (row,) = to_interactions(labelled, RUN_DATE, "r").collect()
    assert (row.channel, row.profile_id) == ("email", "crm-9")


def test_a_free_text_scope_beside_a_placement_id_and_a_null_propensity_are_accepted(classify, event, examples):
    """A proposition's `scope` names its placement only without `scopeDetails.placement.id`, so a free-text scope
    beside a placement id is no reason to quarantine; nor is a null propensity."""
    proposition = event["_experience"]["decisioning"]["propositions"][0]
    proposition["scope"] = "the sidebar of product pages"
    _rankingdetail(event)["propensity"] = None
    results, _ = classify([event, examples[1]])
    assert results == [("accepted", []), ("accepted", [])]


def test_exact_duplicates_count_once(classify, event):
    results, labelled = classify([event, event, event])
    outcomes = sorted(r.outcome for r in labelled.filter("record_row").collect())
    assert outcomes == ["accepted", "exact_duplicate", "exact_duplicate"]
    interactions = to_interactions(labelled.filter("outcome = 'accepted'"), RUN_DATE, "r").collect()
    assert [r.event_id for r in interactions] == [event["_id"]]


def test_conflicting_duplicates_keep_the_earliest_and_quarantine_the_other(classify, event):
    later = copy.deepcopy(event)
    later["timestamp"] = "2026-11-22T09:00:00.000Z"
    results, _ = classify([later, event])
    assert results == [("quarantined", ["conflicting_duplicate"]), ("accepted", [])]


def test_conflicting_duplicates_with_equal_timestamps_are_decided_by_content(classify, event):
    other = copy.deepcopy(event)
    other["_experience"]["decisioning"]["propositions"][0]["items"][0]["name"] = "A different name"
    first = classify([event, other])[0]
    second = classify([other, event])[0]
    assert sorted(first) == sorted(second) == [("accepted", []), ("quarantined", ["conflicting_duplicate"])]
    assert first == list(reversed(second))


def test_an_event_ingested_on_another_day_of_the_window_is_not_counted_again(classify, event, examples):
    earlier, later = RUN_DATE - timedelta(days=1), RUN_DATE + timedelta(days=1)
    results, _ = classify([event, examples[1]], other_days=[(event["_id"], earlier)])
    assert results == [("quarantined", ["duplicate_of_earlier_day"]), ("accepted", [])]
    # days ingested out of order: the later folder went first
    results, _ = classify([event, examples[1]], other_days=[(event["_id"], later)])
    assert results == [("quarantined", ["duplicate_of_later_day"]), ("accepted", [])]


def test_an_offer_unknown_to_the_catalog_is_quarantined_once_a_catalog_exists(classify, examples):
    known = ["offer-spring-10", "offer-free-shipping", "offer-app-5"]  # no offer-loyalty-2x
    results, _ = classify(examples, known_offers=known)
    assert results == [("accepted", []), ("accepted", []), ("quarantined", ["unknown_offer"]), ("accepted", [])]
    assert classify(examples)[0] == [("accepted", [])] * 4


def test_an_item_without_id_is_no_unknown_offer_even_in_a_catalog_without_offers(classify, event):
    event["_experience"]["decisioning"]["propositions"][0]["items"][0].pop("id")
    assert outcome(classify, event) == ("quarantined", ["item_without_id"])
    assert classify([event], known_offers=[])[0] == [("quarantined", ["item_without_id"])]


def test_an_offers_conversions_are_its_distinct_converted_propositions(spark):
    rows = [
        ("offer-1", "prop-1", "impression"),
        ("offer-1", "prop-1", "conversion"),
        ("offer-1", "prop-1", "conversion"),  # a second click on the same proposition
        ("offer-1", "prop-2", "conversion"),
        ("offer-2", "prop-3", "impression"),
    ]
    frame = spark.createDataFrame(rows, "offer_id string, proposition_id string, interaction string")
    per_offer = {r.offer_id: (r.rows, r.impressions, r.conversions) for r in interactions_per_offer(frame).collect()}
    assert per_offer == {"offer-1": (4, 1, 2), "offer-2": (1, 1, 0)}
