"""The Delta-backed registry: idempotent apply, model lifecycle and its refusals, history and time travel."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime

import pytest
import yaml

from offerrank.catalog import CatalogError, build_catalog, load_catalog
from offerrank.catalog.registry import Registry
from offerrank.cli import main as cli
from offerrank.settings import load_settings
from offerrank.sim.generator import generate

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("registry-home")
    generate(home / "sample", date(2026, 11, 1), days=1, events_per_day=300)
    return home


@pytest.fixture(scope="module")
def registry(home):
    return Registry(load_settings(home=home))


@pytest.fixture(scope="module")
def applied(registry, home):
    return registry.commit(load_catalog(home / "sample" / "catalog.yaml"), NOW)


def run(home, capsys, *args):
    code = cli(["--home", str(home), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_apply_creates_everything_then_is_idempotent(registry, applied, home, capsys):
    assert len(applied.created) == 40 and applied.version == 0
    before = registry.version()  # other tests change the registry and put the sample back
    code, out = run(home, capsys, "apply", "-f", str(home / "sample" / "catalog.yaml"))
    assert code == 0
    assert "created: -\nchanged: -\ndeleted: -\nleft alone: 40 entities\nregistry unchanged (no new version)" in out
    assert registry.version() == before


def test_apply_reports_changes_and_deletions_in_one_commit(registry, applied, home, tmp_path):
    data = yaml.safe_load((home / "sample" / "catalog.yaml").read_text())
    data["offers"][0]["priority"] = 99
    data["formulas"][0]["expression"] = "priority * 2"
    for decision in data["decisions"]:
        for placement in decision["placements"]:
            placement["eligible_offers"] = [o for o in placement["eligible_offers"] if o != "offer-024"]
    data["offers"] = [o for o in data["offers"] if o["id"] != "offer-024"]
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "events").symlink_to(home / "sample" / "events")
    before = registry.version()
    changes = registry.commit(load_catalog(tmp_path / "catalog.yaml"), NOW)
    assert "offers/offer-001" in changes.changed and any(c.startswith("decisions/") for c in changes.changed)
    assert "formulas/margin-boost" in changes.changed
    assert changes.deleted == ["offers/offer-024"]
    assert changes.version == before + 1
    assert registry.catalog().get("offers", "offer-001").priority == 99
    assert registry.catalog(version=before).get("offers", "offer-024") is not None  # time travel
    registry.commit(load_catalog(home / "sample" / "catalog.yaml"), NOW)  # back to the sample


def test_the_life_of_a_model(registry, applied, home, capsys):
    code, out = run(
        home,
        capsys,
        "models",
        "create",
        "promo-push",
        "--type",
        "auto_optimization",
        "--dataset",
        "events",
        "--description",
        "Push promotions",
        "--lookback-days",
        "7",
        "--min-impressions",
        "50",
    )
    assert code == 0, out
    model = registry.catalog().get("ai_models", "promo-push")
    assert (
        model.status.value,
        model.lookback_days,
        model.cold_start.min_impressions,
        model.cold_start.min_conversions,
    ) == ("draft", 7, 50, 5)
    assert run(home, capsys, "models", "activate", "promo-push")[0] == 0
    assert run(home, capsys, "models", "update", "promo-push", "--exploration-share", "0.2")[0] == 0
    code, out = run(home, capsys, "models", "list")
    assert "promo-push               auto_optimization  active          7d    0.20  events" in out
    assert run(home, capsys, "models", "deactivate", "promo-push")[0] == 0
    code, out = run(home, capsys, "models", "history", "promo-push")
    who = getpass.getuser()
    assert [line.split(maxsplit=5)[3:] for line in out.strip().splitlines()[1:]] == [
        [who, "draft", "created"],
        [who, "active", "status draft -> active"],
        [who, "active", "exploration_share 0.1 -> 0.2"],
        [who, "inactive", "status active -> inactive"],
    ]
    assert run(home, capsys, "models", "delete", "promo-push")[0] == 0
    assert registry.catalog().get("ai_models", "promo-push") is None
    assert (
        run(home, capsys, "models", "history", "promo-push")[1].strip().splitlines()[-1].endswith(" -         deleted")
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("models", "create", "auto-web", "--type", "auto_optimization", "--dataset", "events"),
            "an AI model named 'auto-web' already exists",
        ),
        (
            ("models", "deactivate", "auto-web"),
            "cannot deactivate AI model 'auto-web': active decision placements use it "
            "(dp-app-reengage/app-home-card, dp-web-home/home-hero)",
        ),
        (("models", "delete", "auto-email"), "cannot delete AI model 'auto-email'"),
        (("models", "create", "x", "--type", "auto_optimization", "--dataset", "nope"), "unknown dataset 'nope'"),
        (
            (
                "models",
                "create",
                "p",
                "--type",
                "personalized",
                "--dataset",
                "events",
                *sum((["--segment", f"s{i}"] for i in range(51)), []),
            ),
            "51 segments given; at most 50",
        ),
        (("models", "show", "ghost"), "no AI model named 'ghost'"),
    ],
)
def test_model_refusals_are_clear_messages(applied, home, capsys, args, message):
    code, out = run(home, capsys, *args)
    assert code == 2
    assert message in out and "Traceback" not in out


def test_a_model_cannot_go_back_to_draft(registry, applied):
    data = registry.catalog().model_dump(mode="json")
    data["ai_models"][0]["status"] = "draft"
    for decision in data["decisions"]:
        decision["status"] = "draft"
    with pytest.raises(CatalogError, match="cannot go from active to draft"):
        registry.commit(build_catalog(data, "test"), NOW)


def test_a_dataset_without_the_layout_is_refused(registry, applied, tmp_path):
    (tmp_path / "2026-11-01").mkdir()
    (tmp_path / "2026-11-01" / "x.jsonl").write_text('{"order": 1}\n')
    data = registry.catalog().model_dump(mode="json")
    data["datasets"][0]["path"] = str(tmp_path)
    with pytest.raises(CatalogError, match="does not have the proposition-interactions layout"):
        registry.commit(build_catalog(data, "test"), NOW)


def test_a_dataset_with_no_event_files_yet_is_applied_with_a_warning(registry, applied, home, tmp_path, capsys):
    # issue #54, item 17: a new brand configures its models before its first events land
    data = yaml.safe_load((home / "sample" / "catalog.yaml").read_text())
    data["datasets"] = [
        {"name": "events", "path": str(home / "sample" / "events")},
        {"name": "new-brand", "path": str(tmp_path / "new-brand")},
    ]
    (tmp_path / "new-brand").mkdir()
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(data))
    try:
        code, out = run(home, capsys, "apply", "-f", str(tmp_path / "catalog.yaml"))
        assert code == 0 and "created: datasets/new-brand\nchanged: -\ndeleted: -" in out
        assert f"warning: datasets[new-brand]: no event files under {tmp_path / 'new-brand'} yet" in out
        assert [d.name for d in registry.catalog().datasets] == ["events", "new-brand"]
    finally:
        registry.commit(load_catalog(home / "sample" / "catalog.yaml"), NOW)  # back to the sample


def test_history_and_time_travel_say_which_versions_vacuum_left_readable(home, capsys, tmp_path):
    from deltalake import DeltaTable

    settings = load_settings(home=tmp_path)
    registry = Registry(settings)
    catalog = load_catalog(home / "sample" / "catalog.yaml")
    registry.commit(catalog, NOW, check_datasets=False)
    data = catalog.model_dump(mode="json")
    for status in ("inactive", "active"):
        data["ai_models"][0]["status"] = status
        data["decisions"] = [d for d in data["decisions"] if "auto-web" not in json.dumps(d)]
        registry.commit(build_catalog(data, "test"), NOW, check_datasets=False)
    DeltaTable(settings.table_path("registry")).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )

    versions = registry.readable_versions()  # the last commit's, and VACUUM's own commits after it
    assert versions[0] == 2 and len(versions) > 1
    history = registry.history("ai_models", "auto-web")
    assert [(e["version"], e["readable"]) for e in history] == [(0, False), (1, False), (2, True)]
    assert history[-1]["spec"]["status"] == "active"
    code, out = run(tmp_path, capsys, "models", "history", "auto-web")
    assert code == 0 and out.strip().splitlines()[1].endswith("no longer readable (VACUUM removed its files)")
    with pytest.raises(CatalogError, match=r"registry version 0 is no longer readable .* readable versions: 2, 3"):
        registry.catalog(0)
    assert registry.catalog(2).get("ai_models", "auto-web").status.value == "active"


def test_only_ranking_managers_change_models_and_who_did_is_in_the_history(home, capsys, tmp_path, monkeypatch):
    from deltalake import DeltaTable

    registry = Registry(load_settings(home=tmp_path))
    catalog = load_catalog(home / "sample" / "catalog.yaml")
    assert registry.commit(catalog, NOW, check_datasets=False, actor="alice").actor == "alice"
    monkeypatch.setenv("OFFERRANK_RANKING_MANAGERS", '["alice", "ops-bot"]')
    monkeypatch.setenv("OFFERRANK_ACTOR", "mallory")

    code, out = run(tmp_path, capsys, "models", "update", "auto-web", "--exploration-share", "0.5")
    assert code == 2 and "Traceback" not in out
    assert "'mallory' may not manage ranking strategies (the catalog, AI models, decisions): only alice, ops-bot" in out
    assert "nothing changed (it would have changed ai_models/auto-web)" in out
    assert registry.catalog().get("ai_models", "auto-web").exploration_share == 0.1
    refusals = DeltaTable(str(tmp_path / "warehouse" / "registry_refusals")).to_pandas()
    assert refusals[["actor", "changes"]].to_dict("records") == [{"actor": "mallory", "changes": "ai_models/auto-web"}]

    monkeypatch.setenv("OFFERRANK_ACTOR", "ops-bot")
    assert run(tmp_path, capsys, "models", "update", "auto-web", "--exploration-share", "0.5")[0] == 0
    code, out = run(tmp_path, capsys, "models", "history", "auto-web")
    rows = [line.split(maxsplit=5)[3:] for line in out.strip().splitlines()[1:]]
    assert rows == [["alice", "active", "created"], ["ops-bot", "active", "exploration_share 0.1 -> 0.5"]]


def test_a_metric_other_than_conversion_rate_is_refused_saying_so(registry, applied):
    data = registry.catalog().model_dump(mode="json")
    data["ai_models"][0]["metric"] = "revenue"
    with pytest.raises(CatalogError, match="metric 'revenue' is not served: 'conversion_rate' .clicks per impression"):
        build_catalog(data, "test")


def race(monkeypatch, times: int) -> list[int]:
    """Make another writer (`bob`) really commit the registry right after each of the next `times` reads a change
    bases itself on: it raises the priority of offer-001 by one each time. Returns bob's versions."""
    read, versions = Registry._read, []

    def bump(catalog):
        data = catalog.model_dump(mode="json")
        data["offers"][0]["priority"] += 1
        return build_catalog(data, "bob")

    def read_then_race(self):
        taken = read(self)
        if len(versions) < times:
            monkeypatch.setattr(Registry, "_read", read)  # bob reads without racing himself
            versions.append(Registry(self.settings).commit(bump, NOW, check_datasets=False, actor="bob").version)
            monkeypatch.setattr(Registry, "_read", read_then_race)
        return taken

    monkeypatch.setattr(Registry, "_read", read_then_race)
    return versions


def test_a_models_update_racing_another_commit_is_redone_on_the_new_version_keeping_both(
    home, tmp_path, capsys, monkeypatch
):
    # issue #54, item 16: two real commits race; the loser re-reads, re-validates and retries once
    registry = Registry(load_settings(home=tmp_path))
    registry.commit(load_catalog(home / "sample" / "catalog.yaml"), NOW, check_datasets=False, actor="alice")
    priority = registry.catalog().get("offers", "offer-001").priority
    bob = race(monkeypatch, times=1)

    code, out = run(tmp_path, capsys, "models", "update", "auto-web", "--exploration-share", "0.5")
    assert code == 0 and "auto-web: update done (registry version 2)" in out, out
    assert bob == [1]
    catalog = registry.catalog()
    assert catalog.get("ai_models", "auto-web").exploration_share == 0.5
    assert catalog.get("offers", "offer-001").priority == priority + 1  # bob's change is kept, not overwritten
    assert [c["actor"] for c in registry._versions()] == ["alice", "bob", getpass.getuser()]


def test_an_apply_racing_another_commit_is_validated_again_on_the_new_version(home, tmp_path, monkeypatch):
    registry = Registry(load_settings(home=tmp_path))
    catalog = load_catalog(home / "sample" / "catalog.yaml")
    registry.commit(catalog, NOW, check_datasets=False, actor="alice")
    data = catalog.model_dump(mode="json")
    data["ai_models"][0]["exploration_share"] = 0.3
    desired = build_catalog(data, "alice")
    bob = race(monkeypatch, times=1)

    changes = registry.commit(desired, NOW, check_datasets=False, actor="alice")
    assert bob == [1] and changes.version == 2
    # the diff is against bob's version: the file is the truth, so bob's priority is put back
    assert changes.changed == [f"ai_models/{data['ai_models'][0]['name']}", "offers/offer-001"]
    stored, name = registry.catalog(), data["ai_models"][0]["name"]
    assert stored.get("offers", "offer-001") == desired.get("offers", "offer-001")
    assert stored.get("ai_models", name).exploration_share == 0.3


def test_a_change_losing_the_race_twice_says_nothing_changed_in_one_line(home, tmp_path, capsys, monkeypatch):
    registry = Registry(load_settings(home=tmp_path))
    registry.commit(load_catalog(home / "sample" / "catalog.yaml"), NOW, check_datasets=False, actor="alice")
    data = yaml.safe_load((home / "sample" / "catalog.yaml").read_text())
    data["ai_models"][0]["exploration_share"] = 0.3
    for dataset in data["datasets"]:  # the copy's dataset paths point where the sample's do
        dataset["path"] = str((home / "sample" / dataset["path"]).resolve())
    changed = tmp_path / "catalog.yaml"
    changed.write_text(yaml.safe_dump(data))
    bob = race(monkeypatch, times=2)

    code = cli(["--home", str(tmp_path), "apply", "-f", str(changed)])
    err = capsys.readouterr().err
    assert code == 2 and err == "offerrank apply: the registry changed meanwhile; nothing changed; run it again\n"
    assert bob == [1, 2] and registry.version() == 2
    assert registry.catalog().get("ai_models", data["ai_models"][0]["name"]).exploration_share == 0.1
