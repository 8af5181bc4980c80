"""The ranking-method interface and its registry.

A method is resolved from the catalog (`method_of`), says what the catalog must hold for it (`problems`), which
segments it ranks for and what each candidate offer carries (`segments`, `scorer`, `exploration_share`), ranks
one group of candidates (`rank`), and tells the lookup whether it may re-draw the order at serve time (`explorable`).
Pure Python: no Spark, and pandas only inside `rank`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from offerrank.tables import ALL_SEGMENTS, Reason

if TYPE_CHECKING:
    import pandas as pd

    from offerrank.catalog import AIModel, Offer

METHODS: dict[str, type[RankingMethod]] = {}


class CatalogView(Protocol):
    """What a ranking method reads of the catalog (`offerrank.catalog.Catalog` is one): an entity by kind and id.
    The catalog validates decisions through the methods, so the methods see it through this, not by importing it."""

    def get(self, kind: str, ident: str | None) -> Any: ...


@dataclass(frozen=True)
class RankGroup:
    """The group being ranked: one decision placement x channel x segment of one run date."""

    run_date: date
    decision_id: str
    placement_id: str
    channel: str
    segment: str = ALL_SEGMENTS


class RankingMethod(ABC):
    """One way of ordering offers. Subclasses set `kind` (the prefix in `ranking`) and implement `rank`."""

    kind: ClassVar[str]
    takes_ref: ClassVar[bool] = True  # `kind:<ref>`, naming a catalog entity; False for a bare `kind`
    uses_posteriors: ClassVar[bool] = False  # candidates need the offers' Beta posteriors
    explorable: ClassVar[bool] = False  # the lookup may re-draw the published order per request

    def __init__(self, ref: str | None = None):
        self.ref = ref

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        METHODS[cls.kind] = cls

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RankingMethod) and self.unit == other.unit

    def __hash__(self) -> int:
        return hash(self.unit)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.unit!r})"

    @property
    def unit(self) -> str:
        """The method as a decision placement names it; also one ranking task of a run."""
        return f"{self.kind}:{self.ref}" if self.takes_ref else self.kind

    @property
    def model_name(self) -> str:
        """What `offer_rankings.model_name` says of the lists this method ranks."""
        if not self.takes_ref:
            return self.kind
        assert self.ref is not None  # `method_of` gives a `kind:<ref>` method its ref
        return self.ref

    def problems(self, catalog: CatalogView, decision_active: bool) -> list[str]:
        """What the catalog lacks for this method (messages without the `where` prefix)."""
        return []

    def model(self, catalog: CatalogView) -> AIModel | None:
        """The AI model the method ranks with, if any."""
        return None

    def segments(self, catalog: CatalogView) -> tuple[str, ...]:
        """The segments ranked separately: all traffic, plus those of a personalized model."""
        return (ALL_SEGMENTS,)

    def exploration_share(self, catalog: CatalogView) -> float | None:
        return None

    def scorer(self, catalog: CatalogView) -> Callable[[Offer], float] | None:
        """A static score per offer, computed when candidates are built (None: the method scores in `rank`)."""
        return None

    @abstractmethod
    def rank(self, eligible: pd.DataFrame, group: RankGroup) -> pd.DataFrame:
        """Order one group's eligible candidates: add score, p_best, traffic_share, reason and rank (1 = first)."""


def method_of(ranking: str) -> RankingMethod:
    """The method a decision placement's `ranking` text names; ValueError naming the known ones otherwise."""
    kind, colon, ref = ranking.partition(":")
    method = METHODS.get(kind)
    if method is None or method.takes_ref != bool(colon and ref):
        known = ", ".join(f"{k}:<id>" if m.takes_ref else k for k, m in sorted(METHODS.items()))
        raise ValueError(f"unknown ranking {ranking!r}; one of {known}")
    return method(ref or None)


def by_score(eligible: pd.DataFrame, score: pd.Series, reason: Reason) -> pd.DataFrame:
    """Rank by a static score, highest first, ties by offer id; no traffic shares (a fixed order)."""
    ranked = eligible.assign(score=score, p_best=None, traffic_share=None, reason=reason.value)
    ranked = ranked.sort_values(["score", "offer_id"], ascending=[False, True], kind="mergesort")
    ranked["rank"] = range(1, len(ranked) + 1)
    return ranked
