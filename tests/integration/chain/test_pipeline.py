"""The nightly chain end to end on generated data: publish, cold start, reruns, the publish gate, readers, rollback."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from offerrank.catalog import load_catalog
from offerrank.catalog.registry import Registry
from offerrank.chain.nightly import STEPS, run_day
from offerrank.jobs.publish import Publisher, PublishRefused, rank_and_publish
from offerrank.serving.lookup import RankingLookup
from offerrank.settings import load_settings
from offerrank.sim.generator import SEGMENTS, generate
from tests.factories import DATA, warehouse_copy

START = date(2026, 11, 1)
DAYS = [START + timedelta(days=i) for i in range(3)]
AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("pipeline-home")
    generate(home / "sample", START, days=3, seed=21, events_per_day=6_000)
    catalog_file = home / "sample" / "catalog.yaml"
    data = yaml.safe_load(catalog_file.read_text())
    data["offers"].append({**data["offers"][0], "id": "offer-new", "name": "Brand new", "placements": ["home-hero"]})
    hero = next(p for d in data["decisions"] for p in d["placements"] if p["placement"] == "home-hero")
    hero["eligible_offers"].append("offer-new")
    catalog_file.write_text(yaml.safe_dump(data))
    settings = load_settings(home=home)
    Registry(settings).commit(load_catalog(catalog_file), AT)
    reports = [run_day(spark, settings, day, clock=lambda: AT, echo=lambda _: None) for day in DAYS]
    return settings, reports


def rankings(spark, settings, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(settings.table_path("offer_rankings"))


def table_version(spark, settings, name="offer_rankings"):
    return DeltaTable.forPath(spark, settings.table_path(name)).history(1).first().version


def test_every_day_publishes_a_complete_ranking(spark, world):
    settings, reports = world
    assert [r.success for r in reports] == [True, True, True]
    assert [name for name, _, _ in reports[-1].steps] == list(STEPS)
    current = rankings(spark, settings).toPandas()
    assert set(current["ranking_version"]) == {3} and set(current["as_of_date"]) == {DAYS[-1]}
    assert current.groupby(["decision_id", "placement_id"]).ngroups == 7
    assert set(current["reason"]) >= {"model", "priority", "formula"}
    for _, group in current.groupby(["decision_id", "placement_id", "segment"]):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1))
    ai = current[current["reason"].isin(["model", "cold_start"])]
    assert ai.groupby(["decision_id", "placement_id", "segment"])["traffic_share"].sum().round(6).eq(1.0).all()
    personalized = current[current["model_name"] == "personalized-mobile"]
    assert set(personalized["segment"]) == {"*", *SEGMENTS} and set(
        current[current["model_name"] != "personalized-mobile"]["segment"]
    ) == {"*"}


def test_channel_lookups_serve_the_published_ranking_of_the_profiles_segment(spark, world):
    settings, _ = world
    current = rankings(spark, settings).toPandas().sort_values("rank")
    members = (
        spark.read.format("delta")
        .load(settings.table_path("profile_segments"))
        .groupBy("segment")
        .agg(F.min("profile_id").alias("profile_id"))
        .toPandas()
        .set_index("segment")["profile_id"]
        .to_dict()
    )
    lookup = RankingLookup(settings)
    for (decision, placement, channel, segment), group in current.groupby(
        ["decision_id", "placement_id", "channel", "segment"]
    ):
        profile = None if segment == "*" else members[segment]
        answer = lookup.top(placement, channel, profile_id=profile, decision_id=decision, limit=100, mode="published")
        assert (answer.ranking_version, answer.segment) == (3, segment)
        assert [(o.offer_id, o.reason) for o in answer.offers] == list(zip(group["offer_id"], group["reason"]))
    assert lookup.top("push-evening", "push", profile_id="not-a-known-profile").segment == "*"


def test_a_new_offer_without_data_is_published_in_cold_start(spark, world):
    settings, _ = world
    ranked = rankings(spark, settings).filter(F.col("placement_id") == "home-hero").toPandas()
    new = ranked[ranked["offer_id"] == "offer-new"].iloc[0]
    others = ranked[ranked["offer_id"] != "offer-new"]
    assert (new.reason, new.impressions) == ("cold_start", 0)
    assert new.traffic_share > 0
    # its prior is its list's pooled rate worth OFFERRANK_PRIOR_IMPRESSIONS impressions, not Beta(1, 1) (mean 0.5):
    # it is published about where the list's offers convert, not first
    assert new.alpha + new.beta == pytest.approx(settings.prior_impressions)
    pooled = others["conversions"].sum() / others["impressions"].sum()
    assert new.score == pytest.approx(new.alpha / (new.alpha + new.beta)) == pytest.approx(pooled, abs=0.005)
    assert new["rank"] > 1


def test_rates_and_facts_come_from_the_days_data(spark, world):
    settings, _ = world
    rates = (
        spark.read.format("delta")
        .load(settings.table_path("offer_conversion_rates"))
        .filter(F.col("as_of_date") == DAYS[-1])
    )
    assert set(r.model_name for r in rates.select("model_name").distinct().collect()) == {
        "auto-web",
        "auto-email",
        "personalized-mobile",
    }
    facts = spark.read.format("delta").load(settings.table_path("offer_stats_daily"))
    assert {r.event_date for r in facts.select("event_date").distinct().collect()} == set(DAYS)
    interactions = spark.read.format("delta").load(settings.table_path("interactions"))
    assert (
        facts.filter("segment = '*'").agg(F.sum("impressions")).first()[0]
        == interactions.filter("interaction = 'impression'").count()
    )
    by_segment = {
        r.segment: r.impressions
        for r in facts.filter("placement_id = 'push-evening'")
        .groupBy("segment")
        .agg(F.sum("impressions").alias("impressions"))
        .collect()
    }
    assert set(by_segment) == {"*", *SEGMENTS} and sum(by_segment[s] for s in SEGMENTS) == by_segment["*"]


def test_rerunning_the_last_date_changes_nothing(spark, world):
    settings, _ = world
    before_version = table_version(spark, settings)
    before = {
        name: sorted(map(tuple, spark.read.format("delta").load(settings.table_path(name)).collect()), key=repr)
        for name in (
            "offer_stats_daily",
            "offer_conversion_rates",
            "offer_rankings",
            "model_report_daily",
            "model_report",
            "model_report_offers",
        )
    }
    report = run_day(spark, settings, DAYS[-1], clock=lambda: AT, echo=lambda _: None)
    assert "ranking unchanged: version 3" in {name: outcome for name, _, outcome in report.steps}["publish"]
    assert table_version(spark, settings) == before_version
    for name, rows in before.items():
        assert (
            sorted(map(tuple, spark.read.format("delta").load(settings.table_path(name)).collect()), key=repr) == rows
        ), name


def test_a_dry_run_ranks_and_gates_but_publishes_and_records_nothing(spark, world):
    settings, _ = world
    before_version = table_version(spark, settings)
    runs_before = table_version(spark, settings, "ranking_runs")
    catalog = Registry(settings).catalog()
    result = rank_and_publish(settings, catalog, DAYS[-1], run_id="dry", at=AT, dry_run=True)
    assert result.status == "dry_run" and result.ranking_version is None and result.placements == 7
    assert table_version(spark, settings) == before_version
    assert table_version(spark, settings, "ranking_runs") == runs_before


def test_failed_validation_leaves_the_last_good_ranking(spark, world, tmp_path):
    settings = warehouse_copy(world[0], tmp_path)
    before_version = table_version(spark, settings)
    strict = settings.model_copy(update={"max_quarantine_share": -1.0})  # every day now fails validation
    report = run_day(spark, strict, DAYS[-1], clock=lambda: AT, echo=lambda _: None)
    assert not report.success and [name for name, _, _ in report.steps] == ["ingest", "validate"]
    assert report.steps[-1][2].startswith("stopped: validation of 2026-11-03 did not pass (")
    with pytest.raises(PublishRefused, match="validation of 2026-11-03 did not pass"):  # `offerrank rank` too
        rank_and_publish(settings, Registry(settings).catalog(), DAYS[-1], at=AT)
    assert table_version(spark, settings) == before_version
    refused = (
        spark.read.format("delta")
        .load(settings.table_path("ranking_runs"))
        .filter((F.col("status") == "refused") & (F.col("run_date") == DAYS[-1]))
        .collect()
    )
    # one row for the chain's gate, one for the refused publish
    assert [(r.run_date, r.ranking_version) for r in refused] == [(DAYS[-1], None)] * 2
    assert {r.reason for r in refused} == {report.steps[-1][2].removeprefix("stopped: ").split("; channels")[0]}


def test_an_older_ranking_never_replaces_the_served_one(spark, world):
    """A backfill, an old run cleared in Airflow or `offerrank run --date <earlier>` ranks an earlier date: its
    publish is refused and recorded; channels keep the newer ranking."""
    settings, _ = world
    before_version = table_version(spark, settings)
    with pytest.raises(PublishRefused, match=f"the ranking of {DAYS[0]} is older than the one served"):
        rank_and_publish(settings, Registry(settings).catalog(), DAYS[0], at=AT)
    assert table_version(spark, settings) == before_version
    assert {row.as_of_date for row in rankings(spark, settings).select("as_of_date").distinct().collect()} == {DAYS[-1]}
    runs = spark.read.format("delta").load(settings.table_path("ranking_runs"))
    (refused,) = runs.filter((F.col("run_date") == DAYS[0]) & (F.col("status") == "refused")).collect()
    assert "offerrank rankings rollback" in refused.reason and refused.ranking_version is None


def test_readers_see_one_complete_version_while_publishing(spark, world):
    settings, _ = world
    sizes = {
        row.ranking_version: row["count"]
        for v in range(table_version(spark, settings) + 1)
        for row in rankings(spark, settings, v).groupBy("ranking_version").count().collect()
    }
    seen, stop = [], threading.Event()

    def read_continuously():  # at least one read, even if the (JVM-free, fast) rollback is already done
        while True:
            seen.append(
                {
                    r.ranking_version: r["count"]
                    for r in rankings(spark, settings).groupBy("ranking_version").count().collect()
                }
            )
            if stop.is_set():
                break

    reader = threading.Thread(target=read_continuously)
    reader.start()
    publisher = Publisher(settings)
    try:
        result = publisher.rollback(1, "rollback-test", AT)
    finally:
        stop.set()
        reader.join()
    assert result.status == "rolled_back"
    rolled_back = set(rankings(spark, settings).toPandas()["ranking_version"])
    publisher.rollback(3, "rollback-test-undo", AT)  # the latest ranking again, for the tests that follow
    assert rolled_back == {1}
    assert seen and all(len(snapshot) == 1 for snapshot in seen)
    assert all(count == sizes[version] for snapshot in seen for version, count in snapshot.items())


def test_the_published_ranking_equals_the_stored_one(spark, world):
    """`tests/data/pipeline_ranking_v4.csv` was published by this world's data (v4: since the generator serves model
    traffic from a known better policy than random): the same inputs must give the same ranked lists, scores, shares
    and posteriors."""
    import pandas as pd

    stored = pd.read_csv(DATA / "pipeline_ranking_v4.csv", parse_dates=["as_of_date"])
    settings, _ = world
    runs = spark.read.format("delta").load(settings.table_path("ranking_runs"))
    (published,) = runs.filter((F.col("ranking_version") == 3) & (F.col("status") == "published")).collect()
    current = rankings(spark, settings, published.rankings_table_version).toPandas()[list(stored.columns)]
    current = current.sort_values(["decision_id", "placement_id", "channel", "segment", "rank"]).reset_index(drop=True)
    current["as_of_date"] = pd.to_datetime(current["as_of_date"])
    pd.testing.assert_frame_equal(current, stored, check_dtype=False, rtol=1e-9)


def test_a_failing_formula_keeps_its_placements_last_lists_and_the_others_publish(spark, world):
    """One bad formula used to fail every ranking task and publish nothing; now only its placements keep their
    last good lists, and `ranking_runs` says which and why. (Applying such a formula is refused: see test_catalog;
    the catalog is changed in memory here, as whatever slips through would be.)"""
    settings, _ = world
    good = Registry(settings).catalog()
    served = rankings(spark, settings).toPandas()
    failing = good.formulas[0].model_copy(update={"expression": "priority / (priority - priority)"})
    # offer-017 first by priority: the priority placement's list changes, so there is something new to publish
    offers = tuple(o.model_copy(update={"priority": 1000}) if o.id == "offer-017" else o for o in good.offers)
    broken = good.model_copy(update={"formulas": (failing,), "offers": offers})
    try:
        result = rank_and_publish(settings, broken, DAYS[-1], run_id="bad-formula", at=AT)
        now = rankings(spark, settings).toPandas()
    finally:
        Publisher(settings).rollback(3, "rollback-bad-formula", AT)  # the ranking before, for the tests that follow
    assert result.status == "published"
    assert result.kept == [
        "formula:margin-boost (failed: formula 'margin-boost' fails for offer offer-001: division by zero)"
    ]
    columns = ["decision_id", "placement_id", "offer_id", "rank", "as_of_date", "run_id"]
    checkout = lambda frame: frame[frame["model_name"] == "margin-boost"][columns].reset_index(drop=True)  # noqa: E731
    assert checkout(now).equals(checkout(served)) and not checkout(now).empty
    sidebar = now[now["placement_id"] == "product-sidebar"].sort_values("rank")
    assert sidebar["offer_id"].iloc[0] == "offer-017" and set(sidebar["run_id"]) == {"bad-formula"}
    runs = spark.read.format("delta").load(settings.table_path("ranking_runs"))
    (row,) = runs.filter(F.col("run_id") == "bad-formula").collect()
    assert row.status == "published" and row.reason == f"kept the last good lists of {result.kept[0]}"


def true_lifts(settings, catalog) -> dict[tuple[str, str], float]:
    """(model, segment) -> the true lift of model over random traffic: from the generator's expected conversion
    rate of each policy, weighted by the items each traffic type showed in the model's placements and segments."""
    import pandas as pd

    truth = pd.read_csv(settings.home / "sample" / "ground_truth_traffic.csv")
    lifts = {}
    for model in catalog.ai_models:
        placements = {placement for placement, _ in catalog.placements_of(model)}
        for segment in model.ranked_segments:
            rows = truth[truth["placement_id"].isin(placements) & ((truth["segment"] == segment) | (segment == "*"))]
            rate = {
                traffic: (group["expected_conversion_rate"] * group["items_shown"]).sum() / group["items_shown"].sum()
                for traffic, group in rows.groupby("traffic_type")
            }
            lifts[model.name, segment] = rate["model"] / rate["random"] - 1
    return lifts


def test_the_model_reports_lift_interval_contains_the_true_lift(spark, world):
    """The generator serves model traffic from a known better policy than random: each model's report (and each
    segment of the personalized one) must find a lift whose 95% interval contains the true one."""
    settings, reports = world
    assert [name for name, _, _ in reports[-1].steps][-1] == "report"
    truth = true_lifts(settings, Registry(settings).catalog())
    rows = (
        spark.read.format("delta")
        .load(settings.table_path("model_report"))
        .filter(F.col("window_end") == DAYS[-1])
        .collect()
    )
    assert {(r.model_name, r.segment) for r in rows} == set(truth)
    for row in rows:
        assert row.window_start == DAYS[-1] - timedelta(days=13)
        assert row.random_impressions > 0 and row.model_impressions > 5 * row.random_impressions
        if row.lift_low is not None:
            assert row.lift_low <= truth[row.model_name, row.segment] <= row.lift_high, row
    measured = [r for r in rows if r.lift_low is not None]
    assert len(measured) >= 2
    for row in measured:  # the verdict follows the interval
        assert row.verdict.startswith("model beats random by") == (row.lift_low > 0 and row.p_value < 0.05), row
    assert any(r.verdict.startswith("not enough data to tell: needs about") for r in rows)  # 6,000 events a day


def test_the_report_page_and_json_show_the_numbers_of_the_report_tables(spark, world):
    import json

    import pandas as pd

    settings, _ = world
    figures = json.loads(open(f"{settings.reports_dir}/auto-web/{DAYS[-1]}.json", encoding="utf-8").read())
    (row,) = (
        spark.read.format("delta")
        .load(settings.table_path("model_report"))
        .filter((F.col("window_end") == DAYS[-1]) & (F.col("model_name") == "auto-web"))
        .collect()
    )
    (summary,) = figures["summary"]
    for column in ("model_impressions", "random_conversions", "lift", "lift_low", "p_value", "gini"):
        assert summary[column] == pytest.approx(row[column], rel=1e-9), column
    assert summary["verdict"] == row.verdict
    page = open(f"{settings.reports_dir}/auto-web/{DAYS[-1]}.html", encoding="utf-8").read()
    assert row.verdict in page and f"{row.model_impressions:,}" in page
    offers = (
        spark.read.format("delta")
        .load(settings.table_path("model_report_offers"))
        .filter((F.col("window_end") == DAYS[-1]) & (F.col("model_name") == "auto-web"))
        .toPandas()
    )
    assert sorted(o["offer_id"] for o in figures["offers"]) == sorted(offers["offer_id"])
    daily = spark.read.format("delta").load(settings.table_path("model_report_daily"))
    # every event date of the run, rewritten while late clicks could still change it; traffic types as logged
    assert {r.report_date for r in daily.select("report_date").distinct().collect()} == set(DAYS)
    assert {r.traffic_type for r in daily.select("traffic_type").distinct().collect()} == {"model", "random"}
    evaluations = stored_evaluations(spark, settings)
    assert set(evaluations["source"]) == {"nightly"} and len(figures["evaluations"]) == len(evaluations) > 0
    shown = {(e["placement_id"], e["segment"], e["policy"], e["slot"]): e["dr"] for e in figures["evaluations"]}
    for row in evaluations.itertuples():
        key = (row.placement_id, row.segment, row.policy, None if pd.isna(row.slot) else row.slot)
        assert shown[key] is None if pd.isna(row.dr) else shown[key] == pytest.approx(row.dr), key
    assert "Other policies on this traffic" in page and "ai_model:auto-web/published" in page


def stored_evaluations(spark, settings):
    """The `policy_evaluations` rows of auto-web's window ending on the world's last day."""
    return (
        spark.read.format("delta")
        .load(settings.table_path("policy_evaluations"))
        .filter((F.col("window_end") == DAYS[-1]) & (F.col("model_name") == "auto-web"))
        .toPandas()
    )


def test_evaluate_prints_by_default_and_stores_beside_the_nightly_rows_under_its_source(spark, world, tmp_path, capsys):
    """`offerrank evaluate` used to replace the nightly report's rows of the model and window, and stored a draft
    catalog's estimates as the live model's: it stores only with --write, under its source (ad_hoc, draft), and
    replaces only its own rows of the policies it evaluated."""
    from offerrank.cli.main import main

    settings = warehouse_copy(world[0], tmp_path)
    nightly = stored_evaluations(spark, settings)
    assert set(nightly["source"]) == {"nightly"} and len(nightly) > 0
    evaluate = ["--home", str(tmp_path), "evaluate", "--model", "auto-web", "--from", str(DAYS[0])]
    assert main([*evaluate, "--policy", "random"]) == 0
    assert "(not stored: --write stores them)" in capsys.readouterr().out
    assert len(stored_evaluations(spark, settings)) == len(nightly)

    assert main([*evaluate, "--write"]) == 0
    assert main([*evaluate, "--write", "--policy", "random"]) == 0  # replaces its own random rows only
    draft = ["--catalog", str(world[0].home / "sample" / "catalog.yaml"), "--policy", "priority"]
    assert main([*evaluate, "--write", *draft]) == 0
    assert "stored in policy_evaluations as draft" in capsys.readouterr().out
    stored = stored_evaluations(spark, settings)
    by_source = {source: rows for source, rows in stored.groupby("source")}
    assert set(by_source) == {"nightly", "ad_hoc", "draft"}
    key = ["policy", "placement_id", "segment", "slot"]
    survived = by_source["nightly"].sort_values(key, na_position="first").reset_index(drop=True)
    assert survived[nightly.columns].equals(nightly.sort_values(key, na_position="first").reset_index(drop=True))
    assert set(by_source["ad_hoc"]["policy"]) == {
        "ai_model:auto-web",
        "ai_model:auto-web/published",
        "priority",
        "random",
    }
    assert not by_source["ad_hoc"].duplicated(key).any() and set(by_source["ad_hoc"]["window_start"]) == {DAYS[0]}
    assert set(by_source["draft"]["policy"]) == {"priority"}


def true_random_rate(settings, placement_id) -> float:
    """The expected conversion rate of uniformly random serving on a placement (all segments): from the
    generator's truth, its random traffic's expected rate per segment, weighted by the segment's items."""
    import pandas as pd

    truth = pd.read_csv(settings.home / "sample" / "ground_truth_traffic.csv")
    rows = truth[truth["placement_id"] == placement_id]
    items = rows.groupby("segment")["items_shown"].sum()
    random = rows[rows["traffic_type"] == "random"].set_index("segment")["expected_conversion_rate"]
    return float((random * items).sum() / items.sum())


def test_off_policy_estimates_contain_the_true_rate_and_refuse_without_support(spark, world):
    """Uniformly random serving, estimated from all logged traffic (mostly the model's), must contain the true rate
    the generator knows; on home-hero, where the brand-new offer was never shown, a policy that would show it is
    refused and the refusal names it."""
    import pandas as pd

    from offerrank.jobs.evaluate import run as run_evaluation

    settings, _ = world
    catalog = Registry(settings).catalog()
    rows = run_evaluation(settings, catalog, "auto-web", DAYS[0], DAYS[-1])
    pooled = rows[rows["slot"].isna()].set_index(["placement_id", "policy"])
    app = pooled.loc["app-home-card", "random"]
    truth = true_random_rate(settings, "app-home-card")
    assert pd.isna(app.refused)
    assert app.snipw_low <= truth <= app.snipw_high and app.dr_low <= truth <= app.dr_high, (truth, app)
    assert app.effective_sample_size > 500
    hero = pooled.loc["home-hero", "random"]
    assert "offer-new" in hero.refused and "never showed" in hero.refused
    slots = rows[(rows["placement_id"] == "app-home-card") & (rows["policy"] == "random") & rows["slot"].notna()]
    assert sorted(slots["slot"]) == list(range(1, int(slots["slot"].max()) + 1))
    assert set(rows["policy"]) == {"ai_model:auto-web", "ai_model:auto-web/published", "priority", "random"}
