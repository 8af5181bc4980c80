"""Staging ranked lists into `ranking_stage` without Spark: the DAG's mapped rank tasks side by side."""

from __future__ import annotations

from datetime import UTC, date, datetime

RUN = date(2026, 11, 3)
STAGED_AT = datetime(2026, 11, 4, 2, tzinfo=UTC)


def test_ranking_methods_stage_side_by_side_when_run_at_once(tmp_path):
    """The DAG's mapped rank tasks write `ranking_stage` concurrently, the first ones into a table not yet created."""
    from concurrent.futures import ThreadPoolExecutor

    from deltalake import DeltaTable

    from offerrank.catalog import load_catalog
    from offerrank.jobs.rank import stage_unit
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate

    generate(tmp_path / "sample", RUN, days=1, seed=3, events_per_day=100)
    settings = load_settings(home=tmp_path)
    catalog = load_catalog(tmp_path / "sample" / "catalog.yaml")
    units = [method.unit for method in catalog.ranking_methods()]
    with ThreadPoolExecutor(len(units)) as pool:
        staged = list(pool.map(lambda unit: stage_unit(settings, catalog, RUN, "run-1", unit, STAGED_AT), units))
    assert len(units) == 5 and all(count > 0 for count in staged)
    stage = DeltaTable(settings.table_path("ranking_stage")).to_pandas()
    assert stage.groupby("unit").size().to_dict() == dict(zip(units, staged))
    assert set(stage["run_id"]) == {"run-1"} and set(stage["as_of_date"]) == {RUN}
