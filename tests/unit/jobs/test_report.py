"""Model reports from inline `offer_stats_daily` and `offer_conversion_rates` rows (pandas, no Spark)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from offerrank.catalog import AIModel
from offerrank.jobs.report import model_report, write_report_files
from offerrank.reports.page import render, script_name
from offerrank.tables import MODEL_REPORT, MODEL_REPORT_DAILY, MODEL_REPORT_OFFERS

D0, D1, D2 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
HERO = [("hero", "web")]
STATS = ["event_date", "offer_id", "placement_id", "channel", "segment", "traffic_type", "impressions", "conversions"]
RATES = ["as_of_date", "model_name", "offer_id", "placement_id", "channel", "segment", "alpha", "beta", "cold_start"]


def stats(*rows) -> pd.DataFrame:
    """Daily facts of the dataset `events`, plus the same rows again in a dataset no model here learns from."""
    facts = pd.DataFrame(rows, columns=STATS)
    return pd.concat([facts.assign(dataset="events"), facts.assign(dataset="partner")], ignore_index=True)


def rates(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RATES)


def auto(**overrides) -> AIModel:
    return AIModel(name="auto", type="auto_optimization", datasets=["events"], lookback_days=2, **overrides)


FACTS = stats(
    (D1, "o1", "hero", "web", "*", "model", 4_000, 240),
    (D1, "o2", "hero", "web", "*", "model", 1_000, 30),
    (D1, "o1", "hero", "web", "*", "random", 300, 18),
    (D1, "o2", "hero", "web", "*", "random", 300, 9),
    (D1, "o2", "hero", "web", "*", "unknown", 400, 12),
    (D2, "o1", "hero", "web", "*", "model", 4_500, 270),
    (D2, "o1", "hero", "web", "*", "random", 250, 15),
    (D2, "o2", "hero", "web", "*", "random", 250, 8),
    (D0, "o1", "hero", "web", "*", "random", 10_000, 0),  # before the window
    (D1, "o1", "sidebar", "web", "*", "random", 10_000, 0),  # a placement the model does not rank
)
SCORES = rates(
    (D0, "auto", "o1", "hero", "web", "*", 6.0, 94.0, False),  # served on D1: o1 first, as it converts better
    (D0, "auto", "o2", "hero", "web", "*", 3.0, 97.0, False),
    (D1, "auto", "o1", "hero", "web", "*", 3.0, 97.0, False),  # served on D2
    (D1, "auto", "o2", "hero", "web", "*", 6.0, 94.0, False),
    (D2, "auto", "o1", "hero", "web", "*", 500.0, 9_000.0, False),  # the window's end: o2 is still in cold start
    (D2, "auto", "o2", "hero", "web", "*", 60.0, 1_900.0, True),
)


@pytest.fixture(scope="module")
def report():
    return model_report(auto(), HERO, FACTS, SCORES, D1, D2)


def test_model_and_random_traffic_of_the_window_are_compared(report):
    (row,) = report.summary.to_dict("records")
    assert (row["model_impressions"], row["model_conversions"]) == (9_500, 540)
    assert (row["random_impressions"], row["random_conversions"]) == (1_100, 50)  # not D0, not the sidebar
    assert row["lift"] == pytest.approx((540 / 9_500) / (50 / 1_100) - 1)
    assert row["lift_low"] < row["lift"] < row["lift_high"] and row["p_value"] > 0.05
    assert row["verdict"].startswith("no significant difference from random yet: lift +25%")
    assert list(report.summary.columns) == MODEL_REPORT.column_names


def test_gini_uses_the_scores_served_on_each_day_on_random_traffic(report):
    # D1 served o1 above o2 (right: 6% vs 3%), D2 served o2 above o1 (wrong): the pooled AUC mixes both days
    (row,) = report.summary.to_dict("records")
    from offerrank.reports.stats import gini

    expected = gini([0.06, 0.03, 0.03, 0.06], [18, 9, 15, 8], [282, 291, 235, 242])
    assert row["gini"] == pytest.approx(expected)


def test_offers_carry_their_rate_share_of_traffic_and_cold_start(report):
    offers = report.offers.set_index("offer_id")
    assert list(report.offers.columns) == MODEL_REPORT_OFFERS.column_names
    assert offers.loc["o1", "impressions"] == 4_000 + 300 + 4_500 + 250
    assert offers.loc["o2", "impressions"] == 1_000 + 300 + 400 + 250  # unknown traffic counts as traffic
    assert offers["traffic_share"].sum() == pytest.approx(1.0)
    assert offers["conversion_rate"]["o1"] == pytest.approx(543 / 9_050)
    assert (offers.loc["o1", "cold_start"], offers.loc["o2", "cold_start"]) == (False, True)
    assert list(report.offers["offer_id"]) == ["o1", "o2"]  # best first


def test_daily_rows_per_traffic_type_and_the_running_lift(report):
    daily = report.daily
    assert list(daily.columns) == MODEL_REPORT_DAILY.column_names
    assert set(daily["report_date"]) == {D1, D2}
    d1_random = daily[(daily["report_date"] == D1) & (daily["traffic_type"] == "random")]
    assert (d1_random["impressions"].item(), d1_random["conversions"].item()) == (600, 27)
    running = report.cumulative.set_index("report_date")
    assert running.loc[D2, "random_impressions"] == 1_100 and running.loc[D1, "random_impressions"] == 600
    assert running.loc[D2, "lift"] == pytest.approx(report.summary["lift"].item())


def test_no_random_traffic_gives_no_baseline_and_personalized_models_report_each_segment():
    personalized = AIModel(
        name="auto", type="personalized", datasets=["events"], segments=["loyal", "new"], lookback_days=2
    )
    facts = pd.concat(
        [
            FACTS,
            stats(
                (D1, "o1", "hero", "web", "loyal", "model", 500, 40),
                (D1, "o1", "hero", "web", "loyal", "random", 200, 5),
                (D1, "o1", "hero", "web", "new", "model", 300, 9),
            ),
        ]
    )
    report = model_report(personalized, HERO, facts, SCORES, D1, D2)
    verdicts = report.summary.set_index("segment")["verdict"]
    assert list(verdicts.index) == ["*", "loyal", "new"]
    assert verdicts["loyal"].startswith("not enough data to tell: needs about")
    assert verdicts["new"].startswith("no random traffic in this window")
    assert "Model vs random traffic per segment" in render(report, script_name())


def test_the_page_and_the_json_show_the_tables_numbers(report):
    page = render(report, script_name())
    figures = report.as_json()
    (row,) = figures["summary"]
    assert row["verdict"] in page and f"{row['model_impressions']:,}" in page and f"{row['model_rate']:.2%}" in page
    assert row["window_end"] == "2026-11-03" and figures["window_start"] == "2026-11-02"
    assert [o["offer_id"] for o in figures["offers"]] == list(report.offers["offer_id"])
    assert 'src="http' not in page and page.count('<section class="chart">') == 4  # offline: no CDN
    assert page.count("Plotly.newPlot") == 4


def test_pages_are_small_and_share_one_plotly_script_per_reports_folder(report, tmp_path):
    # issue #54, item 22: plotly.js (4.8 MB) was inlined in every page, every model, every night
    reports = tmp_path / "reports"
    pages = [reports / model / f"{day}.html" for model in ("auto-web", "auto-email") for day in (D1, D2)]
    for page in pages:
        write_report_files(report, str(page), None, str(reports))
    (script,) = reports.rglob("*.js")
    assert script == reports / script_name() and script.stat().st_size > 3_000_000
    for page in pages:
        html = page.read_text()
        assert page.stat().st_size < 200_000, page
        assert html.count(" src=") == 1 and f'<script charset="utf-8" src="../{script_name()}">' in html
        assert (page.parent / f"../{script_name()}").resolve() == script.resolve()

    alone = tmp_path / "out" / "auto-web_2026-11-02_2026-11-03.html"  # `offerrank report --out DIR`
    write_report_files(report, str(alone), None)
    assert f'src="{script_name()}"' in alone.read_text() and (alone.parent / script_name()).exists()
