"""Publishing on real Delta tables without Spark: what a publish stopped between its two commits leaves behind."""

from __future__ import annotations

from datetime import date

from offerrank.engines.delta_rs import table_rows
from offerrank.jobs.publish import Publisher
from offerrank.settings import load_settings
from offerrank.tables import RANKING_RUNS
from tests.factories import publish_rows, published_ranking, ranking_rows


def test_a_ranking_committed_but_not_recorded_is_recorded_by_the_next_publish_and_its_version_never_reused(tmp_path):
    settings = load_settings(home=tmp_path)
    published_ranking(settings)  # version 1, recorded
    table_version = publish_rows(settings, ranking_rows(2))  # version 2 committed, then the task was killed
    publisher = Publisher(settings)
    assert [run["ranking_version"] for run in publisher.published_runs()] == [1]

    assert publisher.record_interrupted() == 2
    recovered = publisher.published_runs()[-1]
    assert recovered["ranking_version"] == 2 and recovered["status"] == "published"
    assert recovered["rankings_table_version"] == table_version and recovered["run_date"] == date(2026, 11, 2)
    assert "stopped between its commit and its record" in recovered["reason"]
    assert publisher.record_interrupted() is None  # once only
    assert len(table_rows(settings, RANKING_RUNS)) == 2
    assert max(run["ranking_version"] for run in publisher.published_runs()) + 1 == 3  # what the next publish takes


def test_a_second_publisher_based_on_the_same_version_fails_cleanly(tmp_path):
    import pandas as pd
    import pytest

    from offerrank.engines.delta_rs import ConcurrentCommit, open_table, write_frame
    from offerrank.tables import OFFER_RANKINGS

    settings = load_settings(home=tmp_path)
    base = publish_rows(settings, ranking_rows(1))
    # two publishers read version `base`; the first to commit wins, the second must not overwrite it
    first = write_frame(settings, OFFER_RANKINGS, pd.DataFrame(ranking_rows(2)), "overwrite", read_version=base)
    with pytest.raises(ConcurrentCommit, match=f"offer_rankings was committed by another writer after version {base}"):
        write_frame(settings, OFFER_RANKINGS, pd.DataFrame(ranking_rows(3)), "overwrite", read_version=base)
    served = open_table(settings, OFFER_RANKINGS)
    assert served.version() == first and set(served.to_pandas()["ranking_version"]) == {2}
