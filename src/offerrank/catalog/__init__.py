"""The decisioning catalog: datasets, placements, offers, ranking formulas, AI models and decisions.

`entities` holds each entity and its field rules, `model` the catalog validated as a whole (`Catalog`,
`load_catalog`), `layout` the dataset layout check, `formula` the ranking-formula language, `registry` the
versioned Delta table the catalog lives in and `permissions` who may change it.
"""

from offerrank.catalog.entities import (
    CHANNELS,
    ID_PATTERN,
    METRIC,
    AIModel,
    CatalogError,
    ColdStart,
    Dataset,
    Decision,
    DecisionPlacement,
    DecisionStatus,
    Feature,
    FrequencyCap,
    ModelStatus,
    ModelType,
    Offer,
    Personalization,
    Placement,
    RankingFormula,
)
from offerrank.catalog.model import KINDS, Catalog, build_catalog, entity_json, load_catalog, read_yaml

__all__ = [
    "CHANNELS",
    "ID_PATTERN",
    "KINDS",
    "METRIC",
    "AIModel",
    "Catalog",
    "CatalogError",
    "ColdStart",
    "Dataset",
    "Decision",
    "DecisionPlacement",
    "DecisionStatus",
    "Feature",
    "FrequencyCap",
    "ModelStatus",
    "ModelType",
    "Offer",
    "Personalization",
    "Placement",
    "RankingFormula",
    "build_catalog",
    "entity_json",
    "load_catalog",
    "read_yaml",
]
