"""The whole ingest job on generated data: exact reconciliation, reruns, a failing day, Parquet input, the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from offerrank.catalog import Dataset, load_catalog
from offerrank.catalog.registry import Registry
from offerrank.cli import main as cli_main
from offerrank.events.xdm import EVENT_SCHEMA
from offerrank.jobs.ingest import run as run_ingest
from offerrank.settings import load_settings
from offerrank.sim.generator import generate
from tests.factories import warehouse_copy

DAY = date(2026, 11, 1)
# generator fault kind -> the quarantine code it must end up under (exact duplicates are dropped, not quarantined)
FAULT_CODES = {
    "conflicting_duplicate": "conflicting_duplicate",
    "malformed_json": "malformed_json",
    "not_an_object": "not_an_object",
    "missing_id": "missing_event_id",
    "missing_timestamp": "missing_timestamp",
    "future_timestamp": "future_timestamp",
    "event_type_mismatch": "event_type_mismatch",
    "unknown_event_type": "unknown_event_type",
    "no_propositions": "no_propositions",
    "item_without_id": "item_without_id",
    "missing_identity": "missing_identity",
}
TABLES = ("events_raw", "interactions", "quarantine", "dq_results")


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("landing")
    generate(out, DAY, days=1, seed=5, events_per_day=4_000, fault_rate=0.03)
    return out


@pytest.fixture(scope="module")
def run_settings(spark, landing, tmp_path_factory):
    """A warehouse whose registry holds the generated catalog: its dataset `events` lands in `landing/events`; it
    keeps every record's text in `events_raw`."""
    settings = load_settings(home=tmp_path_factory.mktemp("ingest-home"), keep_raw_events=True)
    Registry(settings).commit(load_catalog(landing / "catalog.yaml"), datetime(2026, 11, 1, tzinfo=UTC))
    return settings


@pytest.fixture(scope="module")
def first_run(spark, run_settings):
    return ingest_one(spark, run_settings, DAY)


def ingest_one(spark, settings, day, root=None, run_id=None):
    """The result of ingesting `day` of the one dataset `events` (of the registry, or landing in `root`)."""
    datasets = [Dataset(name="events", path=str(root))] if root else None
    (result,) = run_ingest(spark, settings, day, run_id, datasets).results
    return result


def table(spark, settings, name):
    return spark.read.format("delta").load(settings.table_path(name))


def snapshot(spark, settings):
    return {
        name: sorted(map(tuple, table(spark, settings, name).drop("expectations").collect()), key=repr)
        for name in TABLES
    }


def test_every_record_is_accounted_for_exactly(first_run, landing):
    manifest = json.loads((landing / "manifest.json").read_text())
    faults = manifest["faults"][DAY.isoformat()]
    assert first_run.success, first_run.failure_message
    assert first_run.records_read == manifest["lines_per_date"][DAY.isoformat()]
    assert first_run.exact_duplicates == faults["exact_duplicate"]
    expected_codes = Counter()
    for kind, code in FAULT_CODES.items():
        expected_codes[code] += faults.get(kind, 0)
    assert first_run.quarantined_by_reason == {code: n for code, n in expected_codes.items() if n}
    assert first_run.quarantined == sum(expected_codes.values())
    assert first_run.events_accepted == first_run.records_read - first_run.exact_duplicates - first_run.quarantined


def test_interactions_match_the_generators_truth(spark, run_settings, first_run, landing):
    rows = table(spark, run_settings, "interactions").filter(F.col("landing_date") == DAY)
    impressions = Counter(
        {
            (r.offer_id, r.placement_id, r.channel): r["count"]
            for r in rows.filter("interaction = 'impression'")
            .groupBy("offer_id", "placement_id", "channel")
            .count()
            .collect()
        }
    )
    conversions = Counter(
        {
            (r.offer_id, r.placement_id, r.channel): r.n
            for r in rows.filter("interaction = 'conversion'")
            .groupBy("offer_id", "placement_id", "channel")
            .agg(F.countDistinct("proposition_id").alias("n"))
            .collect()
        }
    )
    truth_impressions, truth_conversions = Counter(), Counter()
    with open(landing / "ground_truth.csv") as handle:
        for row in csv.DictReader(handle):
            key = (row["offer_id"], row["placement_id"], row["channel"])
            truth_impressions[key] += int(row["impressions"])
            truth_conversions[key] += int(row["conversions"])
    assert impressions == truth_impressions
    assert conversions == +truth_conversions
    assert first_run.interactions_written == rows.count()


def test_tables_hold_the_run(spark, run_settings, first_run):
    raw = table(spark, run_settings, "events_raw")
    assert raw.count() == first_run.records_read
    quarantine = table(spark, run_settings, "quarantine").collect()
    assert len(quarantine) == first_run.quarantined
    assert all(r.raw for r in quarantine)  # duplicates found after routing too
    malformed = next(r for r in quarantine if r.reason_codes == ["malformed_json"])
    assert (
        malformed.reasons == "the record is not valid JSON"
        and malformed.raw
        and malformed.source_file.endswith(".jsonl")
    )
    (dq,) = table(spark, run_settings, "dq_results").collect()
    assert dq.success and dq.records_read == first_run.records_read and dq.run_id == "manual__2026-11-01"
    outcomes = {(e.suite, e.column, e.quarantine_code): e for e in dq.expectations}
    assert (
        outcomes[("events_records", "event_id", "missing_event_id")].unexpected_count
        == first_run.quarantined_by_reason["missing_event_id"]
    )
    assert all(e.success for e in dq.expectations if e.suite == "events_dataset")
    docs = Path(run_settings.dq_docs_dir)
    index = (docs / "index.html").read_text()
    for suite in ("events_records", "events_dataset"):  # the day's page of each suite, linked from the index
        (page,) = (docs / "validations" / suite).rglob("*.html")
        assert str(page.relative_to(docs)) in index, suite


def test_rerunning_a_date_gives_identical_tables(spark, run_settings, first_run):
    before = snapshot(spark, run_settings)
    again = ingest_one(spark, run_settings, DAY)
    assert again.summary() == first_run.summary()
    assert snapshot(spark, run_settings) == before


def test_a_failing_rerun_keeps_what_a_passing_run_accepted_unless_told_to_replace_it(
    spark, run_settings, first_run, capsys, monkeypatch, tmp_path
):
    settings = warehouse_copy(run_settings, tmp_path)  # after the first run, which passed

    def interactions_of_the_day():
        return table(spark, settings, "interactions").filter(F.col("landing_date") == DAY).count()

    monkeypatch.setenv("OFFERRANK_MAX_QUARANTINE_SHARE", "0.001")
    strict = settings.model_copy(update={"max_quarantine_share": 0.001})
    failed = ingest_one(spark, strict, DAY, run_id="strict")
    assert not failed.success and failed.interactions_written == 0
    assert "of records quarantined, more than the allowed 0.10%" in failed.failure_message
    assert f"kept the {first_run.interactions_written:,} interactions an earlier run that passed accepted" in (
        failed.failure_message
    )
    assert interactions_of_the_day() == first_run.interactions_written
    (dq,) = table(spark, settings, "dq_results").collect()
    assert (dq.success, dq.run_id) == (False, "strict")

    code = cli_main(
        [
            "--home",
            str(tmp_path),
            "ingest",
            "--date",
            "2026-11-01",
            "--dataset",
            "events",
            "--run-id",
            "again",
            "--replace-accepted",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "of records quarantined, more than the allowed 0.10%" in out and "kept the" not in out
    assert interactions_of_the_day() == 0


def test_parquet_landing_files_give_the_same_outcome(spark, run_settings, first_run, landing, tmp_path):
    folder = tmp_path / "events" / DAY.isoformat()
    valid = spark.read.schema(EVENT_SCHEMA).json(str(landing / "events" / DAY.isoformat())).filter("_id IS NOT NULL")
    valid.coalesce(1).write.parquet(str(folder / "export"))
    for part in (folder / "export").glob("*.parquet"):
        part.rename(folder / f"export-{part.name}")
    parquet_settings = load_settings(home=tmp_path / "home")
    result = ingest_one(spark, parquet_settings, DAY, tmp_path / "events")
    assert result.records_read == valid.count()
    assert result.interactions_written > 0.9 * first_run.interactions_written

    # another export of the same events with `timestamp` as a real TIMESTAMP column, beside the first
    valid.withColumn("timestamp", F.to_timestamp("timestamp")).coalesce(1).write.parquet(str(folder / "typed"))
    for part in (folder / "typed").glob("*.parquet"):
        part.rename(folder / f"typed-{part.name}")
    both = ingest_one(spark, parquet_settings, DAY, tmp_path / "events")
    assert both.records_read == 2 * valid.count()
    # every event once: the second copy of each is a duplicate (its timestamp text may differ: `...00.000Z`)
    assert both.events_accepted == result.events_accepted
    assert both.interactions_written == result.interactions_written


def test_a_missing_landing_folder_fails_the_datasets_validation_saying_why(spark, run_settings):
    result = ingest_one(spark, run_settings, date(2026, 10, 1))
    assert not result.success and re.match(
        r"no event files .* for 2026-10-01 in .*/events/2026-10-01", result.failure_message
    )
    (dq,) = table(spark, run_settings, "dq_results").filter(F.col("run_date") == date(2026, 10, 1)).collect()
    assert (dq.dataset, dq.success, dq.records_read, dq.failure_message) == ("events", False, 0, result.failure_message)


def test_a_day_far_below_its_trailing_volume_fails_saying_by_how_much(spark, run_settings, first_run, tmp_path):
    quiet_day = date(2026, 11, 2)
    generate(tmp_path / "quiet", quiet_day, days=1, seed=6, events_per_day=400)
    settings = warehouse_copy(run_settings, tmp_path)  # 11-01 passed: the trailing window's one day that counts
    result = ingest_one(spark, settings, quiet_day, tmp_path / "quiet" / "events")
    ratio = result.events_accepted / first_run.events_accepted
    assert ratio < settings.min_volume_ratio and not result.success
    assert result.failure_message == f"accepted volume is {ratio:.2f}x the trailing mean, outside [0.2, 5.0]"


def test_an_event_in_two_landing_days_counts_once_whichever_day_is_ingested_first(spark, tmp_path):
    first_day, second_day = date(2026, 11, 2), date(2026, 11, 3)
    generate(tmp_path / "sample", first_day, days=2, seed=8, events_per_day=200, profiles=100)
    events = tmp_path / "sample" / "events"
    line = next((events / first_day.isoformat()).glob("*.json*")).read_text().splitlines()[0]
    (events / second_day.isoformat() / "resent.jsonl").write_text(line + "\n")
    settings = load_settings(home=tmp_path)
    for day in (second_day, first_day, second_day):  # out of order, then a re-run
        assert ingest_one(spark, settings, day, events).success

    event_id = json.loads(line)["_id"]
    accepted = table(spark, settings, "interactions").filter(F.col("event_id") == event_id)
    assert {row.landing_date for row in accepted.select("landing_date").distinct().collect()} == {second_day}
    later_copy = F.array_contains("reason_codes", "duplicate_of_later_day")
    quarantined = table(spark, settings, "quarantine").filter(later_copy)
    assert [row.run_date for row in quarantined.select("run_date").collect()] == [first_day]


def test_a_folder_is_read_once_its_marker_is_there_and_only_its_data_files(spark, tmp_path):
    generate(tmp_path / "sample", DAY, days=1, seed=4, events_per_day=200, profiles=100)
    folder = tmp_path / "sample" / "events" / DAY.isoformat()
    (data_file,) = folder.glob("*.json*")
    line = data_file.read_text().splitlines()[0]
    (folder / "upload.jsonl._COPYING_").write_text(line.replace(json.loads(line)["_id"], "in-flight") + "\n")
    (tmp_path / "host-file.jsonl").write_text(line.replace(json.loads(line)["_id"], "host-file") + "\n")
    (folder / "linked.jsonl").symlink_to(tmp_path / "host-file.jsonl")
    settings = load_settings(home=tmp_path, landing_marker="_SUCCESS")
    waiting = ingest_one(spark, settings, DAY, f"file://{folder.parent}")  # a file:// URI reads like the folder
    assert not waiting.success and "has no _SUCCESS marker yet" in waiting.failure_message

    (folder / "_SUCCESS").write_text("")
    result = ingest_one(spark, settings, DAY, f"file://{folder.parent}")
    assert result.success and result.records_read == len(data_file.read_text().splitlines())
    assert result.skipped_files == ["upload.jsonl._COPYING_: not a data file name (*.json, *.jsonl[.gz], *.parquet)"]
    read_ids = {row.event_id for row in table(spark, settings, "interactions").select("event_id").collect()}
    assert not {"in-flight", "host-file"} & read_ids
    assert not Path(settings.table_path("events_raw")).exists()  # by default the landing folder is the raw copy
    # issue #54, item 12: the link is quarantined by its own name, unread, saying so
    assert result.quarantined_by_reason["symbolic_link"] == 1
    (link,) = table(spark, settings, "quarantine").filter(F.array_contains("reason_codes", "symbolic_link")).collect()
    assert link.source_file.endswith(f"/{DAY}/linked.jsonl") and link.raw is None and link.event_id is None
    assert link.reasons.startswith("a symbolic link: landing never follows links out of its root")


def test_an_impression_logged_with_a_propensity_below_the_floor_is_quarantined(spark, tmp_path):
    # issue #54, item 9: Great Expectations and the routing agree on the floor (the ingest checks they do)
    generate(tmp_path / "sample", DAY, days=1, seed=4, events_per_day=200, profiles=100)
    (data_file,) = (tmp_path / "sample" / "events" / DAY.isoformat()).glob("*.json*")
    lines = data_file.read_text().splitlines()
    at = next(n for n, line in enumerate(lines) if '"propensity":' in line and '"display"' in line)
    lines[at] = re.sub(r'"propensity":[0-9.e-]+', '"propensity":1e-300', lines[at])
    data_file.write_text("\n".join(lines) + "\n")
    result = ingest_one(spark, load_settings(home=tmp_path), DAY, data_file.parent.parent)
    assert result.quarantined_by_reason == {"propensity_below_floor": 1}


def test_a_day_sharing_its_event_ids_with_another_datasets_day_is_reported(spark, tmp_path, caplog):
    # issue #54, item 8: the same events landing for two datasets would count twice
    generate(tmp_path / "sample", DAY, days=1, seed=4, events_per_day=200, profiles=100)
    web = tmp_path / "sample" / "events"
    copy = tmp_path / "copy"
    (copy / DAY.isoformat()).mkdir(parents=True)
    for data_file in (web / DAY.isoformat()).glob("*.json*"):
        (copy / DAY.isoformat() / data_file.name).write_bytes(data_file.read_bytes())
    datasets = [Dataset(name="web", path=str(web)), Dataset(name="partner", path=str(copy))]
    first, second = run_ingest(spark, load_settings(home=tmp_path), DAY, None, datasets).results
    assert first.shared_ids == []
    accepted = second.events_accepted
    assert second.success and second.shared_ids == [
        f"{accepted:,} of the {accepted:,} accepted events were also accepted by dataset 'web' for {DAY}: the same "
        "events counted twice? (one landing root configured twice, or a copied export)"
    ]
    assert f"WARNING: {accepted:,} of the {accepted:,} accepted events" in second.summary()
    assert any("also accepted by dataset 'web'" in record.message for record in caplog.records)


def test_a_symbolically_linked_date_folder_is_not_read(spark, tmp_path):
    # issue #54, item 12: a date folder linked to a folder outside the landing root
    outside = tmp_path / "outside"
    generate(outside, DAY, days=1, seed=4, events_per_day=200, profiles=100)
    root = tmp_path / "landing"
    root.mkdir()
    (root / DAY.isoformat()).symlink_to(outside / "events" / DAY.isoformat(), target_is_directory=True)
    settings = load_settings(home=tmp_path)
    result = ingest_one(spark, settings, DAY, root)
    assert not result.success and result.records_read == 0
    assert result.failure_message.startswith(f"{root}/{DAY} is a symbolic link: landing never follows links")
    assert not Path(settings.table_path("quarantine")).exists()  # nothing of the outside folder was read


def test_a_damaged_gzip_or_parquet_file_is_quarantined_whole_and_the_others_are_read(spark, tmp_path):
    generate(tmp_path / "sample", DAY, days=1, seed=4, events_per_day=200, profiles=100)
    folder = tmp_path / "sample" / "events" / DAY.isoformat()
    (data_file,) = folder.glob("*.json*")
    lines = data_file.read_text().splitlines()
    whole_gzip = gzip.compress(("\n".join(lines[:50]) + "\n").encode())
    (folder / "cut.jsonl.gz").write_bytes(whole_gzip[: len(whole_gzip) // 2])
    spark.createDataFrame([(1,)], "n int").coalesce(1).write.parquet(str(tmp_path / "export"))
    (part,) = (tmp_path / "export").glob("*.parquet")
    (folder / "cut.parquet").write_bytes(part.read_bytes()[:20])
    settings = load_settings(home=tmp_path)
    result = ingest_one(spark, settings, DAY, folder.parent)  # two of three files: more than the 10% allowed
    assert result.failure_message == "67% of the data files could not be read whole, more than the allowed 10%"
    assert result.records_read == len(lines)  # the other file's records, whole
    assert result.quarantined_by_reason["damaged_file"] == 2
    assert [name.split(":")[0] for name in result.damaged_files] == ["cut.jsonl.gz", "cut.parquet"]
    assert "damaged files, quarantined whole: cut.jsonl.gz: not a whole gzip stream" in result.summary()
    damaged = table(spark, settings, "quarantine").filter(F.array_contains("reason_codes", "damaged_file"))
    rows = sorted(damaged.collect(), key=lambda row: row.source_file)
    assert [Path(row.source_file).name for row in rows] == ["cut.jsonl.gz", "cut.parquet"]
    assert rows[0].reasons.startswith("the file could not be read whole: not a whole gzip stream")
    assert "not a readable Parquet file" in rows[1].reasons and rows[1].dataset == "events"
    (dq,) = table(spark, settings, "dq_results").collect()
    assert dq.quarantined_by_reason["damaged_file"] == 2


def test_the_events_of_an_offer_deleted_since_are_accepted(spark, tmp_path):
    generate(tmp_path / "sample", DAY, days=1, seed=4, events_per_day=200, profiles=100)
    (data_file,) = (tmp_path / "sample" / "events" / DAY.isoformat()).glob("*.json*")
    events_naming = Counter(  # offer id -> events that name it
        offer
        for event in map(json.loads, data_file.read_text().splitlines())
        for offer in {i["id"] for p in event["_experience"]["decisioning"]["propositions"] for i in p["items"]}
    )
    spec = yaml.safe_load((tmp_path / "sample" / "catalog.yaml").read_text())
    fallbacks = {a.get("fallback_offer") for decision in spec["decisions"] for a in decision["placements"]}
    deleted = next(offer for offer, _ in events_naming.most_common() if offer not in fallbacks)
    spec["offers"] = [offer for offer in spec["offers"] if offer["id"] != deleted]
    for assignment in (a for decision in spec["decisions"] for a in decision["placements"]):
        assignment["eligible_offers"] = [o for o in assignment.get("eligible_offers", []) if o != deleted]
    (tmp_path / "sample" / "without.yaml").write_text(yaml.safe_dump(spec))
    settings = load_settings(home=tmp_path)
    registry = Registry(settings)
    registry.commit(load_catalog(tmp_path / "sample" / "catalog.yaml"), datetime(2026, 11, 1, tzinfo=UTC))
    registry.commit(load_catalog(tmp_path / "sample" / "without.yaml"), datetime(2026, 11, 2, tzinfo=UTC))
    assert deleted not in {offer.id for offer in registry.catalog().offers}

    result = ingest_one(spark, settings, DAY)
    assert result.success and "unknown_offer" not in result.quarantined_by_reason
    kept = table(spark, settings, "interactions").filter(F.col("offer_id") == deleted)
    assert kept.select("event_id").distinct().count() == events_naming[deleted]
    # the registry's later versions only: an offer deleted before the events' lateness window began is unknown
    assert deleted not in registry.offer_ids_since(datetime.now(UTC))
    assert deleted in registry.offer_ids_since(datetime(2026, 10, 1, tzinfo=UTC))
