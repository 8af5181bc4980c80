"""Profile-segment snapshots: parsing, validation routing, the snapshot a run date uses, the load itself."""

from __future__ import annotations

import json
from datetime import date

import pytest

from offerrank.catalog import Feature
from offerrank.engines.quality import load_suite
from offerrank.events.quarantine import route_records
from offerrank.jobs.profiles import SnapshotRejected, memberships, run, snapshot_folder
from offerrank.settings import load_settings


def profile(ecid, attributes=None, **segments):
    ups = {
        name: {"status": status, "lastQualificationTime": "2026-10-31T00:00:00Z"} for name, status in segments.items()
    }
    identity = {"identityMap": {"ECID": [{"id": ecid, "primary": True}]}, "segmentMembership": {"ups": ups}}
    return json.dumps(identity | (attributes or {}))


def routed(spark, settings, lines):
    records = spark.createDataFrame([("f.jsonl", line) for line in lines], "source_file string, raw string")
    return route_records(
        memberships(records, settings.max_record_bytes), load_suite(settings.expectations_dir, "profile_segments"), {}
    )


def test_memberships_are_read_per_segment_and_bad_ones_get_reason_codes(spark, settings):
    rows = routed(
        spark,
        settings,
        [
            profile("e1", loyal="realized", vip="exited"),
            profile("e2", **{"bad segment!": "realized"}),
            profile("e3", loyal="pending"),
            json.dumps({"segmentMembership": {"ups": {"loyal": {"status": "realized"}}}}),
            "{not json",
            profile("e4"),  # in no segment: no row
        ],
    ).collect()
    by_line = sorted(((r.profile_id, r.segment, r.status, tuple(r.reason_codes)) for r in rows), key=str)
    assert by_line == sorted(
        [
            (None, None, None, ("malformed_json",)),
            (None, "loyal", "realized", ("missing_identity",)),
            ("e1", "loyal", "realized", ()),
            ("e1", "vip", "exited", ()),
            ("e2", "bad segment!", "realized", ("invalid_segment_id",)),
            ("e3", "loyal", "pending", ("unknown_segment_status",)),
        ],
        key=str,
    )


def test_a_run_date_uses_the_latest_snapshot_on_or_before_it(tmp_path):
    for name in ("2026-10-01", "2026-11-01", "2026-12-01", "notes"):
        (tmp_path / name).mkdir()
    assert snapshot_folder(str(tmp_path), date(2026, 11, 15)) == (date(2026, 11, 1), str(tmp_path / "2026-11-01"))
    assert snapshot_folder(str(tmp_path), date(2026, 9, 1)) is None
    # with a completeness marker set, only a folder that holds it counts (issue #54, item 11)
    (tmp_path / "2026-10-01" / "_SUCCESS").write_text("")
    assert snapshot_folder(str(tmp_path), date(2026, 11, 15), "_SUCCESS") == (
        date(2026, 10, 1),
        str(tmp_path / "2026-10-01"),
    )


def test_a_snapshot_without_its_marker_is_not_loaded_and_the_last_complete_one_stays(spark, tmp_path):
    # issue #54, item 11: a partial snapshot replaced 50,000 memberships
    settings = load_settings(home=tmp_path, landing_marker="_SUCCESS")
    profiles = tmp_path / "sample" / "profiles"
    complete, partial = profiles / "2026-11-01", profiles / "2026-11-02"
    for folder in (complete, partial):
        folder.mkdir(parents=True)
    (complete / "profiles.jsonl").write_text(
        "\n".join(profile(f"e{n}", loyal="realized", vip="realized") for n in range(10)) + "\n"
    )
    (complete / "_SUCCESS").write_text("")
    (partial / "profiles.jsonl").write_text(profile("e99", loyal="realized") + "\n")  # still being written
    result = run(spark, settings, date(2026, 11, 2))
    assert (result.snapshot_date, result.profiles, result.memberships) == (date(2026, 11, 1), 10, 20)
    assert "snapshot 2026-11-02 not loaded: no _SUCCESS marker yet" in result.summary()
    members = spark.read.format("delta").load(settings.table_path("profile_segments"))
    assert {r.snapshot_date for r in members.select("snapshot_date").distinct().collect()} == {date(2026, 11, 1)}

    (partial / "_SUCCESS").write_text("")  # the producer finished the day: now it is the one used
    assert run(spark, settings, date(2026, 11, 2)).snapshot_date == date(2026, 11, 2)


def test_loading_a_snapshot_writes_members_and_quarantine_and_rejects_a_bad_one(spark, tmp_path):
    settings = load_settings(home=tmp_path, max_quarantine_share=0.3)
    good = tmp_path / "sample" / "profiles" / "2026-11-01"
    good.mkdir(parents=True)
    (good / "profiles.jsonl").write_text(
        "\n".join(
            [
                profile("e1", loyal="realized", vip="exited"),
                profile("e2", loyal="existing", vip="realized"),
                profile("e3", vip="realized"),
                profile("e4", loyal="nonsense"),
            ]
        )
        + "\n"
    )
    result = run(spark, settings, date(2026, 11, 2))
    assert (result.snapshot_date, result.profiles, result.memberships, result.quarantined) == (
        date(2026, 11, 1),
        3,
        4,
        1,
    )
    members = spark.read.format("delta").load(settings.table_path("profile_segments")).collect()
    assert sorted((r.profile_id, r.segment) for r in members) == [
        ("e1", "loyal"),
        ("e2", "loyal"),
        ("e2", "vip"),
        ("e3", "vip"),
    ]
    (quarantined,) = spark.read.format("delta").load(settings.table_path("profile_quarantine")).collect()
    assert (
        quarantined.reason_codes == ["unknown_segment_status"]
        and "not realized, existing or exited" in quarantined.reasons
    )
    assert run(spark, settings, date(2026, 11, 2)).memberships == 4  # a rerun gives the same table

    bad = tmp_path / "sample" / "profiles" / "2026-11-05"
    bad.mkdir()
    (bad / "profiles.jsonl").write_text("{broken\n" + profile("e5", loyal="realized") + "\n")
    with pytest.raises(SnapshotRejected, match="1 of 2 memberships failed validation"):
        run(spark, settings, date(2026, 11, 6))
    snapshots = {
        r.snapshot_date for r in spark.read.format("delta").load(settings.table_path("profile_segments")).collect()
    }
    assert snapshots == {date(2026, 11, 1)}  # the last good snapshot stays the one in use


def test_contextual_attributes_are_loaded_and_bad_values_quarantined_with_reasons(spark, tmp_path):
    settings = load_settings(home=tmp_path, max_quarantine_share=0.5)
    folder = tmp_path / "sample" / "profiles" / "2026-11-01"
    folder.mkdir(parents=True)
    lines = [
        profile("e1", {"person": {"age": 34, "tier": "gold"}, "homeAddress": {"countryCode": "DE"}}, loyal="realized"),
        profile("e2", {"person": {"age": "old", "tier": "diamond"}}),  # not a number; not an allowed tier
        profile("e3", {"person": {"age": 70}, "homeAddress": {"countryCode": {"iso": "FR"}}}),  # an object
        profile("e4"),  # no attributes: nothing loaded, the model sees `unknown`
    ]
    (folder / "profiles.jsonl").write_text("\n".join(lines) + "\n")
    attributes = [
        Feature(name="person.age", buckets=[40]),
        Feature(name="person.tier", values=["gold", "silver"]),
        Feature(name="homeAddress.countryCode"),
    ]
    result = run(spark, settings, date(2026, 11, 1), attributes)
    assert (result.attribute_values, result.quarantined) == (4, 3)
    loaded = spark.read.format("delta").load(settings.table_path("profile_attributes")).collect()
    assert sorted((r.profile_id, r.attribute, r.value) for r in loaded) == [
        ("e1", "homeAddress.countryCode", "DE"),
        ("e1", "person.age", "34"),
        ("e1", "person.tier", "gold"),
        ("e3", "person.age", "70"),
    ]
    quarantined = spark.read.format("delta").load(settings.table_path("profile_quarantine")).collect()
    assert sorted((r.profile_id, r.attribute, tuple(r.reason_codes)) for r in quarantined) == [
        ("e2", "person.age", ("attribute_not_numeric",)),
        ("e2", "person.tier", ("attribute_value_not_allowed",)),
        ("e3", "homeAddress.countryCode", ("attribute_not_scalar",)),
    ]
    assert all(r.reasons for r in quarantined)

    later = tmp_path / "sample" / "profiles" / "2026-11-05"
    later.mkdir()
    (later / "profiles.jsonl").write_text(profile("e1", {"person": {"age": "n/a"}}, loyal="realized") + "\n")
    rejected = run(spark, settings, date(2026, 11, 5), attributes)
    assert rejected.attributes_rejected and rejected.memberships == 1 and "REJECTED" in rejected.summary()
    snapshots = {
        r.snapshot_date for r in spark.read.format("delta").load(settings.table_path("profile_attributes")).collect()
    }
    assert snapshots == {date(2026, 11, 1)}  # the last good attributes stay in use
