"""A model report page opened in headless Chromium (Debian's package, driven by Playwright) from a file, offline:
every chart renders, the browser logs no error, and a screenshot goes to `var/screenshots/model-report.png`."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from offerrank.catalog import AIModel
from offerrank.jobs.report import model_report, write_report_files
from tests.system.conftest import SCREENSHOTS

FIRST, DAYS = date(2026, 11, 1), 14
PLACEMENTS = [("push-evening", "push")]
SEGMENTS = ("loyal-customers", "new-visitors")


def learning_model_facts(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weeks of a personalized model that learns: its traffic moves to the better offers day by day, while a
    tenth of the traffic stays random; plus the posteriors it would have served."""
    rng = np.random.default_rng(seed)
    offers = [f"offer-{i:03d}" for i in range(1, 9)]
    true_rates = np.linspace(0.02, 0.09, len(offers))
    stats, rates = [], []
    for day in range(DAYS):
        event_date = FIRST + timedelta(days=day)
        learned = np.exp(true_rates * 40 * day / DAYS)
        for segment, lift in (("*", 1.0), (SEGMENTS[0], 1.3), (SEGMENTS[1], 0.8)):
            size = 6_000 if segment == "*" else 3_000
            for traffic, share in (("model", learned / learned.sum()), ("random", np.full(len(offers), 1 / 8))):
                shown = rng.multinomial(size if traffic == "model" else size // 9, share)
                clicks = rng.binomial(shown, np.minimum(true_rates * lift, 1))
                stats += [
                    (event_date, offer, *PLACEMENTS[0], segment, traffic, int(n), int(c))
                    for offer, n, c in zip(offers, shown, clicks)
                ]
            rates += [
                (event_date, "personalized-push", offer, *PLACEMENTS[0], segment, 1 + r * 100, 1 + (1 - r) * 100, False)
                for offer, r in zip(offers, true_rates * lift)
            ]
    columns = ["event_date", "offer_id", "placement_id", "channel", "segment", "traffic_type"]
    rate_columns = ["as_of_date", "model_name", "offer_id", "placement_id", "channel", "segment", "alpha", "beta"]
    return (
        pd.DataFrame(stats, columns=[*columns, "impressions", "conversions"]).assign(dataset="events"),
        pd.DataFrame(rates, columns=[*rate_columns, "cold_start"]),
    )


def test_the_report_page_renders_every_chart_offline_without_errors(browser, tmp_path):
    model = AIModel(
        name="personalized-push",
        description="Per-segment ranking of push messages",
        type="personalized",
        datasets=["events"],
        segments=list(SEGMENTS),
        lookback_days=DAYS,
    )
    stats, rates = learning_model_facts()
    report = model_report(model, PLACEMENTS, stats, rates, FIRST, FIRST + timedelta(days=DAYS - 1))
    page_file = tmp_path / "report.html"
    write_report_files(report, str(page_file), None)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.goto(page_file.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 10")

    charts = page.locator(".js-plotly-plot")
    assert charts.count() == 5  # rate over time, cumulative lift, offers, traffic shares, segments
    for index in range(charts.count()):
        chart = charts.nth(index)
        assert chart.locator(".main-svg").count() >= 1
        assert chart.locator("g.trace, g.scatterlayer g.trace, g.barlayer g.trace").count() >= 1, index
        assert chart.locator("path").count() > 5, index  # drawn marks, not an empty frame
    assert report.verdict in page.inner_text(".verdict")
    assert problems == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "model-report.png", full_page=True)
    assert (SCREENSHOTS / "model-report.png").stat().st_size > 50_000
    context.close()
