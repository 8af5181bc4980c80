"""JVM-free writes of the ranking tables with `deltalake`: one commit each, and the version of that very commit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pandas as pd


def test_each_write_returns_the_version_of_its_own_commit_among_concurrent_writers(tmp_path):
    from deltalake import DeltaTable

    from offerrank.engines.delta_rs import write_frame
    from offerrank.settings import load_settings
    from offerrank.tables import RANKING_RUNS

    settings = load_settings(home=tmp_path)

    def record(index: int) -> tuple[int, str]:
        row = {name: None for name in RANKING_RUNS.column_names} | {
            "run_id": f"run-{index}",
            "run_date": date(2026, 11, 1),
            "status": "refused",
            "published_at": datetime(2026, 11, 1, tzinfo=UTC),
        }
        return write_frame(settings, RANKING_RUNS, pd.DataFrame([row], dtype=object)), f"run-{index}"

    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(record, range(8)))
    table = DeltaTable(settings.table_path("ranking_runs"))
    assert sorted(version for version, _ in written) == list(range(8))  # every commit got its own version
    for version, run_id in written:  # ... and it is the commit that wrote that row
        rows = DeltaTable(settings.table_path("ranking_runs"), version=version).to_pandas()
        previous = DeltaTable(settings.table_path("ranking_runs"), version=version - 1).to_pandas() if version else None
        added = set(rows["run_id"]) - (set(previous["run_id"]) if previous is not None else set())
        assert added == {run_id}
    assert table.version() == 7
