"""The versioned expectation suites as the record routing reads them."""

from __future__ import annotations

import pytest

from offerrank.jobs.ingest import RECORD_SUITE
from offerrank.jobs.profiles import ATTRIBUTE_SUITE, SUITE
from offerrank.quality import load_suite
from offerrank.settings import load_settings


@pytest.mark.parametrize("name", [RECORD_SUITE, SUITE, ATTRIBUTE_SUITE])
def test_a_record_level_suite_gives_each_expectation_its_own_quarantine_code(name):
    # routing removes the absent codes of a row as a set difference, which would merge two expectations' codes
    suite = load_suite(load_settings().expectations_dir, name)
    codes = [expectation["meta"]["quarantine_code"] for expectation in suite["expectations"]]
    assert len(codes) == len(set(codes)) > 0
