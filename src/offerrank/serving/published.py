"""The published ranking as people read it: its top offers per placement (the CLI's `rankings show`, the summary
of a nightly run)."""

from __future__ import annotations

from offerrank.engines.delta_rs import table_rows
from offerrank.settings import Settings
from offerrank.tables import OFFER_RANKINGS


def top_offer_lines(settings: Settings, top: int) -> list[str]:
    """The published ranking's top offers of each placement, one line each, under a heading line."""
    rows = sorted(
        (r for r in table_rows(settings, OFFER_RANKINGS) if r["rank"] <= top),
        key=lambda r: (r["decision_id"], r["placement_id"], r["channel"], r["segment"], r["rank"]),
    )
    if not rows:
        return ["no ranking was published yet"]
    lines = [
        f"published ranking version {rows[0]['ranking_version']} (as of {rows[0]['as_of_date']}): "
        f"top {top} offers per placement"
    ]
    for row in rows:
        share = f"{row['traffic_share']:6.1%}" if row["traffic_share"] is not None else "     -"
        score = f"{row['score']:.4f}" if row["score"] is not None else "-"
        lines.append(
            f"  {row['decision_id']:<16} {row['placement_id']:<18} {row['channel']:<9} {row['segment']:<16} "
            f"#{row['rank']} "
            f"{row['offer_id']:<10} score {score:<8} traffic {share}  {row['reason']}"
        )
    return lines
