"""Training contextual models in the aggregate step: one model's failure is its own (Spark on inline rows)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import yaml

from offerrank.catalog import Personalization, build_catalog
from offerrank.engines.delta_rs import table_rows
from offerrank.engines.delta_spark import Warehouse
from offerrank.jobs.contextual import train_contextual_models
from offerrank.jobs.rank import failed_trainings, latest_parameters
from offerrank.settings import load_settings
from offerrank.sim.generator import generate
from offerrank.tables import FEATURE_STATS_DAILY, MODEL_TRAININGS

DAY = date(2026, 11, 10)


def catalog_with_two_contextual_models(tmp_path):
    """The sample catalog, its home-hero ranked by ctx-good and its newsletter-top by ctx-bad."""
    generate(tmp_path / "sample", DAY, days=1, seed=5, events_per_day=200)
    data = yaml.safe_load((tmp_path / "sample" / "catalog.yaml").read_text())
    for name in ("ctx-good", "ctx-bad"):
        data["ai_models"].append(
            {
                "name": name,
                "type": "personalized",
                "datasets": ["events"],
                "attributes": ["homeAddress.countryCode"],
                "context": ["device"],
                "personalization": {"min_impressions": 100, "min_conversions": 5},
                "status": "active",
            }
        )
    ranked_by = {"home-hero": "ai_model:ctx-good", "newsletter-top": "ai_model:ctx-bad"}
    for decision in data["decisions"]:
        for placement in decision["placements"]:
            placement["ranking"] = ranked_by.get(placement["placement"], placement["ranking"])
    return build_catalog(data, "catalog.yaml")


def cells(model: str, placement: str, channel: str, day: date) -> pd.DataFrame:
    rows = [
        (day, model, placement, channel, "offer-001", [f"homeAddress.countryCode={country}", f"device={device}"])
        for country in ("DE", "FR")
        for device in ("mobile", "desktop")
    ]
    frame = pd.DataFrame(rows, columns=FEATURE_STATS_DAILY.column_names[:6])
    return frame.assign(impressions=1000, conversions=[20, 40, 60, 80])


def test_a_model_that_fails_to_train_keeps_its_last_parameters_and_the_others_train(spark, tmp_path):
    settings = load_settings(home=tmp_path, spark_shuffle_partitions=1)
    warehouse = Warehouse(spark, settings)
    catalog = catalog_with_two_contextual_models(tmp_path)
    good, bad = catalog.get("ai_models", "ctx-good"), catalog.get("ai_models", "ctx-bad")
    before = DAY - timedelta(days=1)
    stats = pd.concat(
        [
            cells(name, placement, channel, day)
            for day in (before, DAY)
            for name, placement, channel in (("ctx-good", "home-hero", "web"), ("ctx-bad", "newsletter-top", "email"))
        ]
    )
    warehouse.replace_range(warehouse.frame(stats, FEATURE_STATS_DAILY), FEATURE_STATS_DAILY, before, DAY)
    assert train_contextual_models(warehouse, [good, bad], before) == (["ctx-good", "ctx-bad"], [], {})

    # a prior sd stored before the bound: ctx-bad's training fails on DAY, ctx-good's does not
    broken = bad.model_copy(update={"personalization": Personalization.model_construct(prior_sd=1e-200)})
    trained, waiting, failed = train_contextual_models(warehouse, [good, broken], DAY)
    assert (trained, waiting, list(failed)) == (["ctx-good"], [], ["ctx-bad"])
    assert failed["ctx-bad"].startswith("TrainingFailed: offer offer-001 on newsletter-top (email): non-finite")
    assert set(latest_parameters(settings, "ctx-good", DAY)["as_of_date"]) == {DAY}
    assert set(latest_parameters(settings, "ctx-bad", DAY)["as_of_date"]) == {before}  # its last parameters
    records = {row["model_name"]: row for row in table_rows(settings, MODEL_TRAININGS, {"as_of_date": DAY})}
    assert (records["ctx-good"]["status"], records["ctx-good"]["offers"]) == ("trained", 1)
    assert (records["ctx-bad"]["status"], records["ctx-bad"]["reason"]) == ("failed", failed["ctx-bad"])
    # what rank and publish hold back: ctx-bad's placements keep their last good lists, and say why
    assert failed_trainings(settings, catalog, DAY) == {
        "ai_model:ctx-bad": f"AI model ctx-bad failed to train on {DAY} and keeps its last parameters: "
        + failed["ctx-bad"]
    }
    assert failed_trainings(settings, catalog, before) == {}
