"""The nightly chain's rules: its steps, the run-date rule and the validation gate."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from offerrank.catalog import build_catalog as catalog_of
from offerrank.chain.nightly import AFTER_PUBLISH, STEPS, RunRefused, run_date_of
from offerrank.events.validation_gate import DayValidation
from offerrank.sim.generator import build_catalog, build_offers


def test_the_steps_in_order():
    assert STEPS == ("ingest", "validate", "profiles", "aggregate", "rank", "publish", "report")
    assert AFTER_PUBLISH == "report"  # runs whether or not publish published


TODAY = date(2026, 11, 21)


def test_the_run_date_is_the_param_else_the_data_interval():
    assert run_date_of("2026-11-07", "2026-11-20", today=TODAY) == date(2026, 11, 7)
    assert run_date_of(None, "2026-11-20", today=TODAY) == date(2026, 11, 20)
    with pytest.raises(RunRefused, match="run_date must be a date like 2026-11-03, not '11/07'"):
        run_date_of("11/07", "2026-11-20", today=TODAY)


@pytest.mark.parametrize(
    "param, interval_start", [("2026-11-21", "2026-11-20"), (None, "2026-11-21"), ("2026-11-22", "")]
)
def test_a_run_date_that_is_not_over_is_refused_unless_forced(param, interval_start):
    # issue #54, item 3: a run dated today publishes cap counts as of today, and the lookup forgets what it served
    with pytest.raises(RunRefused, match=r"run date 2026-11-2\d is not over yet \(today is 2026-11-21, UTC\)"):
        run_date_of(param, interval_start, today=TODAY)
    assert run_date_of(param, interval_start, today=TODAY, force=True) == date.fromisoformat(param or interval_start)


@pytest.mark.parametrize("command", [["run"], ["rank"]])
def test_the_cli_refuses_a_run_for_today_unless_forced(tmp_path, capsys, command):
    from datetime import UTC, datetime

    from offerrank.cli.main import main

    today = datetime.now(UTC).date().isoformat()
    assert main(["--home", str(tmp_path), *command, "--date", today]) == 2  # refused before any Spark or table
    err = capsys.readouterr().err
    assert err.startswith(f"offerrank {command[0]}: run date {today} is not over yet") and err.count("\n") == 1
    assert "`--force`" in err


def two_dataset_catalog():
    """The generator's catalog with a second event dataset, `partner`, that only `auto-email` learns from."""
    data = build_catalog(build_offers(np.random.default_rng(7)), date(2026, 11, 1), 1)
    data["datasets"].append({"name": "partner", "path": "/landing/partner"})
    for model in data["ai_models"]:
        model["datasets"] = ["partner"] if model["name"] == "auto-email" else ["events"]
    return catalog_of(data, "test")


PASSED = {"success": True, "failure_message": None, "run_id": "run-1"}
FAILED = {"success": False, "failure_message": "too many quarantined", "run_id": "run-1"}


def test_the_validation_gate_stops_the_run_only_when_no_dataset_passed_and_says_why():
    day = date(2026, 11, 3)
    assert DayValidation(day, {"events": PASSED, "partner": FAILED}).refusal() is None
    assert DayValidation(day, {"events": None, "partner": FAILED}).refusal() == (
        "validation of 2026-11-03 did not pass (dataset events: no validation results for the date; "
        "dataset partner: too many quarantined)"
    )
    assert (
        DayValidation(day, {}).refusal() == "validation of 2026-11-03 did not pass (the catalog names no event dataset)"
    )
    assert DayValidation(day, {"events": None, "partner": FAILED}).run_id == "run-1"


def test_the_models_of_a_dataset_that_did_not_pass_are_held_back_and_no_other_method():
    catalog = two_dataset_catalog()
    day = date(2026, 11, 3)
    assert DayValidation(day, {"events": PASSED, "partner": FAILED}).held_back(catalog) == {
        "ai_model:auto-email": "its model's dataset did not pass validation of 2026-11-03 (partner: too many "
        "quarantined)"
    }
    held = DayValidation(day, {"events": FAILED, "partner": PASSED}).held_back(catalog)
    assert sorted(held) == ["ai_model:auto-web", "ai_model:personalized-mobile"]  # priority and formula never are


def test_a_forced_or_dry_rank_for_today_goes_past_the_run_date_rule(tmp_path, capsys):
    from datetime import UTC, datetime

    from offerrank.cli.main import main

    today = datetime.now(UTC).date().isoformat()
    for flag in ("--force", "--dry-run"):  # on an empty home: refused further on, by the validation gate
        assert main(["--home", str(tmp_path), "rank", "--date", today, flag]) == 2
        assert "is not over yet" not in capsys.readouterr().err
