"""Two event datasets through the nightly chain: each model learns only from the datasets it names, and a dataset
that fails validation holds back only the models that learn from it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml
from deltalake import DeltaTable

from offerrank.catalog import build_catalog as build_catalog_of
from offerrank.catalog import load_catalog
from offerrank.catalog.registry import Registry
from offerrank.chain.nightly import run_day
from offerrank.cli import main as cli
from offerrank.settings import load_settings
from offerrank.sim.event_lines import event_json, proposition_json

DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)
AT = datetime(2026, 11, 24, 6, tzinfo=UTC)  # when the runs stage and publish
PARTNER_IMPRESSIONS = 2_400
TARGET_RATE, OTHER_RATE = 0.4, 0.01


def partner_events(offers: list[str], target: str, day: date) -> list[str]:
    """A partner brand's day on `home-hero`: every offer shown as often, at random; `target` converts at 40%, the
    others at 1%."""
    lines = []
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8)
    for n in range(PARTNER_IMPRESSIONS):
        offer = offers[n % len(offers)]
        shown = n // len(offers)  # how often this offer was shown before
        items = [(offer, offer, "random", 1 / len(offers))]
        proposition = proposition_json(f"partner-{day}-{n}", "home-hero", "dp-partner", items)
        ts, profile = start + timedelta(seconds=n), f"partner-profile-{n % 300}"
        lines.append(event_json(f"partner-{day}-display-{n}", ts, "display", profile, "web", proposition))
        rate = TARGET_RATE if offer == target else OTHER_RATE
        if int((shown + 1) * rate) > int(shown * rate):  # exactly `rate` of its impressions, spread evenly
            click = event_json(
                f"partner-{day}-click-{n}", ts + timedelta(seconds=30), "interact", profile, "web", proposition
            )
            lines.append(click)
    return lines


def write_day(root, day: date, lines: list[str]) -> None:
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """The generator's sample as dataset `web` (its models learn from it), a `partner` dataset of the same
    placement, and a model and decision that learn from `partner` only; day 1 run through the nightly chain."""
    from offerrank.sim.generator import generate

    home = tmp_path_factory.mktemp("datasets")
    generate(home / "sample", DAY1, days=2, events_per_day=3_000, profiles=2_000)
    data = yaml.safe_load((home / "sample" / "catalog.yaml").read_text())
    hero = next(p for d in data["decisions"] for p in d["placements"] if p["placement"] == "home-hero")
    offers = hero["eligible_offers"]
    target = offers[-1]
    write_day(home / "sample" / "partner", DAY1, partner_events(offers, target, DAY1))
    data["datasets"] = [{"name": "web", "path": "events"}, {"name": "partner", "path": "partner"}]
    for model in data["ai_models"]:
        model["datasets"] = ["web"]
    data["ai_models"].append(
        {
            "name": "auto-partner",
            "type": "auto_optimization",
            "datasets": ["partner"],
            "cold_start": {"min_impressions": 50, "min_conversions": 1},
            "status": "active",
        }
    )
    data["decisions"].append(
        {
            "id": "dp-partner",
            "name": "Partner home",
            "placements": [
                {**hero, "ranking": "ai_model:auto-partner", "fallback_offer": offers[0]},
            ],
        }
    )
    (home / "sample" / "catalog.yaml").write_text(yaml.safe_dump(data))
    settings = load_settings(home=home)
    Registry(settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 10, 31, tzinfo=UTC))
    report = run_day(spark, settings, DAY1, clock=lambda: AT, echo=lambda _: None)
    assert report.success, report.summary()
    return settings, offers, target


def rows(settings, table: str) -> pd.DataFrame:
    return DeltaTable(settings.table_path(table)).to_pandas()


def test_each_model_learns_only_from_the_datasets_it_names(world):
    settings, offers, target = world
    interactions = rows(settings, "interactions")
    shown = interactions[(interactions["interaction"] == "impression") & (interactions["placement_id"] == "home-hero")]
    assert shown.groupby("dataset").size()["partner"] == PARTNER_IMPRESSIONS

    rates = rows(settings, "offer_conversion_rates")
    hero = rates[(rates["placement_id"] == "home-hero") & (rates["segment"] == "*")].set_index(
        ["model_name", "offer_id"]
    )
    assert hero.loc["auto-partner", "impressions"].sum() == PARTNER_IMPRESSIONS
    web_shown = shown[(shown["dataset"] == "web") & (shown["event_date"] == DAY1)]
    assert hero.loc["auto-web", "impressions"].sum() == len(web_shown)
    assert hero.loc[("auto-partner", target), "conversion_rate"] == pytest.approx(TARGET_RATE, abs=0.01)
    assert hero.loc[("auto-web", target), "conversion_rate"] < 0.2  # the web's own rate of that offer

    ranking = rows(settings, "offer_rankings")
    first = ranking[(ranking["rank"] == 1) & (ranking["placement_id"] == "home-hero")].set_index("decision_id")
    assert first.loc["dp-partner", "offer_id"] == target  # as the partner's data says
    web_scores = ranking[(ranking["decision_id"] == "dp-web-home") & (ranking["placement_id"] == "home-hero")]
    assert web_scores.set_index("offer_id").loc[target, "score"] < 0.2


def test_a_dataset_failing_validation_holds_back_only_the_models_that_learn_from_it(spark, world, capsys):
    settings, offers, target = world
    partner = settings.home / "sample" / "partner"
    good = partner_events(offers, target, DAY2)[:100]
    write_day(partner, DAY2, good + ["{not json"] * 50)  # a third quarantined: the day fails validation

    report = run_day(spark, settings, DAY2, clock=lambda: AT, echo=lambda _: None)
    assert report.success, report.summary()
    dq = rows(settings, "dq_results").set_index(["run_date", "dataset"])
    assert dq.loc[(DAY2, "web"), "success"] and not dq.loc[(DAY2, "partner"), "success"]
    interactions = rows(settings, "interactions")
    assert interactions[(interactions["landing_date"] == DAY2)]["dataset"].unique().tolist() == ["web"]

    (run,) = [r for r in rows(settings, "ranking_runs").itertuples() if r.run_date == DAY2]
    assert run.status == "published"
    assert run.reason.startswith(
        "kept the last good lists of ai_model:auto-partner (its model's dataset did not pass validation of "
        "2026-11-02 (partner: 33.33% of records quarantined"
    )
    ranking = rows(settings, "offer_rankings")
    as_of = ranking.groupby("decision_id")["as_of_date"].max()
    assert as_of["dp-partner"] == DAY1 and as_of["dp-web-home"] == DAY2

    # one dataset on its own from the command line; an unknown one is refused with the known ones
    assert cli(["--home", str(settings.home), "ingest", "--date", "2026-11-02", "--dataset", "web"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ingest web 2026-11-02: ") and "ingest partner" not in out
    assert cli(["--home", str(settings.home), "ingest", "--date", "2026-11-02", "--dataset", "shop"]) == 2
    assert "no event dataset 'shop' in the registry's catalog (known: partner, web)" in capsys.readouterr().err


def test_a_warehouse_from_before_datasets_is_refused_until_upgraded_then_keeps_its_rows(spark, tmp_path, capsys):
    from offerrank.jobs import ingest
    from offerrank.sim.generator import build_catalog, build_offers
    from offerrank.tables import WarehouseOutdated

    settings = load_settings(home=tmp_path)
    data = build_catalog(build_offers(np.random.default_rng(7)), DAY1, 1)
    data["datasets"][0]["path"] = str(tmp_path / "events")
    Registry(settings).commit(build_catalog_of(data, "test"), datetime(2026, 10, 31, tzinfo=UTC), check_datasets=False)
    legacy = spark.createDataFrame(
        [(DAY1, "e1", "o1"), (DAY1, "e2", "o2")], "landing_date date, event_id string, offer_id string"
    )
    legacy.write.format("delta").partitionBy("landing_date").save(settings.table_path("interactions"))

    with pytest.raises(
        WarehouseOutdated, match="interactions predate event datasets .* `offerrank upgrade --dataset NAME`"
    ):
        ingest.run(spark, settings, DAY1)
    assert cli(["--home", str(tmp_path), "upgrade", "--dataset", "events"]) == 0
    assert "interactions: 2 rows without a dataset now in events" in capsys.readouterr().out
    assert rows(settings, "interactions")["dataset"].tolist() == ["events", "events"]
    assert cli(["--home", str(tmp_path), "upgrade", "--dataset", "shop"]) == 2
