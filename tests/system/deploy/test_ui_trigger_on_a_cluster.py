"""The distributed path for real, on loopback, driven as a marketer drives it: Airflow on PostgreSQL (LocalExecutor)
with its scheduler creating the nightly runs, its UI in headless Chromium (Debian's package, driven by Playwright),
and the nightly DAG's Spark jobs submitted to a Spark standalone cluster. The run triggered from the UI's form must
start at once while the scheduled run waits for a day that never landed, and publish the ranking `local[*]`
publishes from the same input: only settings differ between the two. That ranking is stored
(`tests/data/cluster_day_ranking.csv`: `prepared_home(spark, home, FIRST)`, then `run_day(spark, settings, RUN)` and
`published(home).to_csv(...)` in the tests' Spark session), so the test's process does not run the day a second time
beside the cluster's four JVMs; the pipeline's stored ranking guards that `local[*]` still publishes what it did.
Screenshots of the form and of the finished run go to `var/screenshots/`."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable

from tests.factories import DATA, SMALL_INPUT_SPARK_CONF, prepared_home
from tests.system.conftest import SCREENSHOTS
from tests.system.deploy.stack import wait_for

FIRST, RUN = date(2026, 11, 1), date(2026, 11, 2)
COMPARED = [
    "model_name",
    "decision_id",
    "placement_id",
    "channel",
    "segment",
    "rank",
    "offer_id",
    "score",
    "p_best",
    "traffic_share",
    "alpha",
    "beta",
    "impressions",
    "conversions",
    "reason",
    "as_of_date",
]


def published(home: Path) -> pd.DataFrame:
    """The home's published ranking: the columns compared, in a stable order."""
    frame = DeltaTable(str(home / "warehouse" / "offer_rankings")).to_pandas(columns=COMPARED)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    return frame.sort_values(COMPARED[:7]).reset_index(drop=True)


def signed_in(browser, api, path: str):
    """A page of Airflow's UI at `path`, signed in."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{api.base}/")
    page.get_by_label("Username").fill(api.username)
    page.get_by_label("Password").fill(api.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    page.goto(f"{api.base}{path}")
    return page


def trigger_in_the_ui(browser, api, run_date: date) -> None:
    """Open the DAG, fill the trigger form Airflow builds from the DAG's params, submit it."""
    page = signed_in(browser, api, "/dags/offer_ranking")
    page.get_by_role("button", name="Trigger Dag").click()
    page.locator("#element_run_date").fill(run_date.isoformat())  # one field per param, named after it
    assert not page.locator("input[name='element_dry_run']").is_checked()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "trigger-form.png")
    page.get_by_test_id("trigger-dag-submit").click()
    page.close()  # the UI polls while open: leave the 2 cores to the run meanwhile


def test_a_ui_trigger_runs_at_once_on_postgres_airflow_and_a_spark_cluster_and_publishes_what_local_publishes(
    spark, stack, browser
):
    cluster_home = stack.workdir / "home"
    prepared_home(spark, cluster_home, FIRST)

    master = stack.start_spark()
    offerrank_env = {
        "OFFERRANK_HOME": str(cluster_home),
        "OFFERRANK_SPARK_CONF": json.dumps(
            {"spark.cores.max": "1", "spark.executor.memory": "1g", **SMALL_INPUT_SPARK_CONF}
        ),
    }
    api = stack.start_airflow(
        stack.start_postgres(),
        stack.start_spark_connect(master, offerrank_env),
        offerrank_env,
        scheduled_runs=("offer_ranking",),  # not the weekly maintenance DAG: its Spark job would share the cluster
    )
    with api.client() as client:

        def latest_run(run_type: str) -> dict | None:
            runs = client.get("/dags/offer_ranking/dagRuns", params={"run_type": run_type}).json()["dag_runs"]
            return runs[0] if runs else None

        # the scheduler makes the latest nightly run (yesterday, no events there): it waits in `wait_for_events`
        wait_for("the scheduled run", lambda: latest_run("scheduled") is not None, 300, api.logs)
        scheduled = latest_run("scheduled")
        started = time.monotonic()
        trigger_in_the_ui(browser, api, RUN)
        wait_for("the run triggered in the UI", lambda: latest_run("manual") is not None, 60, api.logs)
        run, tasks = api.wait_for_run("offer_ranking", latest_run("manual")["dag_run_id"], 900)
        elapsed = time.monotonic() - started
        still_waiting = client.get(f"/dags/offer_ranking/dagRuns/{scheduled['dag_run_id']}").json()
        sensor_log = client.get(  # the wait of the catalog's one dataset: map index 0
            f"/dags/offer_ranking/dagRuns/{scheduled['dag_run_id']}/taskInstances/"
            "dataset_ingest.wait_for_events/logs/1",
            params={"map_index": 0},
            headers={"Accept": "application/json"},
        ).json()["content"]
    page = signed_in(browser, api, f"/dags/offer_ranking/runs/{run['dag_run_id']}")
    page.get_by_text("Success").first.wait_for()
    page.screenshot(path=SCREENSHOTS / "finished-run.png")

    print(f"UI-triggered run on {master}: {run['state']} in {elapsed:.0f}s; tasks {tasks}; seconds {api.seconds}")
    assert run["state"] == "success", (tasks, [log.read_text()[-2000:] for log in api.logs])
    assert run["conf"] == {
        "run_date": RUN.isoformat(),
        "dry_run": False,
        "models": None,
        "full_refresh": False,
        "force": False,
    }
    assert tasks["publish"] == "success" and len([name for name in tasks if name.startswith("rank[")]) == 5
    # the scheduled run kept waiting for its day, and its sensor says where and since when
    assert still_waiting["state"] == "running"
    missing_day = cluster_home / "sample" / "events" / scheduled["data_interval_start"][:10]
    waiting = f"waiting for event files of dataset events in {missing_day} since"
    assert any(waiting in str(line.get("event")) for line in sensor_log)
    # the Spark jobs really ran on the cluster: the worker kept a folder per application it ran executors for, and
    # the one application is the Spark Connect server, the driver of ingest, profiles and aggregate; ranking and
    # publishing run in Airflow's tasks without Spark
    applications = list((stack.workdir / "spark" / "work").glob("app-*"))
    assert len(applications) == 1, applications
    stored = pd.read_csv(DATA / "cluster_day_ranking.csv", parse_dates=["as_of_date"])
    pd.testing.assert_frame_equal(published(cluster_home), stored, check_dtype=False, rtol=1e-9)
