"""Catalog validation: the generated catalog is valid; every refusal names the file, entity and field."""

from __future__ import annotations

import copy
import re
from datetime import date

import pytest
import yaml

from offerrank.catalog import CatalogError, Dataset, build_catalog, load_catalog
from offerrank.catalog.layout import check_dataset_layout
from offerrank.sim.generator import generate
from tests.factories import hostile_files


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog-sample")
    generate(out, date(2026, 11, 1), days=1, events_per_day=300)
    return out


@pytest.fixture
def data(sample):
    return yaml.safe_load((sample / "catalog.yaml").read_text())


def test_the_generated_catalog_is_valid_and_covers_every_ranking_method(sample):
    catalog = load_catalog(sample / "catalog.yaml")
    methods = {a.method.kind for d in catalog.decisions for a in d.placements}
    assert methods == {"ai_model", "priority", "formula"}
    assert catalog.datasets[0].path == str(sample / "events")
    home = catalog.get("decisions", "dp-web-home").placements[0]
    assert [o.id for o in catalog.eligible_offers(home)] == list(home.eligible_offers)
    assert catalog.models_in_use()["auto-web"] == ["dp-web-home/home-hero", "dp-app-reengage/app-home-card"]


def refused(data, match):
    with pytest.raises(CatalogError, match=match):
        build_catalog(data, "catalog.yaml")


def test_an_offer_with_an_empty_date_range(data):
    data["offers"][3]["end_date"] = "2020-01-01"
    refused(data, r"catalog.yaml: offers\[offer-004\]: Value error, the date range is empty")


def test_more_than_fifty_segments(data):
    model = next(m for m in data["ai_models"] if m["type"] == "personalized")
    model["segments"] = [f"segment-{i}" for i in range(51)]
    refused(data, r"ai_models\[personalized-mobile\]: Value error, 51 segments given; at most 50")


def test_model_segments_are_ids_listed_once(data):
    model = next(m for m in data["ai_models"] if m["type"] == "personalized")
    model["segments"] = ["*", "vip"]
    refused(data, r"ai_models\[personalized-mobile\]: Value error, segment '\*' is not a segment id")
    model["segments"] = ["vip", "loyal", "vip"]
    refused(data, r"ai_models\[personalized-mobile\]: Value error, segments listed more than once: vip")


def test_offer_audiences_are_segment_ids_listed_once(data):
    data["offers"][0]["segments"] = ["vip", "*"]
    refused(data, r"offers\[offer-001\]: Value error, segment '\*' is not a segment id")
    data["offers"][0]["segments"] = ["vip", "vip"]
    refused(data, r"offers\[offer-001\]: Value error, segments listed more than once: vip")


@pytest.mark.parametrize(
    "caps, match",
    [
        ([{"event": "impression", "limit": 0, "period": "day"}], r".caps\[0\].limit: Input should be greater than"),
        ([{"event": "impression", "limit": 3, "period": "year"}], r".caps\[0\].period: Input should be 'day', 'week'"),
        (
            [{"event": "view", "limit": 3, "period": "day"}],
            r".caps\[0\].event: Input should be 'impression' or 'click'",
        ),
        ([{"event": "click", "per": "household", "limit": 3, "period": "day"}], r".caps\[0\].per: Input should be"),
        ([{"event": "click", "limit": 3}], r".caps\[0\].period: Field required"),
        ([{"event": "click", "limit": 3, "period": "week"}] * 11, r".caps: Tuple should have at most 10 items"),
        ([{"event": "click", "limit": 3, "period": "day"}], r".caps\[0\]: Value error, a click cap per day cannot be"),
        (
            [
                {"event": "impression", "limit": 3, "period": "week"},
                {"event": "impression", "limit": 5, "period": "week"},
            ],
            r": Value error, caps: one rule per event, per and period; given more than once: impression:total:week",
        ),
    ],
)
def test_malformed_frequency_caps_are_refused(data, caps, match):
    data["offers"][0]["caps"] = caps
    refused(data, r"offers\[offer-001\]" + match)


def test_frequency_caps_count_calendar_periods_in_utc(data):
    data["offers"][0]["caps"] = [
        {"event": "impression", "limit": 5, "period": period} for period in ("day", "week", "month", "lifetime")
    ] + [{"event": "click", "per": "profile", "limit": 1, "period": "week"}]
    offer = build_catalog(data, "catalog.yaml").offers[0]
    thursday = date(2026, 11, 26)
    assert [cap.window_start(thursday, offer.start_date) for cap in offer.caps] == [
        thursday,
        date(2026, 11, 23),
        date(2026, 11, 1),
        offer.start_date,
        date(2026, 11, 23),
    ]
    assert offer.caps[4].per == "profile" and offer.caps[0].per == "total"


def fallbacks_of(data) -> set[str]:
    return {a["fallback_offer"] for decision in data["decisions"] for a in decision["placements"]}


def test_an_offer_audience_decides_which_lists_hold_it_and_who_sees_it(data):
    at = next(i for i, o in enumerate(data["offers"]) if o["id"] not in fallbacks_of(data))
    data["offers"][at]["segments"] = ["vip"]
    catalog = build_catalog(data, "catalog.yaml")
    offer, open_offer = catalog.offers[at], catalog.offers[at - 1]
    assert offer.ranked_for("*") and offer.ranked_for("vip") and not offer.ranked_for("loyal")
    assert open_offer.ranked_for("loyal")
    assert offer.shown_to(frozenset({"loyal", "vip"})) and not offer.shown_to(frozenset({"loyal"}))
    assert not offer.shown_to(frozenset()) and open_offer.shown_to(frozenset())


def test_a_fallback_offer_with_an_audience_is_refused(data):
    """Issue #54 (2): a fallback is served to anyone, so the catalog refuses one with an audience, naming the
    decision, the placement and the offer."""
    (offer,) = [o for o in data["offers"] if o["id"] == "offer-001"]
    offer["segments"], offer["end_date"] = ["vip-only"], "2026-11-05"
    assert "offer-001" in fallbacks_of(data)
    refused(
        data,
        r"decisions\[dp-web-home\]\.placements\[product-sidebar\]\.fallback_offer: offer 'offer-001' has an "
        r"audience \(segments vip-only\); a fallback offer is shown to every profile",
    )
    offer["segments"] = []
    build_catalog(data, "catalog.yaml")  # an end date alone is valid: the lookup stops serving it once ended


def test_a_decision_assigns_each_placement_once(data):
    decision = data["decisions"][0]
    decision["placements"].append(dict(decision["placements"][0]))
    placement = decision["placements"][0]["placement"]
    refused(data, rf"decisions\[{decision['id']}\]: Value error, placements assigned more than once: {placement}")


def test_a_formula_that_fails_for_an_offer_it_may_rank_is_refused_when_applied(data):
    data["formulas"][0]["expression"] = "priority / (priority - priority)"
    refused(data, r"decisions\[dp-checkout\]\.placements\[checkout-banner\]\.ranking: formula 'margin-boost' fails "
            r"for offer offer-0\d+: division by zero")  # fmt: skip
    data["formulas"][0]["expression"] = 'priority + if(margin > "0.3", 20, 0)'  # a quoted number
    refused(data, r"fails for offer offer-0\d+: cannot compare .* a number and a text")


def test_a_formula_that_does_not_parse_or_breaks_the_limits(data):
    data["formulas"][0]["expression"] = "priority.__class__"
    refused(data, r"formulas\[margin-boost\].expression: Value error, formula does not parse")
    data["formulas"][0]["expression"] = "(" * 20 + "1" + ")" * 20
    refused(data, r"formulas\[margin-boost\].expression: .*nests parentheses 20 levels")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda d: d["decisions"][0]["placements"][0].update(eligible_offers=["offer-999"]),
            r"unknown offer 'offer-999'",
        ),
        (
            lambda d: d["decisions"][0]["placements"][0].update(placement="nowhere"),
            r"placement: unknown placement 'nowhere'",
        ),
        (
            lambda d: d["decisions"][1]["placements"][0].update(ranking="formula:nope"),
            r"ranking: unknown formula 'nope'",
        ),
        (
            lambda d: d["decisions"][0]["placements"][0].update(ranking="ai_model:ghost"),
            r"ranking: unknown AI model 'ghost'",
        ),
        (
            lambda d: d["decisions"][0]["placements"][0].update(ranking="random"),
            r"ranking: Value error, unknown ranking 'random'; one of ai_model:<id>, formula:<id>, priority",
        ),
        (lambda d: d["offers"][0].update(placements=["nowhere"]), r"offers\[offer-001\].placements: unknown placement"),
        (
            lambda d: d["ai_models"][0].update(datasets=["clicks"]),
            r"ai_models\[auto-web\].datasets: unknown dataset 'clicks'",
        ),
        (lambda d: d["offers"].append(copy.deepcopy(d["offers"][0])), r"offers\[offer-001\]: duplicate id"),
        (lambda d: d["ai_models"][0].update(status="draft"), r"AI model 'auto-web' is draft; activate it first"),
        (lambda d: d["placements"][0].update(channel="fax"), r"placements\[home-hero\].channel: Input should be"),
        (lambda d: d["ai_models"][0].update(exploration_share=1.5), r"ai_models\[auto-web\].exploration_share"),
        (lambda d: d["ai_models"][0].update(segments=["vip"]), r"auto-optimization model is not personalized"),
    ],
)
def test_decisions_and_entities_must_reference_what_exists(data, mutate, match):
    mutate(data)
    refused(data, match)


def test_a_dataset_without_the_proposition_interactions_layout(tmp_path, sample):
    check_dataset_layout(Dataset(name="events", path=str(sample / "events")))
    (tmp_path / "2026-11-01").mkdir()
    (tmp_path / "2026-11-01" / "orders.jsonl").write_text('{"order_id": 1, "timestamp": "2026-11-01T00:00:00Z"}\n')
    with pytest.raises(
        CatalogError,
        match=r"datasets\[orders\]: .*orders.jsonl does not have the proposition-interactions "
        r"layout \(missing _id, eventType, _experience.decisioning.propositions\)",
    ):
        check_dataset_layout(Dataset(name="orders", path=str(tmp_path)))
    assert "no event files under" in check_dataset_layout(Dataset(name="empty", path=str(tmp_path / "nothing")))


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(CatalogError, match="no such catalog file"):
        load_catalog(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(CatalogError, match="a catalog is a mapping"):
        load_catalog(tmp_path / "list.yaml")


@pytest.mark.parametrize("name", ["channel", "hour", "device"])
def test_a_profile_attribute_named_like_a_request_context_key_is_refused(data, name):
    # issue #54, item 5: the model would train on the profile's value and be served the request's
    model = next(m for m in data["ai_models"] if m["type"] == "personalized")
    model["attributes"] = ["person.ageBand", name]
    refused(
        data,
        rf"ai_models\[personalized-mobile\]: Value error, profile attribute '{name}' is named like a request-context "
        r"key \(channel, device, hour\): the model would learn the profile's value and be served the request's",
    )
    model["attributes"] = ["person.ageBand", f"person.{name}"]  # a path is a profile attribute
    model["context"] = [name]
    build_catalog(data, "catalog.yaml")


def test_hostile_catalog_files_are_one_line_errors_naming_the_file(tmp_path):
    for path, problem in hostile_files(tmp_path):
        with pytest.raises(CatalogError, match=problem) as refusal:
            load_catalog(path)
        message = str(refusal.value)
        assert message.startswith(f"{path}: ") and "\n" not in message and "set_int_max_str_digits" not in message


def test_catalog_validate_refuses_a_hostile_file_with_exit_2_and_one_line(tmp_path, capsys):
    from offerrank.cli.main import main

    (tmp_path / "files").mkdir()
    for path, problem in hostile_files(tmp_path / "files"):
        for command in (
            ["catalog", "validate", "-f", str(path)],
            ["apply", "-f", str(path)],
            ["evaluate", "--model", "auto-web", "--catalog", str(path)],
        ):
            assert main(["--home", str(tmp_path / "home"), *command]) == 2
            captured = capsys.readouterr()
            assert captured.err.count("\n") == 1 and str(path) in captured.err, captured.err
            assert re.search(problem, captured.err) and "Traceback" not in captured.err


def test_cold_start_thresholds_are_one_truth_shown_as_used(data):
    # issue #54 (7): a per-segment personalized model leaves cold start by `cold_start` (100 / 5) while `models show`
    # printed `personalization` (250 / 25) too, which only a contextual model's training uses
    model = next(m for m in data["ai_models"] if m["type"] == "personalized" and not m.get("attributes"))
    model.pop("context", None)
    per_segment = build_catalog(data, "catalog.yaml").get("ai_models", model["name"])
    assert not per_segment.contextual and "personalization" not in per_segment.settings_in_use()
    assert per_segment.settings_in_use()["cold_start"] == {"min_impressions": 100, "min_conversions": 5}
    model["personalization"] = {"min_impressions": 500, "min_conversions": 25}
    refused(data, r"`personalization` sets the thresholds of a contextual model's training .* by `cold_start`")
    model["attributes"] = ["person.ageBand"]
    contextual = build_catalog(data, "catalog.yaml").get("ai_models", model["name"])
    assert contextual.settings_in_use()["personalization"]["min_impressions"] == 500


@pytest.mark.parametrize(
    ("first", "second", "how"),
    [
        ("s3a://brand-events/web/", "s3://brand-events/web", "is"),
        ("s3a://brand-events/web", "s3://Brand-Events/mobile/../web//", "is"),
        ("s3://brand-events/web", "s3a://brand-events/web/partner", "is inside"),
        ("abfss://c@acct.dfs.core.windows.net/events", "abfs://c@acct.dfs.core.windows.net/", "holds"),
        ("/srv/landing/web", "/srv/landing/web/", "is"),
        ("/srv/landing/web", "/srv/landing/mobile/../web/partner", "is inside"),
        ("/srv/landing/web", "file:///srv/landing", "holds"),
    ],
)
def test_two_datasets_on_one_landing_root_however_spelled_are_refused(data, first, second, how):
    # issue #54, item 8: a model naming both datasets counted every event twice
    data["datasets"] = [{"name": "web", "path": first}, {"name": "partner", "path": second}]
    refused(data, rf"datasets\[partner\].path: .* {how} the landing root of dataset 'web' .*: its events would count")


def test_a_relative_landing_root_is_the_same_as_its_absolute_path(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data["datasets"] = [
        {"name": "events", "path": "landing/web"},
        {"name": "partner", "path": str(tmp_path / "landing")},
    ]
    refused(data, r"datasets\[partner\].path: .* holds the landing root of dataset 'events'")
    data["datasets"][1]["path"] = str(tmp_path / "landing" / "partner")  # side by side: fine
    build_catalog(data, "catalog.yaml")
