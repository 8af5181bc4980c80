"""The nightly chain's rules: its steps, the run-date rule and the validation gate."""

from __future__ import annotations

from datetime import date

import pytest

from offerrank.nightly import AFTER_PUBLISH, STEPS, RunRefused, run_date_of, validation_refusal


def test_the_steps_in_order():
    assert STEPS == ("ingest", "validate", "profiles", "aggregate", "rank", "publish", "report")
    assert AFTER_PUBLISH == "report"  # runs whether or not publish published


def test_the_run_date_is_the_param_else_the_data_interval():
    assert run_date_of("2026-11-07", "2026-11-20") == date(2026, 11, 7)
    assert run_date_of(None, "2026-11-20") == date(2026, 11, 20)
    with pytest.raises(RunRefused, match="run_date must be a date like 2026-11-03, not '11/07'"):
        run_date_of("11/07", "2026-11-20")


def test_the_validation_gate_says_why():
    day = date(2026, 11, 3)
    assert validation_refusal({"success": True, "failure_message": None}, day) is None
    assert validation_refusal(None, day) == "validation of 2026-11-03 did not pass (no validation results for the date)"
    assert validation_refusal({"success": False, "failure_message": "too many quarantined"}, day) == (
        "validation of 2026-11-03 did not pass (too many quarantined)"
    )
