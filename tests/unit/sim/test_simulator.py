"""The simulator's world: true rates after drifts, live offers, and the catalog it applies (no Spark)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from offerrank.catalog import build_catalog
from offerrank.sim.simulator import World, load_world

WORLD = {
    "start": "2026-11-01",
    "requests_per_day": 100,
    "segments": {"a": 0.6, "b": 0.4},
    "placements": [
        {"id": "hero", "channel": "web", "share": 0.5, "slots": 2, "model": "auto"},
        {"id": "push", "channel": "push", "share": 0.5, "model": "pers", "personalized": True},
    ],
    "offers": [
        {"id": "h1", "placements": ["hero"], "rate": 0.02, "segment_rates": {"b": 0.08}},
        {"id": "h2", "placements": ["hero"], "rate": 0.05, "first_day": 3, "last_day": 4},
        {"id": "p1", "placements": ["push"], "rate": 0.04},
    ],
    "drifts": [{"day": 2, "offer": "h1", "rate": 0.01, "segment": "b"}, {"day": 4, "offer": "h1", "rate": 0.03}],
}


def test_true_rates_follow_segments_and_drifts_and_offers_their_live_days():
    world = World.model_validate(WORLD)
    h1 = world.offers[0]
    assert [world.true_rate(h1, "b", day) for day in (1, 2, 3, 4)] == [0.08, 0.01, 0.01, 0.03]
    assert world.true_rate(h1, "a", 1) == 0.02
    assert world.segment_rate(h1, "*", 1) == pytest.approx(0.6 * 0.02 + 0.4 * 0.08)
    assert [[o.id for o in world.live_offers("hero", day)] for day in (2, 3, 5)] == [["h1"], ["h1", "h2"], ["h1"]]


def test_the_world_applies_as_a_valid_catalog_of_one_decision_per_placement():
    world = World.model_validate(WORLD)
    catalog = build_catalog(world.catalog(days=5, events=Path("/tmp/events")), "world")
    assert {d.id: d.placements[0].ranking for d in catalog.decisions} == {
        "sim-hero": "ai_model:auto",
        "sim-push": "ai_model:pers",
    }
    models = {m.name: m for m in catalog.ai_models}
    assert models["pers"].segments == ("a", "b") and models["auto"].type.value == "auto_optimization"
    h2 = catalog.get("offers", "h2")
    assert (str(h2.start_date), str(h2.end_date)) == ("2026-11-03", "2026-11-04")


def test_a_world_naming_what_it_lacks_is_refused_with_every_problem():
    broken = {**WORLD, "drifts": [{"day": 2, "offer": "nope", "rate": 0.1}]}
    broken["offers"] = [*WORLD["offers"], {"id": "x", "placements": ["side"], "rate": 0.1}]
    with pytest.raises(ValidationError, match="unknown placement side.*unknown offer nope"):
        World.model_validate(broken)


@pytest.mark.parametrize("name", ["steady", "drift"])
def test_the_example_worlds_load(name):
    world = load_world(Path(__file__).parents[3] / "examples" / "worlds" / f"{name}.yaml")
    assert len(world.offers) >= 38 and world.requests_per_day == 20_000


def test_hostile_world_files_are_one_line_errors_with_exit_2(tmp_path, capsys):
    # issue #54, item 15: what YAML or Python cannot read is refused naming the file, never a traceback
    from offerrank.cli.main import main
    from offerrank.errors import BadInput
    from tests.factories import hostile_files

    (tmp_path / "files").mkdir()
    for path, problem in hostile_files(tmp_path / "files"):
        with pytest.raises(BadInput, match=problem):
            load_world(path)
        assert main(["--home", str(tmp_path), "simulate", "--world", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"offerrank simulate: {path}: ") and err.count("\n") == 1, err


def _with(path: str, value) -> dict:
    """WORLD with one field replaced: `path` is dotted, list items by position (`placements.0.slots`)."""
    import copy

    world = copy.deepcopy(WORLD)
    *parents, last = path.split(".")
    node = world
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    node[int(last) if isinstance(node, list) else last] = value
    return world


BAD_WORLDS = [
    ("requests_per_day", 10**12, "requests_per_day: Input should be less than or equal to 1000000"),
    ("profiles", 0, "profiles: Input should be greater than 0"),
    ("placements.0.slots", 5000, "placements.0.slots: Input should be less than or equal to 50"),
    ("placements.0.channel", "tv", "placements.0.channel: Input should be 'web'"),
    ("exploration_share", 7, "exploration_share: Input should be less than or equal to 1"),
    ("segments", {"a": -0.5, "b": 1.0}, "segments.a: Input should be greater than or equal to 0"),
    ("segments", {"a": 0, "b": 0}, "segments: Value error, shares must add up to a finite number above zero"),
    ("segments", {}, "segments: Value error, shares must add up"),
    ("segments", {"not a segment": 1}, "segments.not a segment.\\[key\\]: String should match pattern"),
    ("context", {"device": {"mobile": 0.0}}, "context.device: Value error, shares must add up"),
    ("context", {"channel": {"web": 1.0}}, "context: Value error, context key must be one of device, hour"),
    ("context", {"hour": {"25": 1.0}}, "context: Value error, context hour must be a whole hour 0-23"),
    ("offers.0.rate", float("nan"), "offers.0.rate: Input should be a finite number"),
    ("offers.1.last_day", 2, "offers.1: Value error, last_day 2 is before first_day 3"),
    ("drifts.0.segment", "c", "drift: unknown segment c"),
    ("drifts.0.day", 0, "drifts.0.day: Input should be greater than or equal to 1"),
    ("exploration", 0.2, "exploration: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("field", "value", "problem"), BAD_WORLDS, ids=[case[0] for case in BAD_WORLDS])
def test_a_world_out_of_bounds_is_one_line_exit_2_and_leaves_no_out_folder(tmp_path, capsys, field, value, problem):
    # issue #54, item 15: bounded world fields; nothing is created under --out, so a corrected re-run is accepted
    import yaml

    from offerrank.cli.main import main

    world_file = tmp_path / "world.yaml"
    world_file.write_text(yaml.safe_dump(_with(field, value)), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--home", str(tmp_path), "simulate", "--world", str(world_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"offerrank simulate: {world_file}: "), err
    assert re.search(problem, err), err
    assert not out.exists()


def test_a_world_whose_catalog_is_refused_fails_before_creating_out(tmp_path, capsys):
    import yaml

    from offerrank.cli.main import main

    world_file = tmp_path / "world.yaml"
    world_file.write_text(yaml.safe_dump(_with("offers.2.id", "p 1")), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--home", str(tmp_path), "simulate", "--world", str(world_file), "--out", str(out)]) == 2
    assert "offers[p 1].id: String should match pattern" in capsys.readouterr().err
    assert not out.exists()
