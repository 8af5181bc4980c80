"""The versioned expectation suites as the record routing reads them."""

from __future__ import annotations

import pytest

from offerrank.engines.quality import checked_columns, load_suite
from offerrank.events.day_checks import RECORD_SUITE
from offerrank.jobs.profiles import ATTRIBUTE_SUITE, SUITE
from offerrank.settings import load_settings


@pytest.mark.parametrize("name", [RECORD_SUITE, SUITE, ATTRIBUTE_SUITE])
def test_a_record_level_suite_gives_each_expectation_its_own_quarantine_code(name):
    # routing removes the absent codes of a row as a set difference, which would merge two expectations' codes
    suite = load_suite(load_settings().expectations_dir, name)
    codes = [expectation["meta"]["quarantine_code"] for expectation in suite["expectations"]]
    assert len(codes) == len(set(codes)) > 0


def test_the_checked_columns_are_those_the_expectations_and_their_row_conditions_read():
    suite = {
        "expectations": [
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "parse_status", "value_set": ["ok"]}},
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {
                    "column": "event_id",
                    "row_condition": {
                        "type": "and",
                        "conditions": [
                            {
                                "type": "comparison",
                                "column": {"name": "parse_status"},
                                "operator": "==",
                                "parameter": 1,
                            },
                            {"type": "nullity", "column": {"name": "event_kind"}, "is_null": False},
                        ],
                    },
                },
            },
            {"type": "expect_column_pair_values_to_be_equal", "kwargs": {"column_A": "a", "column_B": "b"}},
        ]
    }
    assert checked_columns(suite) == ["parse_status", "event_id", "event_kind", "a", "b"]
