"""A marketer's trigger, in a real browser: Airflow's UI in headless Chromium (Debian's package, driven by
Playwright), the trigger form filled (run date, dry run) while the scheduled run waits for a day that never landed;
the manual run must start at once and succeed. Screenshots of the form and of the finished run go to `var/`."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from tests.factories import REPO, prepared_home
from tests.system.deploy.stack import wait_for

FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "var" / "screenshots"
# Chromium as root in a sandbox with a closed network: no sandbox, no background connections to Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("the browser test needs Debian's chromium (./dev.sh test installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_a_trigger_from_the_ui_runs_at_once_while_the_scheduled_run_waits_for_its_day(spark, stack, browser):
    home = stack.workdir / "home"
    prepared_home(spark, home, FIRST)
    api = stack.start_airflow(stack.start_postgres(), "local[*]", {"OFFERRANK_HOME": str(home)}, scheduled_runs=True)
    with api.client() as client:
        # the scheduler makes the latest nightly run (yesterday, no events there): it waits in `wait_for_events`
        def waiting_run() -> dict | None:
            runs = client.get("/dags/offer_ranking/dagRuns", params={"run_type": "scheduled"}).json()["dag_runs"]
            return runs[0] if runs else None

        wait_for("the scheduled run", lambda: waiting_run() is not None, 300, api.logs)
        scheduled = waiting_run()

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{api.base}/")
        page.get_by_label("Username").fill(api.username)
        page.get_by_label("Password").fill(api.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        page.goto(f"{api.base}/dags/offer_ranking")
        page.get_by_role("button", name="Trigger Dag").click()
        # the form Airflow builds from the DAG's params: one field per param, named after it
        page.locator("#element_run_date").fill(RUN.isoformat())
        page.locator("label[id='switch:element_dry_run']").click()
        assert page.locator("input[name='element_dry_run']").is_checked()
        page.screenshot(path=SCREENSHOTS / "trigger-form.png")
        started = time.monotonic()
        page.get_by_test_id("trigger-dag-submit").click()

        def manual_run() -> dict | None:
            runs = client.get("/dags/offer_ranking/dagRuns", params={"run_type": "manual"}).json()["dag_runs"]
            return runs[0] if runs else None

        wait_for("the run triggered in the UI", lambda: manual_run() is not None, 60, api.logs)
        run = manual_run()
        page.goto("about:blank")  # the UI polls while open: leave the 2 cores to the run meanwhile
        wait_for(
            "the triggered run to end",
            lambda: (
                client.get(f"/dags/offer_ranking/dagRuns/{run['dag_run_id']}").json()["state"] in ("success", "failed")
            ),
            900,
            api.logs,
        )
        elapsed = time.monotonic() - started
        run = client.get(f"/dags/offer_ranking/dagRuns/{run['dag_run_id']}").json()
        still_waiting = client.get(f"/dags/offer_ranking/dagRuns/{scheduled['dag_run_id']}").json()
        sensor = client.get(
            f"/dags/offer_ranking/dagRuns/{scheduled['dag_run_id']}/taskInstances/wait_for_events"
        ).json()
        sensor_log = client.get(
            f"/dags/offer_ranking/dagRuns/{scheduled['dag_run_id']}/taskInstances/wait_for_events/logs/1",
            headers={"Accept": "application/json"},
        ).json()["content"]
        page.goto(f"{api.base}/dags/offer_ranking/runs/{run['dag_run_id']}")
        page.get_by_text("Success").first.wait_for()
        page.screenshot(path=SCREENSHOTS / "finished-run.png")

    print(f"UI-triggered run: {run['state']} in {elapsed:.0f}s while the scheduled run was {still_waiting['state']}")
    assert run["state"] == "success"
    assert run["conf"] == {"run_date": RUN.isoformat(), "dry_run": True, "models": None, "full_refresh": False}
    assert still_waiting["state"] == "running" and sensor["state"] in ("up_for_reschedule", "running", "scheduled")
    missing_day = home / "sample" / "events" / scheduled["data_interval_start"][:10]
    assert any(f"waiting for event files in {missing_day} since" in str(line.get("event")) for line in sensor_log)
    assert not (home / "warehouse" / "offer_rankings").exists()  # a dry run publishes nothing
