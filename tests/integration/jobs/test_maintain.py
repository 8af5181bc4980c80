"""Weekly maintenance on real Delta tables: OPTIMIZE compacts, VACUUM keeps the history rollbacks need."""

from __future__ import annotations

from datetime import UTC, date, datetime

from offerrank.engines.delta_spark import Warehouse
from offerrank.jobs import maintain
from offerrank.settings import load_settings
from offerrank.tables import OFFER_RANKINGS, PROFILE_SEGMENTS
from tests.factories import publish_rows, ranking_rows


def test_every_existing_table_is_compacted_and_vacuumed(spark, tmp_path):
    settings = load_settings(home=tmp_path)
    warehouse = Warehouse(spark, settings)
    for profile in ("p-1", "p-2", "p-3"):  # three commits, three small files of one partition
        rows = spark.createDataFrame([(date(2026, 11, 1), profile, "loyal")], PROFILE_SEGMENTS.ddl)
        warehouse.append(rows, PROFILE_SEGMENTS)
    publish_rows(settings, ranking_rows(1))

    done = maintain.run(spark, settings, date(2026, 11, 20))

    assert set(done) == {PROFILE_SEGMENTS.name, OFFER_RANKINGS.name}
    assert done[PROFILE_SEGMENTS.name] == "compacted 3 files into 1; vacuumed files older than 168 h"
    assert warehouse.read(PROFILE_SEGMENTS).count() == 3
    assert maintain.retention_hours(spark, settings, datetime(2026, 11, 20, tzinfo=UTC)) == 168
