"""AI ranking by an AI model's Beta-Bernoulli Thompson sampling: `ranking: ai_model:<name>`.

Auto-optimization models rank all traffic; personalized models also rank each of their segments, with a seed of
their own. The math is in `offerrank.bandit`; the lookup may re-draw the order per request from the published
posteriors (`explorable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from offerrank.bandit import run_seed, thompson_rank
from offerrank.catalog import ModelStatus
from offerrank.ranking.base import RankGroup, RankingMethod
from offerrank.tables import ALL_SEGMENTS

if TYPE_CHECKING:
    from offerrank.catalog import AIModel, Catalog


class ThompsonSampling(RankingMethod):
    kind = "ai_model"
    uses_posteriors = True
    explorable = True

    def problems(self, catalog: Catalog, decision_active: bool) -> list[str]:
        model = self.model(catalog)
        if model is None:
            return [f"unknown AI model {self.ref!r}"]
        if decision_active and model.status is not ModelStatus.active:
            return [f"AI model {self.ref!r} is {model.status.value}; activate it first"]
        return []

    def model(self, catalog: Catalog) -> AIModel | None:
        return catalog.get("ai_models", self.ref)

    def segments(self, catalog: Catalog) -> tuple[str, ...]:
        return self.model(catalog).ranked_segments

    def exploration_share(self, catalog: Catalog) -> float:
        return self.model(catalog).exploration_share

    def rank(self, eligible: pd.DataFrame, group: RankGroup) -> pd.DataFrame:
        segment = [group.segment] if group.segment != ALL_SEGMENTS else []
        seed = run_seed(group.run_date, self.ref, group.decision_id, group.placement_id, group.channel, *segment)
        return thompson_rank(eligible, float(eligible["exploration_share"].iloc[0]), seed)
