"""Rank the eligible offers of every active decision placement that uses one ranking method (in memory, no JVM).

Reads  the registry's catalog (the offers live on the serving day, D + 1), `offer_conversion_rates` (the
       as_of_date = D partition, for methods that use posteriors) and, for a contextual model, its latest
       `model_parameters` on or before D — a few rows per offer, placement and segment, so ranking runs in pandas,
       not Spark. A contextual model's lists carry each offer's parameters, so they are published in one commit.
A method whose contextual model failed to train on D (`model_trainings`) is held back like one whose dataset did
not pass: its placements keep their last good lists.
Writes `ranking_stage` — one ranking method's ranked lists of a run, replacing that run's rows of its own
                         as_of_date/unit partition (one Airflow task per method, side by side), stamped with when
                         they were staged (given by the entry point); `offerrank.jobs.publish` publishes them.
The methods themselves are strategies in `offerrank.ranking`.
Run: `offerrank rank --date D` (rank every method, then publish); the DAG's mapped `rank` tasks call `stage_unit`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from offerrank.catalog import Catalog
from offerrank.engines.delta_rs import latest_partition, open_table, read_rows, table_rows, write_frame
from offerrank.errors import OfferrankError
from offerrank.learning.bandit import LIST_KEYS, Prior, list_priors
from offerrank.learning.contextual.training import PARAMETER_KEYS
from offerrank.ranking import method_of
from offerrank.ranking.base import RankGroup
from offerrank.settings import Settings

if TYPE_CHECKING:
    from offerrank.events.validation_gate import DayValidation
from offerrank.tables import (
    MODEL_PARAMETERS,
    MODEL_TRAININGS,
    OFFER_CONVERSION_RATES,
    PARAMETER_COLUMNS,
    RANKED_COLUMNS,
    RANKING_STAGE,
    Reason,
    Table,
)

log = logging.getLogger(__name__)


class Candidate(NamedTuple):
    """An offer a decision placement x channel x segment may rank, or its fallback offer."""

    decision_id: str
    placement_id: str
    channel: str
    ranking: str
    model_name: str
    offer_id: str
    priority: int
    formula_score: float | None
    is_fallback: bool
    exploration_share: float | None
    segment: str


RANKED = Table("ranked", (), RANKED_COLUMNS)
GROUP_KEYS = ["decision_id", "placement_id", "channel", "segment"]
POSTERIOR_KEYS = ["model_name", "offer_id", "placement_id", "channel", "segment"]
POSTERIOR_VALUES = ["alpha", "beta", "impressions", "conversions", "cold_start"]


class RankingFailed(OfferrankError, RuntimeError):
    """A ranking method cannot rank an offer (e.g. its formula fails); the run must not publish."""


# --- pure transformations -----------------------------------------------------------------------------------


def serving_day(run_date: date) -> date:
    """The day a ranking of data day `run_date` is served: the next one (it is published after `run_date` ends)."""
    return run_date + timedelta(days=1)


def candidates(catalog: Catalog, run_date: date, unit: str | None = None, scored: bool = True) -> list[Candidate]:
    """Each active decision placement's eligible offers live on the ranking's serving day, plus its fallback, once
    per segment its method ranks for (a segment's list only the offers its audience may see); only the placements of
    ranking method `unit` when given. `scored=False` leaves formulas unevaluated (what is eligible does not depend on
    them); a formula that fails for an offer is RankingFailed."""
    from offerrank.catalog.formula import FormulaError

    rows = []
    for decision, assignment in catalog.active_assignments():
        method = assignment.method
        if unit is not None and method.unit != unit:
            continue
        score, share = method.scorer(catalog) if scored else None, method.exploration_share(catalog)
        common = (
            decision.id,
            assignment.placement,
            catalog.channel_of(assignment.placement),
            method.unit,
            method.model_name,
        )
        offers = []
        for offer in catalog.eligible_live_offers(assignment, serving_day(run_date)):
            try:
                offers.append((offer, (offer.priority, score(offer) if score else None, False, share)))
            except FormulaError as error:
                raise RankingFailed(f"formula {method.ref!r} fails for offer {offer.id}: {error}") from None
        fallback = catalog.get("offers", assignment.fallback_offer)
        for segment in method.segments(catalog):
            rows += [
                Candidate(*common, offer.id, *fields, segment) for offer, fields in offers if offer.ranked_for(segment)
            ]
            rows.append(Candidate(*common, fallback.id, fallback.priority, None, True, None, segment))
    return rows


def with_posteriors(candidate_frame: pd.DataFrame, rates: pd.DataFrame, prior: Prior) -> pd.DataFrame:
    """Attach each candidate's posterior; an offer with no data gets its list's prior (`list_priors`, as its
    posterior in `rates` would have) and is in cold start."""
    posteriors = rates.reindex(columns=[*POSTERIOR_KEYS, *POSTERIOR_VALUES])
    joined = candidate_frame.merge(posteriors, on=POSTERIOR_KEYS, how="left")
    priors = joined.merge(list_priors(candidate_frame, rates, prior), on=LIST_KEYS, how="left")
    return joined.assign(
        alpha=joined["alpha"].astype(float).fillna(priors["prior_alpha"]),
        beta=joined["beta"].astype(float).fillna(priors["prior_beta"]),
        impressions=joined["impressions"].fillna(0).astype("int64"),
        conversions=joined["conversions"].fillna(0).astype("int64"),
        cold_start=joined["cold_start"].astype("boolean").fillna(True).astype(bool),
    )


def rank_placement(group: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Rank one decision placement x channel x segment by its method; the fallback offer when nothing is eligible."""
    eligible = group[~group["is_fallback"]]
    first = group.iloc[0]
    if eligible.empty:
        ranked = (
            group[group["is_fallback"]]
            .head(1)
            .assign(score=None, p_best=None, traffic_share=1.0, reason=Reason.FALLBACK.value, rank=1)
        )
    else:
        where = RankGroup(run_date, first["decision_id"], first["placement_id"], first["channel"], first["segment"])
        ranked = method_of(first["ranking"]).rank(eligible, where)
    return with_parameter_columns(ranked.assign(rank=ranked["rank"].astype("int32")))[RANKED.column_names]


def with_parameters(candidate_frame: pd.DataFrame, parameters: pd.DataFrame) -> pd.DataFrame:
    """Attach a contextual model's parameters to the candidates it has them for (others: none)."""
    if parameters.empty:
        return candidate_frame
    return candidate_frame.merge(parameters[[*PARAMETER_KEYS, *PARAMETER_COLUMNS]], on=PARAMETER_KEYS, how="left")


def with_parameter_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the contextual parameter columns, None where a row has none (not NaN: they hold lists)."""
    frame = frame.copy()
    for column in PARAMETER_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None) if column in frame else None
    return frame


def latest_parameters(settings: Settings, model_name: str, run_date: date) -> pd.DataFrame:
    """A contextual model's parameters of its latest training on or before `run_date` (none before the first)."""
    opened = open_table(settings, MODEL_PARAMETERS)
    if opened is None:
        return pd.DataFrame()
    latest = latest_partition(opened, "as_of_date", run_date, model_name=model_name)
    if latest is None:
        return pd.DataFrame()
    partition = [("as_of_date", "=", latest.isoformat()), ("model_name", "=", model_name)]
    return pd.DataFrame(read_rows(opened, partitions=partition))


def rank_all(candidates_with_posteriors: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Rank every decision placement x channel x segment of the candidates."""
    groups = candidates_with_posteriors.groupby(GROUP_KEYS, sort=True, dropna=False)
    return pd.concat([rank_placement(group, run_date) for _, group in groups], ignore_index=True)


# --- I/O edge -----------------------------------------------------------------------------------------------


def stage_unit(
    settings: Settings, catalog: Catalog, run_date: date, run_id: str, unit: str, staged_at: datetime
) -> int:
    """Rank the placements that use ranking method `unit` into `ranking_stage` (replacing that date and unit),
    stamped `staged_at` (now, at the entry point: the publish gate compares it with the served run's)."""
    rows = candidates(catalog, run_date, unit)
    if not rows:
        raise ValueError(f"no active decision placement ranks with {unit!r}")
    day = {"as_of_date": run_date}
    rates = pd.DataFrame(table_rows(settings, OFFER_CONVERSION_RATES, day) if method_of(unit).uses_posteriors else [])
    frame = with_posteriors(pd.DataFrame(rows, columns=list(Candidate._fields)), rates, Prior.of(settings))
    model = method_of(unit).model(catalog)
    if model is not None and model.contextual:
        frame = with_parameters(frame, latest_parameters(settings, model.name, run_date))
    staged = rank_all(frame, run_date).assign(unit=unit, run_id=run_id, as_of_date=run_date, staged_at=staged_at)
    # per run: two runs of one date (a nightly and a manual trigger) stage side by side
    write_frame(settings, RANKING_STAGE, staged, "overwrite", {"as_of_date": run_date, "unit": unit, "run_id": run_id})
    return len(staged)


def failed_trainings(settings: Settings, catalog: Catalog, run_date: date) -> dict[str, str]:
    """The ranking methods whose contextual model failed to train on `run_date` (see `model_trainings`), and why."""
    rows = table_rows(settings, MODEL_TRAININGS, {"as_of_date": run_date})
    failed = {row["model_name"]: row["reason"] for row in rows if row["status"] == "failed"}
    models = {method.unit: method.model(catalog) for method in catalog.ranking_methods()}
    return {
        unit: f"AI model {model.name} failed to train on {run_date} and keeps its last parameters: {failed[model.name]}"
        for unit, model in models.items()
        if model is not None and model.name in failed
    }


def held_back(
    settings: Settings, catalog: Catalog, run_date: date, validation: DayValidation | None = None
) -> dict[str, str]:
    """The ranking methods whose AI model learns from a dataset that did not pass `run_date`'s validation (read
    unless given), or failed to train, and why."""
    from offerrank.events.validation_gate import day_validation

    validation = validation or day_validation(settings, catalog, run_date)
    return validation.held_back(catalog) | failed_trainings(settings, catalog, run_date)


def stage_or_hold(
    settings: Settings,
    catalog: Catalog,
    run_date: date,
    run_id: str,
    unit: str,
    held: dict[str, str],
    staged_at: datetime,
) -> str:
    """Stage ranking method `unit`'s lists, unless it is `held` back (nothing staged: publish keeps its last good
    lists); a line for the run summary. RankingFailed when the method cannot rank."""
    if unit in held:
        return f"{unit}: held back, {held[unit]}; its placements keep their last good lists"
    return f"{unit}: {stage_unit(settings, catalog, run_date, run_id, unit, staged_at)} ranked offers"


def run(settings: Settings, catalog: Catalog, run_date: date, run_id: str, staged_at: datetime) -> str:
    """Stage the lists of every ranking method in use, stamped `staged_at`; a line for the run summary. A method that
    fails, or is held back by its model's dataset, is confined to its own placements: the others are staged, and
    publish keeps its last good lists."""
    held, outcomes = held_back(settings, catalog, run_date), []
    for unit in [method.unit for method in catalog.ranking_methods()]:
        try:
            outcomes.append(stage_or_hold(settings, catalog, run_date, run_id, unit, held, staged_at))
        except RankingFailed as failed:
            outcomes.append(f"{unit} FAILED: {failed}")
    return ", ".join(outcomes)
