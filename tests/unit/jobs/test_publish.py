"""The publish gate and the content fingerprint on hand-built rankings (no Spark session)."""

from __future__ import annotations

import pandas as pd

from offerrank.jobs.publish import content_hash, gate_problems
from offerrank.jobs.rank import Candidate


def test_the_gate_names_placements_without_offers_and_ineligible_offers():
    candidates = [
        Candidate("d", "p", "web", "priority", "priority", "a", 1, None, False, None, "*"),
        Candidate("d", "p", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
        Candidate("d", "q", "web", "priority", "priority", "fb", 1, None, True, None, "*"),
        Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "*"),
        Candidate("d", "r", "web", "ai_model:m", "m", "a", 1, None, False, 0.1, "loyal"),
    ]
    ranked = pd.DataFrame(
        [
            {"decision_id": "d", "placement_id": "p", "segment": "*", "offer_id": "zzz", "reason": "priority"},
            {"decision_id": "d", "placement_id": "p", "segment": "*", "offer_id": "fb", "reason": "priority"},
            {"decision_id": "d", "placement_id": "r", "segment": "*", "offer_id": "a", "reason": "model"},
        ]
    )
    assert gate_problems(ranked, candidates) == [
        "placement d/q would get no offer",
        "placement d/r would get no offer in segment loyal",
        "offer zzz ranked for d/p is not eligible",
        "offer fb ranked for d/p is not eligible",
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
