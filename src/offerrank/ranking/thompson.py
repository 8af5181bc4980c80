"""AI ranking by an AI model's Beta-Bernoulli Thompson sampling: `ranking: ai_model:<name>`.

Auto-optimization models rank all traffic; personalized models also rank each of their segments, with a seed of
their own. The math is in `offerrank.learning.bandit`; the lookup may re-draw the order per request from the published
posteriors (`explorable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from offerrank.learning.bandit import run_seed, thompson_rank
from offerrank.ranking.base import RankGroup, RankingMethod
from offerrank.tables import ALL_SEGMENTS

if TYPE_CHECKING:
    from offerrank.catalog import AIModel
    from offerrank.ranking.base import CatalogView


class ThompsonSampling(RankingMethod):
    kind = "ai_model"
    uses_posteriors = True
    explorable = True

    def problems(self, catalog: CatalogView, decision_active: bool) -> list[str]:
        model = self.model(catalog)
        if model is None:
            return [f"unknown AI model {self.ref!r}"]
        if decision_active and model.status != "active":
            return [f"AI model {self.ref!r} is {model.status.value}; activate it first"]
        return []

    def model(self, catalog: CatalogView) -> AIModel | None:
        return catalog.get("ai_models", self.ref)

    def _model(self, catalog: CatalogView) -> AIModel:
        model = self.model(catalog)
        assert model is not None, f"unknown AI model {self.ref!r}"  # a valid catalog has it (`problems`)
        return model

    def segments(self, catalog: CatalogView) -> tuple[str, ...]:
        return self._model(catalog).ranked_segments

    def exploration_share(self, catalog: CatalogView) -> float:
        return self._model(catalog).exploration_share

    def rank(self, eligible: pd.DataFrame, group: RankGroup) -> pd.DataFrame:
        segment = [group.segment] if group.segment != ALL_SEGMENTS else []
        seed = run_seed(group.run_date, self.ref, group.decision_id, group.placement_id, group.channel, *segment)
        return thompson_rank(eligible, float(eligible["exploration_share"].iloc[0]), seed)
