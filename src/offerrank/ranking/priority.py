"""Non-AI ranking by the offers' priority: `ranking: priority`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from offerrank.ranking.base import RankGroup, RankingMethod, by_score
from offerrank.tables import Reason

if TYPE_CHECKING:
    import pandas as pd


class PriorityRanking(RankingMethod):
    kind = "priority"
    takes_ref = False

    def rank(self, eligible: pd.DataFrame, group: RankGroup) -> pd.DataFrame:
        return by_score(eligible, eligible["priority"].astype(float), Reason.PRIORITY)
