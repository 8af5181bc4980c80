"""The publish gate and the content fingerprint on hand-built rankings (no Spark session)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from offerrank.jobs.publish import (
    content_hash,
    gate_problems,
    older_than_served,
    staged_before_served,
    staging_time,
    superseded_condition,
)
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


def test_lists_staged_before_the_served_ranking_of_their_date_are_refused_as_stale():
    """An older run of the served date (its publish cleared in Airflow after a later run published) must not
    replace the later run's ranking; a later staging, another date or the served run itself may publish."""
    day, early, late = date(2026, 11, 3), datetime(2026, 11, 4, 2, tzinfo=UTC), datetime(2026, 11, 4, 9, tzinfo=UTC)
    served = {"run_date": day, "run_id": "run-b", "ranking_version": 7, "staged_at": late}
    assert staged_before_served("run-a", day, early, served) == (
        "run run-a's lists of 2026-11-03 were staged at 2026-11-04 02:00:00 UTC, before those of the ranking served "
        "(run run-b, ranking version 7, staged at 2026-11-04 09:00:00 UTC): they are stale; rank the date again, or "
        "to serve an earlier ranking on purpose, `offerrank rankings rollback`"
    )
    assert "has no staged lists" in staged_before_served("run-a", day, None, served)
    # a run whose every method is held back (a dataset failed, a model failed to train) stages nothing: it keeps
    # the served lists, it is not stale
    assert staged_before_served("run-c", day, None, served, expects_lists=False) is None
    assert staged_before_served("run-c", day, late, served) is None  # staged no earlier
    assert staged_before_served("run-b", day, None, served) is None  # the served run again: unchanged
    assert staged_before_served("run-a", date(2026, 11, 4), early, served) is None  # a later date
    assert staged_before_served("run-a", day, early, served | {"staged_at": None}) is None  # served before stamps
    assert staged_before_served("run-a", day, early, None) is None


def test_a_runs_staging_time_is_its_latest_units_and_a_publish_purges_what_it_supersedes():
    early, late = datetime(2026, 11, 4, 2, tzinfo=UTC), datetime(2026, 11, 4, 9, tzinfo=UTC)
    assert staging_time(pd.DataFrame({"staged_at": [early, late]})) == late
    assert staging_time(pd.DataFrame({"staged_at": [None]})) is None  # staged before stamps were kept
    assert staging_time(pd.DataFrame({"staged_at": []})) is None
    assert superseded_condition(date(2026, 11, 3), "manual__it's", late) == (
        "as_of_date < '2026-11-03' OR (as_of_date = '2026-11-03' AND (run_id = 'manual__it''s' "
        "OR staged_at IS NULL OR staged_at < '2026-11-04T09:00:00+00:00'))"
    )
    assert superseded_condition(date(2026, 11, 3), "b", None) == (
        "as_of_date < '2026-11-03' OR (as_of_date = '2026-11-03' AND (run_id = 'b'))"
    )
