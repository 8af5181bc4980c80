"""The table contract: every Delta table offerrank writes, its partition column and (for the tables that
channels and tools read) its schema, plus the constants and rules shared by writers and readers.

Importing it is cheap (no pyspark, no pyarrow): the DAG files and the JVM-free lookup path use it too. Each table is
a `offerrank.schemas.Table`: a schema declared once as (column, type) pairs, the engine types derived from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import Enum

from offerrank.errors import Refused
from offerrank.schemas import Table

ALL_SEGMENTS = "*"  # the segment key of all traffic, beside the segments of personalized models
UNKNOWN_TRAFFIC = "unknown"  # the traffic type of facts whose interactions logged none (`model`, `random` otherwise)

PARAMETER_COLUMNS = ("features", "weights", "covariance")  # a contextual model's posterior of an offer
RANKED_COLUMNS = (
    ("model_name", "string"),
    ("decision_id", "string"),
    ("placement_id", "string"),
    ("channel", "string"),
    ("segment", "string"),
    ("rank", "int"),
    ("offer_id", "string"),
    ("score", "double"),
    ("p_best", "double"),
    ("traffic_share", "double"),
    ("alpha", "double"),
    ("beta", "double"),
    ("impressions", "long"),
    ("conversions", "long"),
    ("reason", "string"),
    # a contextual model's posterior of the offer (see offerrank.learning.contextual.training), published with the
    # list it scores
    ("features", "array<string>"),
    ("weights", "array<double>"),
    ("covariance", "array<double>"),
)


class Reason(str, Enum):
    """Why an offer is where it is in a ranked list: the `reason` a ranking publishes and a lookup serves.

    Tables and answers hold the plain string (`.value`): a member formats as `Reason.MODEL` in an f-string."""

    MODEL = "model"  # an AI model's Thompson sampling, on the offer's own data
    COLD_START = "cold_start"  # an AI model's offer without enough data yet: explored
    PERSONALIZED = "personalized"  # scored for the request by a contextual model
    RANDOM = "random"  # served as the random traffic of an AI model's list
    PRIORITY = "priority"  # ranked by the offers' priority
    FORMULA = "formula"  # ranked by a ranking formula
    FALLBACK = "fallback"  # the decision's fallback offer: nothing eligible, or nothing ranked to serve
    PRIORITY_FALLBACK = "priority_fallback"  # after the fallback offer, the live offers by priority


EVENTS_RAW = Table("events_raw", ("landing_date",), stats_columns=("dataset",))
# readers filter on the dataset, the event date (frequency caps) and the interaction
INTERACTIONS = Table("interactions", ("landing_date",), stats_columns=("dataset", "event_date", "interaction"))
QUARANTINE = Table("quarantine", ("run_date",))
# One row per run date and event dataset: the ingest's counts, each expectation's outcome and the verdict (the
# fields of offerrank.events.day_checks.IngestResult but its skipped and damaged file lists).
DQ_RESULTS = Table(
    "dq_results",
    ("run_date",),
    (
        ("run_date", "date"),
        ("dataset", "string"),
        ("run_id", "string"),
        ("records_read", "long"),
        ("blank_lines", "long"),
        ("events_accepted", "long"),
        ("exact_duplicates", "long"),
        ("quarantined", "long"),
        ("quarantined_by_reason", "map<string, long>"),
        ("interactions_written", "long"),
        (
            "expectations",
            "array<struct<suite: string, expectation: string, column: string, quarantine_code: string, "
            "success: boolean, unexpected_count: long, observed: string>>",
        ),
        ("success", "boolean"),
        ("failure_message", "string"),
        ("data_docs", "string"),
    ),
)
PROFILE_SEGMENTS = Table(
    "profile_segments", ("snapshot_date",), (("snapshot_date", "date"), ("profile_id", "string"), ("segment", "string"))
)
PROFILE_ATTRIBUTES = Table(
    "profile_attributes",
    ("snapshot_date",),
    (("snapshot_date", "date"), ("profile_id", "string"), ("attribute", "string"), ("value", "string")),
)
PROFILE_QUARANTINE = Table("profile_quarantine", ("snapshot_date",))
OFFER_STATS_DAILY = Table("offer_stats_daily", ("event_date",))
# What each landing day's impressions add to `offer_stats_daily` and `slot_stats_daily` (see jobs.aggregate): a night
# aggregates its own landing day's impressions and sums the recent days' contributions.
OFFER_STATS_LANDING = Table("offer_stats_landing", ("landing_date",))
SLOT_STATS_LANDING = Table("slot_stats_landing", ("landing_date",))
FACT_COUNTS = ("impressions", "conversions", "profiles", "orphan_conversions")  # what a day's facts count
# What off-policy evaluation weighs: shown proposition items per slot and logged propensity (see jobs.aggregate).
SLOT_STATS_DAILY = Table(
    "slot_stats_daily",
    ("event_date",),
    (
        ("event_date", "date"),
        ("dataset", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("segment", "string"),
        ("slot", "int"),
        ("offer_id", "string"),
        ("traffic_type", "string"),
        ("propensity", "double"),
        ("impressions", "long"),
        ("conversions", "long"),
    ),
)
OFFER_CONVERSION_RATES = Table(
    "offer_conversion_rates",
    ("as_of_date",),
    (
        ("as_of_date", "date"),
        ("model_name", "string"),
        ("offer_id", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("segment", "string"),
        ("impressions", "long"),
        ("conversions", "long"),
        ("effective_impressions", "double"),
        ("effective_conversions", "double"),
        ("conversion_rate", "double"),
        ("alpha", "double"),
        ("beta", "double"),
        ("ci_low", "double"),
        ("ci_high", "double"),
        ("cold_start", "boolean"),
    ),
)
# A contextual model's training input: per day, model, offer and cell (one combination of feature levels, each
# `name=level`) the impressions and conversions (see jobs.aggregate).
FEATURE_STATS_DAILY = Table(
    "feature_stats_daily",
    ("event_date",),
    (
        ("event_date", "date"),
        ("model_name", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("offer_id", "string"),
        ("features", "array<string>"),
        ("impressions", "long"),
        ("conversions", "long"),
    ),
)
# A contextual model's trained posterior per offer: its feature dictionary, mean, covariance (row-major).
MODEL_PARAMETERS = Table(
    "model_parameters",
    ("as_of_date", "model_name"),
    (
        ("as_of_date", "date"),
        ("model_name", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("offer_id", "string"),
        ("window_start", "date"),
        ("features", "array<string>"),
        ("weights", "array<double>"),
        ("covariance", "array<double>"),
        ("impressions", "long"),
        ("conversions", "long"),
    ),
)
# One row per as_of_date and contextual model the aggregate step trained: `trained` (how many offers) or `failed`
# (why; its last parameters stay and its placements keep their last good lists, see offerrank.jobs.contextual).
MODEL_TRAININGS = Table(
    "model_trainings",
    ("as_of_date", "model_name"),
    (("as_of_date", "date"), ("model_name", "string"), ("status", "string"), ("reason", "string"), ("offers", "long")),
)
# Frequency-capping counts of each capped offer's caps through as_of_date (see offerrank.jobs.caps).
OFFER_CAP_COUNTS = Table(
    "offer_cap_counts",
    ("as_of_date",),
    (
        ("as_of_date", "date"),
        ("offer_id", "string"),
        ("cap", "string"),
        ("profile_id", "string"),
        ("events", "long"),
    ),
)
# Model reports (see offerrank.jobs.report): model vs random traffic per day, per window, per offer in a window.
MODEL_REPORT_DAILY = Table(
    "model_report_daily",
    ("report_date",),
    (
        ("report_date", "date"),
        ("model_name", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("segment", "string"),
        ("traffic_type", "string"),
        ("impressions", "long"),
        ("conversions", "long"),
        ("conversion_rate", "double"),
        ("ci_low", "double"),
        ("ci_high", "double"),
    ),
)
MODEL_REPORT = Table(
    "model_report",
    ("window_end",),
    (
        ("window_end", "date"),
        ("window_start", "date"),
        ("model_name", "string"),
        ("model_type", "string"),
        ("segment", "string"),
        ("model_impressions", "long"),
        ("model_conversions", "long"),
        ("model_rate", "double"),
        ("model_ci_low", "double"),
        ("model_ci_high", "double"),
        ("random_impressions", "long"),
        ("random_conversions", "long"),
        ("random_rate", "double"),
        ("random_ci_low", "double"),
        ("random_ci_high", "double"),
        ("lift", "double"),
        ("lift_low", "double"),
        ("lift_high", "double"),
        ("p_value", "double"),
        ("random_impressions_needed", "long"),
        ("gini", "double"),
        ("verdict", "string"),
    ),
)
MODEL_REPORT_OFFERS = Table(
    "model_report_offers",
    ("window_end",),
    (
        ("window_end", "date"),
        ("window_start", "date"),
        ("model_name", "string"),
        ("segment", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("offer_id", "string"),
        ("impressions", "long"),
        ("conversions", "long"),
        ("conversion_rate", "double"),
        ("ci_low", "double"),
        ("ci_high", "double"),
        ("traffic_share", "double"),
        ("cold_start", "boolean"),
    ),
)


class EvaluationSource(str, Enum):
    """Who stored a `policy_evaluations` row: part of its key, so one source never replaces another's rows."""

    NIGHTLY = "nightly"  # the nightly report, on the registry's catalog
    AD_HOC = "ad_hoc"  # `offerrank evaluate --write` on the registry's catalog
    DRAFT = "draft"  # `offerrank evaluate --write --catalog FILE`: a draft catalog's policies


# Off-policy estimates of candidate policies on a model's logged impressions (see offerrank.jobs.evaluate).
POLICY_EVALUATIONS = Table(
    "policy_evaluations",
    ("window_end", "model_name"),
    (
        ("window_end", "date"),
        ("window_start", "date"),
        ("model_name", "string"),
        ("source", "string"),  # an EvaluationSource; null: stored before sources were (by the nightly or evaluate)
        ("policy", "string"),
        ("placement_id", "string"),
        ("channel", "string"),
        ("segment", "string"),
        ("slot", "int"),
        ("impressions", "long"),
        ("conversions", "long"),
        ("logged_rate", "double"),
        ("ipw", "double"),
        ("ipw_low", "double"),
        ("ipw_high", "double"),
        ("snipw", "double"),
        ("snipw_low", "double"),
        ("snipw_high", "double"),
        ("dr", "double"),
        ("dr_low", "double"),
        ("dr_high", "double"),
        ("effective_sample_size", "double"),
        ("unsupported_share", "double"),
        ("refused", "string"),
    ),
)
# A ranking method's lists of one run, before publishing (see offerrank.jobs.rank).
RANKING_STAGE = Table(
    "ranking_stage",
    ("as_of_date", "unit"),
    (
        *RANKED_COLUMNS,
        ("unit", "string"),
        ("run_id", "string"),
        ("as_of_date", "date"),
        ("staged_at", "timestamp"),  # when the run ranked the unit (the registry and rates it read were those then)
    ),
)
# The complete current ranking channels read: replaced in one commit per publish.
OFFER_RANKINGS = Table(
    "offer_rankings",
    (),
    (
        ("ranking_version", "long"),
        *RANKED_COLUMNS,
        ("as_of_date", "date"),
        ("run_id", "string"),
        ("published_at", "timestamp"),
    ),
)
# One row per publish attempt: published, unchanged, refused (with why) or rolled back.
RANKING_RUNS = Table(
    "ranking_runs",
    (),
    (
        ("ranking_version", "long"),
        ("run_date", "date"),
        ("run_id", "string"),
        ("status", "string"),
        ("reason", "string"),
        ("validation_run_id", "string"),
        ("placements", "long"),
        ("offers", "long"),
        ("content_hash", "string"),
        ("rankings_table_version", "long"),
        # when the attempt was made (wall-clock time, from the entry point); `run_date` is the data day it ranked
        ("published_at", "timestamp"),
        # when the published lists were staged (their latest unit); null for attempts recorded before it was kept
        ("staged_at", "timestamp"),
    ),
)
# The catalog and AI models: one row per entity, every change one commit.
REGISTRY = Table(
    "registry",
    (),
    (
        ("kind", "string"),
        ("id", "string"),
        ("spec", "string"),
        ("created_at", "timestamp"),
        ("updated_at", "timestamp"),
    ),
)
# Registry changes refused because their actor may not manage ranking strategies (see offerrank.catalog.registry).
REGISTRY_REFUSALS = Table(
    "registry_refusals",
    (),
    (("refused_at", "timestamp"), ("actor", "string"), ("changes", "string"), ("reason", "string")),
)
# The tables whose rows carry their event dataset (`dataset`); rows written before datasets existed have none.
DATASET_TABLES = (EVENTS_RAW, INTERACTIONS, QUARANTINE, DQ_RESULTS, OFFER_STATS_DAILY, SLOT_STATS_DAILY)


class WarehouseOutdated(Refused, RuntimeError):
    """A warehouse written by an earlier release that needs `offerrank upgrade` first."""


ALL_TABLES = (
    EVENTS_RAW,
    INTERACTIONS,
    QUARANTINE,
    DQ_RESULTS,
    PROFILE_SEGMENTS,
    PROFILE_ATTRIBUTES,
    PROFILE_QUARANTINE,
    REGISTRY,
    REGISTRY_REFUSALS,
    OFFER_STATS_LANDING,
    SLOT_STATS_LANDING,
    OFFER_STATS_DAILY,
    SLOT_STATS_DAILY,
    FEATURE_STATS_DAILY,
    MODEL_PARAMETERS,
    MODEL_TRAININGS,
    OFFER_CONVERSION_RATES,
    OFFER_CAP_COUNTS,
    RANKING_STAGE,
    OFFER_RANKINGS,
    RANKING_RUNS,
    MODEL_REPORT_DAILY,
    MODEL_REPORT,
    MODEL_REPORT_OFFERS,
    POLICY_EVALUATIONS,
)


def manual_run_id(run_date: date) -> str:
    """The run id of a run started without one (by hand, not by the scheduler): `manual__<run date>`."""
    return f"manual__{run_date.isoformat()}"


def partition_predicate(values: Mapping[str, object]) -> str:
    """The SQL condition on partition columns that a partition replace uses: each column equals its value, lies
    in its (first, last) range, or is one of its list of values (None in the list: or is null; both engines' writers
    take it: Spark's replaceWhere, deltalake's predicate)."""

    def condition(column: str, value: object) -> str:
        if isinstance(value, tuple):
            first, last = value
            return f"{column} >= '{first}' AND {column} <= '{last}'"
        if isinstance(value, list | frozenset | set):
            listed = ", ".join(f"'{v}'" for v in sorted(v for v in value if v is not None))
            return f"({column} IN ({listed}) OR {column} IS NULL)" if None in value else f"{column} IN ({listed})"
        return f"{column} = '{value}'"

    return " AND ".join(condition(column, value) for column, value in values.items())


def latest_on_or_before(days: Iterable[date], day: date) -> date | None:
    """The latest of `days` on or before `day` (which profile snapshot a run date uses), None when there is none."""
    return max((d for d in days if d <= day), default=None)
