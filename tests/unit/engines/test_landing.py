"""What a landing folder's data files are: names, temporary uploads, symbolic links, the completeness marker."""

from __future__ import annotations

from offerrank.engines.landing import date_folders, landed, scan


def test_only_regular_data_files_are_read_and_the_rest_is_reported(tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("a host file\n")
    folder = tmp_path / "2026-11-02"
    folder.mkdir()
    for name in ("a.jsonl", "b.json", "c.jsonl.gz", "d.parquet", "_SUCCESS", ".events.jsonl.Xy12"):
        (folder / name).write_text("")
    for name in ("a.jsonl_.gstmp", "b.jsonl._COPYING_", "notes.txt"):
        (folder / name).write_text("")
    (folder / "linked.jsonl").symlink_to(secret)
    (folder / "nested.jsonl").mkdir()

    found = scan(folder)
    assert [p.rsplit("/", 1)[1] for p in found.files["json"]] == ["a.jsonl", "b.json", "c.jsonl.gz"]
    assert [p.rsplit("/", 1)[1] for p in found.files["parquet"]] == ["d.parquet"]
    assert found.skipped == [
        ".events.jsonl.Xy12: not a data file name (*.json, *.jsonl[.gz], *.parquet)",
        "a.jsonl_.gstmp: not a data file name (*.json, *.jsonl[.gz], *.parquet)",
        "b.jsonl._COPYING_: not a data file name (*.json, *.jsonl[.gz], *.parquet)",
        "nested.jsonl: not a data file name (*.json, *.jsonl[.gz], *.parquet)",
        "notes.txt: not a data file name (*.json, *.jsonl[.gz], *.parquet)",
    ]
    assert found.links == [str(folder / "linked.jsonl")]  # for ingest to quarantine, unread


def test_a_symbolically_linked_date_folder_is_neither_listed_nor_scanned(tmp_path):
    # issue #54, item 12: a date folder linked out of the landing root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text("{}\n")
    root = tmp_path / "root"
    (root / "2026-11-01").mkdir(parents=True)
    (root / "2026-11-02").symlink_to(outside, target_is_directory=True)
    assert date_folders(str(root)) == [str(root / "2026-11-01")]
    found = scan(root / "2026-11-02")
    assert found.empty and not found.links
    assert found.skipped == [
        "2026-11-02: a symbolic link: landing never follows links out of its root, nothing was read from it"
    ]


def test_a_folder_has_landed_on_its_first_data_file_or_with_a_marker_set_on_the_marker(tmp_path):
    assert not landed(tmp_path / "missing", "") and not landed(tmp_path, "")
    (tmp_path / "upload.jsonl._COPYING_").write_text("")
    assert not landed(tmp_path, "")
    (tmp_path / "part-1.jsonl").write_text("")
    assert landed(tmp_path, "") and not landed(tmp_path, "_SUCCESS")
    (tmp_path / "_SUCCESS").write_text("")
    assert landed(tmp_path, "_SUCCESS")
