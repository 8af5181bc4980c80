"""Ranking methods, fallbacks and the publish gate on hand-built candidates."""

from __future__ import annotations

from datetime import date

import pandas as pd

from offerrank.jobs.publish import gate_problems
from offerrank.jobs.rank import Candidate, rank_placement

RUN = date(2026, 11, 3)


def frame(method, rows, exploration=None, segment="*"):
    return pd.DataFrame([
        {"decision_id": "d", "placement_id": "p", "channel": "web", "segment": segment,
         "ranking": {"ai_model": "ai_model:m", "formula": "formula:f"}.get(method, method),
         "model_name": "m" if method == "ai_model" else method, "offer_id": offer, "priority": priority,
         "formula_score": formula, "is_fallback": fallback, "exploration_share": exploration,
         "alpha": alpha, "beta": beta, "impressions": 0, "conversions": 0, "cold_start": cold}
        for offer, priority, formula, fallback, alpha, beta, cold in rows
    ])


def test_priority_and_formula_rankings():
    rows = [("a", 10, 5.0, False, 1.0, 1.0, True), ("b", 30, 1.0, False, 1.0, 1.0, True),
            ("c", 30, 9.0, False, 1.0, 1.0, True), ("fb", 1, None, True, 1.0, 1.0, True)]
    by_priority = rank_placement(frame("priority", rows), RUN)
    assert by_priority[["offer_id", "rank", "score", "reason"]].values.tolist() == [
        ["b", 1, 30.0, "priority"], ["c", 2, 30.0, "priority"], ["a", 3, 10.0, "priority"]]
    by_formula = rank_placement(frame("formula", rows), RUN)
    assert by_formula["offer_id"].tolist() == ["c", "a", "b"]


def test_the_fallback_offer_when_nothing_is_eligible():
    ranked = rank_placement(frame("ai_model", [("fb", 1, None, True, 1.0, 1.0, True)], 0.1), RUN)
    assert ranked[["offer_id", "rank", "reason"]].values.tolist() == [["fb", 1, "fallback"]]


def test_ai_ranking_is_seeded_per_run():
    rows = [("a", 1, None, False, 30.0, 970.0, False), ("b", 1, None, False, 31.0, 969.0, False),
            ("n", 1, None, False, 1.0, 1.0, True), ("fb", 1, None, True, 1.0, 1.0, True)]
    first, again = rank_placement(frame("ai_model", rows, 0.1), RUN), rank_placement(frame("ai_model", rows, 0.1), RUN)
    pd.testing.assert_frame_equal(first, again)
    assert "fb" not in first["offer_id"].tolist()
    assert first.set_index("offer_id").loc["n", "reason"] == "cold_start"
    in_segment = rank_placement(frame("ai_model", rows, 0.1, segment="loyal"), RUN)
    assert in_segment["segment"].unique().tolist() == ["loyal"]
    assert in_segment["p_best"].tolist() != first["p_best"].tolist()  # each segment draws with its own seed


def test_the_gate_names_placements_without_offers_and_ineligible_offers():
    candidates = [Candidate("d", "p", "web", "priority", "priority", "a", 1, None, False, None, "*"),
                  Candidate("d", "p", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
                  Candidate("d", "q", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
                  Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "*"),
                  Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "loyal")]
    ranked = pd.DataFrame([{"decision_id": "d", "placement_id": "p", "segment": "*", "offer_id": "zzz", "reason": "priority"},
                           {"decision_id": "d", "placement_id": "p", "segment": "*", "offer_id": "fb", "reason": "priority"},
                           {"decision_id": "d", "placement_id": "r", "segment": "*", "offer_id": "a", "reason": "model"}])
    assert gate_problems(ranked, candidates) == [
        "placement d/q would get no offer",
        "placement d/r would get no offer in segment loyal",
        "offer zzz ranked for d/p is not eligible",
        "offer fb ranked for d/p is not eligible",
    ]


def test_ranking_methods_stage_side_by_side_when_run_at_once(spark, tmp_path):
    """The DAG's mapped rank tasks write `ranking_stage` concurrently, the first ones into a table not yet created."""
    from concurrent.futures import ThreadPoolExecutor

    from offerrank.catalog import load_catalog
    from offerrank.generator import generate
    from offerrank.jobs.rank import stage_unit
    from offerrank.settings import load_settings

    generate(tmp_path / "sample", RUN, days=1, seed=3, events_per_day=100)
    settings = load_settings(home=tmp_path, spark_shuffle_partitions=2)
    catalog = load_catalog(tmp_path / "sample" / "catalog.yaml")
    units = [method.unit for method in catalog.ranking_methods()]
    with ThreadPoolExecutor(len(units)) as pool:
        staged = list(pool.map(lambda unit: stage_unit(spark, settings, catalog, RUN, "run-1", unit), units))
    assert len(units) == 5 and all(count > 0 for count in staged)
    stage = spark.read.format("delta").load(settings.table_path("ranking_stage"))
    assert {r.unit: r["count"] for r in stage.groupBy("unit").count().collect()} == dict(zip(units, staged))
