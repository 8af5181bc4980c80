"""Ranking methods as strategies: how a decision placement's eligible offers are ordered.

A decision placement names its method in `ranking`: `priority`, `formula:<id>` or `ai_model:<name>`.
`method_of(text)` gives the strategy object; the catalog validates against it, and ranking, aggregation,
orchestration and the lookup dispatch through it. See `base.RankingMethod` for what a method provides and the
README's "how to add a ranking method".
"""

from offerrank.ranking.base import METHODS, RankingMethod, method_of
from offerrank.ranking.formula import FormulaRanking
from offerrank.ranking.priority import PriorityRanking
from offerrank.ranking.thompson import ThompsonSampling

__all__ = ["METHODS", "FormulaRanking", "PriorityRanking", "RankingMethod", "ThompsonSampling", "method_of"]
