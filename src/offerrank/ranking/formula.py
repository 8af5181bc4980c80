"""Non-AI ranking by a ranking formula over each offer's priority and characteristics: `ranking: formula:<id>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from offerrank.ranking.base import CatalogView, RankGroup, RankingMethod, by_score
from offerrank.tables import Reason

if TYPE_CHECKING:
    import pandas as pd

    from offerrank.catalog import Offer


class FormulaRanking(RankingMethod):
    kind = "formula"

    def problems(self, catalog: CatalogView, decision_active: bool) -> list[str]:
        return [] if catalog.get("formulas", self.ref) else [f"unknown formula {self.ref!r}"]

    def scorer(self, catalog: CatalogView) -> Callable[[Offer], float]:
        formula = catalog.get("formulas", self.ref).compiled()
        return lambda offer: formula.evaluate(offer.fields())

    def rank(self, eligible: pd.DataFrame, group: RankGroup) -> pd.DataFrame:
        return by_score(eligible, eligible["formula_score"], Reason.FORMULA)
