"""The table contract: engine schemas derived from one declaration, and the shared snapshot rule."""

from __future__ import annotations

from datetime import date

from offerrank.tables import ALL_TABLES, OFFER_RANKINGS, RANKING_RUNS, latest_on_or_before


def test_engine_schemas_derive_from_the_one_declaration():
    assert (
        OFFER_RANKINGS.spark_schema().fieldNames() == OFFER_RANKINGS.column_names == OFFER_RANKINGS.arrow_schema().names
    )
    assert OFFER_RANKINGS.ddl.startswith("ranking_version long, model_name string, decision_id string")
    assert str(RANKING_RUNS.arrow_schema().field("published_at").type) == "timestamp[us, tz=UTC]"
    assert len({table.name for table in ALL_TABLES}) == len(ALL_TABLES) == 25


def test_the_snapshot_a_date_uses_is_the_latest_on_or_before_it():
    days = [date(2026, 11, 1), date(2026, 11, 8), date(2026, 11, 15)]
    assert latest_on_or_before(days, date(2026, 11, 10)) == date(2026, 11, 8)
    assert latest_on_or_before(days, date(2026, 11, 8)) == date(2026, 11, 8)
    assert latest_on_or_before(days, date(2026, 10, 31)) is None


def test_a_partition_predicate_takes_values_ranges_and_lists():
    from offerrank.tables import partition_predicate

    assert partition_predicate({"as_of_date": date(2026, 11, 3), "unit": "priority"}) == (
        "as_of_date = '2026-11-03' AND unit = 'priority'"
    )
    assert partition_predicate({"report_date": (date(2026, 11, 1), date(2026, 11, 3))}) == (
        "report_date >= '2026-11-01' AND report_date <= '2026-11-03'"
    )
    assert partition_predicate({"landing_date": [date(2026, 11, 3), date(2026, 11, 1)]}) == (
        "landing_date IN ('2026-11-01', '2026-11-03')"
    )
    assert partition_predicate({"source": ["nightly", None]}) == "(source IN ('nightly') OR source IS NULL)"


def test_composite_types_derive_for_both_engines_and_the_manual_run_id_is_named_once():
    from offerrank.tables import DQ_RESULTS, manual_run_id

    arrow = DQ_RESULTS.arrow_schema()
    assert str(arrow.field("quarantined_by_reason").type) == "map<string, int64>"
    assert arrow.field("expectations").type.value_type.names[:2] == ["suite", "expectation"]
    spark = DQ_RESULTS.spark_schema()
    assert spark["expectations"].dataType.simpleString().startswith("array<struct<suite:string,expectation:string")
    assert spark.fieldNames() == DQ_RESULTS.column_names == arrow.names
    assert manual_run_id(date(2026, 11, 3)) == "manual__2026-11-03"
