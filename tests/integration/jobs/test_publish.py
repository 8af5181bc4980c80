"""Publishing on real Delta tables without Spark: what a publish stopped between its two commits leaves behind."""

from __future__ import annotations

from datetime import date

from offerrank.engines.delta_rs import table_rows, write_frame
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


def test_an_older_run_of_the_served_date_is_refused_and_the_staged_lists_of_published_runs_are_purged(tmp_path, capsys):
    """Run A stages; a priority changes; run B of the same date stages and publishes; clearing A's publish (Airflow)
    must not replace B's ranking with A's stale lists. Each attempt is stamped with the time it was made, not the end
    of its run date, and `rankings history` lists them in that order."""
    from datetime import UTC, datetime

    import pandas as pd
    import pytest

    from offerrank.catalog import load_catalog
    from offerrank.cli.main import main
    from offerrank.jobs import rank
    from offerrank.jobs.publish import PublishRefused, run
    from offerrank.sim.generator import generate
    from offerrank.tables import DQ_RESULTS, RANKING_STAGE

    day = date(2026, 11, 3)
    generate(tmp_path / "sample", day, days=1, seed=3, events_per_day=100)
    settings = load_settings(home=tmp_path)
    catalog = load_catalog(tmp_path / "sample" / "catalog.yaml")
    passed = [{"run_date": day, "dataset": d.name, "run_id": "ingest", "success": True} for d in catalog.datasets]
    write_frame(settings, DQ_RESULTS, pd.DataFrame(passed).reindex(columns=DQ_RESULTS.column_names).astype(object))
    last_by_priority = min((o for o in catalog.offers), key=lambda o: o.priority)
    offers = tuple(o.model_copy(update={"priority": 1000}) if o is last_by_priority else o for o in catalog.offers)
    changed = catalog.model_copy(update={"offers": offers})

    rank.run(settings, catalog, day, "run-a", datetime(2026, 11, 4, 2, tzinfo=UTC))
    rank.run(settings, changed, day, "run-b", datetime(2026, 11, 4, 9, tzinfo=UTC))
    published = run(settings, changed, day, "run-b", datetime(2026, 11, 4, 9, 5, tzinfo=UTC))
    assert published.status == "published"
    assert table_rows(settings, RANKING_STAGE) == []  # B published; A was staged before it: superseded

    with pytest.raises(PublishRefused, match=r"run run-a has no staged lists of 2026-11-03 .*\(run run-b, ranking"):
        run(settings, catalog, day, "run-a", datetime(2026, 11, 4, 10, tzinfo=UTC))
    served = Publisher(settings).served()
    assert set(served["run_id"]) == {"run-b"} and set(served["ranking_version"]) == {published.ranking_version}
    assert last_by_priority.id in set(served.loc[served["rank"] == 1, "offer_id"])

    runs = {row["run_id"]: row for row in table_rows(settings, RANKING_RUNS)}
    assert runs["run-b"]["published_at"] == datetime(2026, 11, 4, 9, 5, tzinfo=UTC)
    assert runs["run-b"]["staged_at"] == datetime(2026, 11, 4, 9, tzinfo=UTC) and runs["run-b"]["run_date"] == day
    assert runs["run-a"]["status"] == "refused" and runs["run-a"]["run_date"] == day
    assert main(["--home", str(tmp_path), "rankings", "history"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in history] == [["09:05:00", "published"], ["10:00:00", "refused"]]
