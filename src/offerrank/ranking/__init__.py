"""Ranking methods as strategies: how a decision placement's eligible offers are ordered.

A decision placement names its method in `ranking`: `priority`, `formula:<id>` or `ai_model:<name>`.
`method_of(text)` gives the strategy object; the catalog validates against it, and ranking, aggregation,
orchestration and the lookup dispatch through it. See `base.RankingMethod` for what a method provides; a new method
is a module here (docs: Contributing, "A ranking method").
"""

import importlib
import pkgutil

from offerrank.ranking.base import METHODS, RankingMethod, method_of

# Each module of this package defines ranking methods; importing it registers them (RankingMethod.__init_subclass__).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "RankingMethod", "method_of"]
