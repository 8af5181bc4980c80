"""The publish gate and the content fingerprint on hand-built rankings (no Spark session)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from offerrank.jobs.publish import content_hash, gate_problems, older_than_served
from offerrank.jobs.rank import Candidate


def test_the_gate_names_placements_without_offers_and_ineligible_offers():
    candidates = [
        Candidate("d", "p", "web", "priority", "priority", "a", 1, None, False, None, "*"),
        Candidate("d", "p", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
        Candidate("d", "q", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
        Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "*"),
        Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "loyal"),
    ]
    rows = [
        ("p", "zzz", "priority", 1.0),
        ("p", "fb", "priority", 2.0),
        ("p", "a", "priority", float("inf")),
        ("r", "a", "model", float("nan")),
        ("q", "fb", "fallback", None),
    ]
    ranked = pd.DataFrame(
        [
            {"decision_id": "d", "placement_id": p, "segment": "*", "offer_id": o, "reason": r, "score": s}
            for p, o, r, s in rows
        ]
    )
    assert gate_problems(ranked, candidates) == [
        "placement d/r would get no offer in segment loyal",
        "offer zzz ranked for d/p is not eligible",
        "offer fb ranked for d/p is not eligible",
        "offer a ranked for d/p has no finite score (inf)",
        "offer a ranked for d/r has no finite score (nan)",
    ]


def test_the_fingerprint_ignores_row_order_and_sees_any_change():
    ranked = pd.DataFrame(
        [
            {
                "decision_id": "d",
                "placement_id": "p",
                "channel": "web",
                "segment": "*",
                "rank": r,
                "offer_id": o,
                "score": s,
            }
            for r, o, s in ((1, "a", 0.2), (2, "b", 0.1))
        ]
    )
    assert content_hash(ranked) == content_hash(ranked.iloc[::-1])
    assert content_hash(ranked) != content_hash(ranked.assign(score=[0.2, 0.11]))


def test_a_ranking_older_than_the_served_one_is_refused_with_the_way_back():
    served = {"run_date": date(2026, 11, 7), "ranking_version": 12}
    refusal = older_than_served(date(2026, 11, 1), served)
    assert refusal == (
        "the ranking of 2026-11-01 is older than the one served (of 2026-11-07, version 12); "
        "to serve an earlier ranking on purpose, `offerrank rankings rollback`"
    )
    assert older_than_served(date(2026, 11, 7), served) is None  # a rerun of the served date may publish
    assert older_than_served(date(2026, 11, 8), served) is None
    assert older_than_served(date(2026, 11, 1), None) is None


def test_a_failing_formula_is_confined_to_its_placements_whose_served_lists_are_kept(tmp_path):
    import yaml

    from offerrank.catalog import build_catalog
    from offerrank.jobs.publish import kept_lists
    from offerrank.jobs.rank import RankingFailed, candidates
    from offerrank.sim.generator import generate

    run = date(2026, 11, 1)
    generate(tmp_path, run, days=1, events_per_day=50)
    valid = build_catalog(yaml.safe_load((tmp_path / "catalog.yaml").read_text()), "catalog.yaml")
    # applying such a formula is refused (see test_catalog); this is the net for whatever slips through at night
    failing = valid.formulas[0].model_copy(update={"expression": "priority / (priority - priority)"})
    catalog = valid.model_copy(update={"formulas": (failing,)})
    with pytest.raises(RankingFailed, match="formula 'margin-boost' fails for offer offer-0.*: division by zero"):
        candidates(catalog, run, "formula:margin-boost")
    assert {c.ranking for c in candidates(catalog, run, "priority")} == {"priority"}  # the others still rank
    formula_offers = [c.offer_id for c in candidates(catalog, run, "formula:margin-boost", scored=False)]
    hero_offer = next(c.offer_id for c in candidates(catalog, run, "ai_model:auto-web", False) if not c.is_fallback)
    served = pd.DataFrame(
        [
            # the formula's served list, with an offer no longer eligible in the middle, and another method's list
            {"decision_id": "dp-checkout", "placement_id": "checkout-banner", "channel": "web", "segment": "*",
             "offer_id": offer, "rank": rank, "model_name": "margin-boost", "as_of_date": date(2026, 10, 31)}
            for rank, offer in enumerate([formula_offers[1], "offer-gone", formula_offers[0]], 1)
        ]
        + [{"decision_id": "dp-web-home", "placement_id": "home-hero", "channel": "web", "segment": "*",
            "offer_id": hero_offer, "rank": 1, "model_name": "auto-web", "as_of_date": date(2026, 10, 31)}]
    )  # fmt: skip
    kept, notes = kept_lists(served, catalog, run, ["formula:margin-boost"])
    assert kept[["placement_id", "offer_id", "rank"]].values.tolist() == [
        ["checkout-banner", formula_offers[1], 1],
        ["checkout-banner", formula_offers[0], 2],
    ]
    assert set(kept["as_of_date"]) == {date(2026, 10, 31)}  # a kept list says when it was ranked
    assert notes == [
        "formula:margin-boost (failed: formula 'margin-boost' fails for offer offer-001: division by zero)"
    ]
    kept, notes = kept_lists(served, catalog, run, ["ai_model:auto-web"])  # a run of a `models` subset
    assert kept["placement_id"].tolist() == ["home-hero"] and notes == ["ai_model:auto-web (not ranked by this run)"]
