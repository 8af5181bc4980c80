"""Off-policy evaluation: the conversion rate candidate policies would have had on the impressions an AI model's
placements logged, before anyone serves them (pandas, no JVM).

Reads  `slot_stats_daily` (event dates [D1, D2]: shown items per slot, offer, traffic type and logged propensity,
       with their conversions), `offer_stats_daily` (the look-back windows before each day: a candidate model's
       posteriors as of the day before, as the nightly chain would have computed them) and a catalog (the
       registry's, or a file with draft models).
Writes `policy_evaluations` only when asked to store (the nightly report; `offerrank evaluate --write`), per
       window_end (D2), model_name and source (nightly, ad_hoc, draft): per candidate policy, placement, channel,
       segment and slot (null: all slots together): the logged impressions and rate, IPW, SNIPW and DR estimates
       with 95% intervals, the effective sample size, the candidate's share on items the logs never showed, and why
       an estimate was refused. The nightly report replaces its own rows of the window and model; an ad hoc or
       draft evaluation replaces the rows of its source and policies only.

A candidate policy is named as a decision placement names its ranking: `ai_model:<name>` (the lookup's per-request
policy: random with the model's exploration share, else a Thompson draw from its posteriors), `ai_model:<name>/
published` (the published order, what `mode=published` serves), `priority`, `formula:<id>`, and `random` (uniform).
Each day's candidate lists are what the nightly chain would have published for that day from the catalog (offers
live on that day, audiences, formulas) and, for a model, its posteriors from the facts of the day before.
Run: `offerrank evaluate --model NAME [--catalog FILE] [--from D1 --to D2] [--policy TEXT ...] [--write]`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from offerrank.catalog import AIModel, Catalog, DecisionStatus
from offerrank.errors import Unavailable
from offerrank.jobs.rank import Candidate, RankingFailed, candidates, rank_all, with_posteriors
from offerrank.learning.bandit import Prior, facts_of, posterior_table, posteriors, run_seed
from offerrank.ranking import method_of
from offerrank.reports.offpolicy import MAX_WEIGHT, WeightsRefused, evaluate
from offerrank.serving.policy import (
    random_slot_probability,
    serving_probability,
    slot_probabilities,
    split_by_cold_start,
)
from offerrank.settings import Settings
from offerrank.tables import (
    ALL_SEGMENTS,
    FACT_COUNTS,
    OFFER_STATS_DAILY,
    POLICY_EVALUATIONS,
    SLOT_STATS_DAILY,
    EvaluationSource,
    Reason,
)

log = logging.getLogger(__name__)

RANDOM_POLICY = "random"
PUBLISHED = "/published"
CONTEXT = ["placement_id", "channel", "segment"]
# A candidate may put at most this share of its slot mass on items the logs never showed there; beyond it, the
# estimate would rest on the reward model alone and is refused.
MAX_UNSUPPORTED_SHARE = 0.01
REWARD_MODEL_WEIGHT = 20  # pseudo-impressions of the slot's mean rate behind each offer's rate in the reward model


class EvaluationUnavailable(Unavailable, ValueError):
    """Nothing to evaluate (no logged impressions with propensities, an unknown model or policy): says why."""


@dataclass(frozen=True)
class Policy:
    """A candidate policy: a ranking method, served per request (`explorable` methods) or as a fixed order."""

    name: str

    @property
    def ranking(self) -> str:
        """The ranking method whose lists the policy serves (random serves any method's eligible offers)."""
        if self.name == RANDOM_POLICY:
            return "priority"
        return self.name.removesuffix(PUBLISHED)

    @property
    def fixed_order(self) -> bool:
        return self.name != RANDOM_POLICY and (self.name.endswith(PUBLISHED) or not method_of(self.ranking).explorable)

    def check(self, catalog: Catalog) -> None:
        """EvaluationUnavailable unless the policy names a method the catalog can rank with."""
        try:
            method = method_of(self.ranking)
        except ValueError as error:
            raise EvaluationUnavailable(f"policy {self.name!r}: {error} (or random)") from None
        if self.name.endswith(PUBLISHED) and not method.explorable:
            raise EvaluationUnavailable(f"policy {self.name!r}: only an AI model's order has a published variant")
        problems = method.problems(catalog, decision_active=False)
        if problems:
            raise EvaluationUnavailable(f"policy {self.name!r}: {'; '.join(problems)}")


def default_policies(model: AIModel) -> list[Policy]:
    """What a model is compared with: itself as served and as published, priority, uniform random."""
    return [
        Policy(f"ai_model:{model.name}"),
        Policy(f"ai_model:{model.name}{PUBLISHED}"),
        Policy("priority"),
        Policy(RANDOM_POLICY),
    ]


# --- candidate lists and their probabilities ------------------------------------------------------------------


def assignments_of(catalog: Catalog, model: AIModel) -> set[tuple[str, str, str]]:
    """The (decision, placement, channel) triples of the decisions (active or draft) that rank with `model`."""
    return {
        (d.id, a.placement, catalog.channel_of(a.placement))
        for d in catalog.decisions
        for a in d.placements
        if a.method.model(catalog) == model
    }


def ranked_by(catalog: Catalog, assignments: set[tuple[str, str, str]], ranking: str) -> Catalog:
    """The catalog with the decision placements of `assignments` ranked by `ranking`, their decisions active."""
    decisions = []
    for decision in catalog.decisions:
        assigned = [
            a.model_copy(update={"ranking": ranking})
            if (decision.id, a.placement, catalog.channel_of(a.placement)) in assignments
            else a
            for a in decision.placements
        ]
        changed = assigned != list(decision.placements)
        update = {"placements": tuple(assigned), "status": DecisionStatus.active} if changed else {}
        decisions.append(decision.model_copy(update=update))
    return catalog.model_copy(update={"decisions": tuple(decisions)})


def candidate_lists(
    catalog: Catalog,
    policy: Policy,
    assignments: set[tuple[str, str, str]],
    facts: pd.DataFrame,
    day: date,
    settings: Settings,
) -> pd.DataFrame:
    """The lists `policy`'s ranking would have published for serving day `day` in the decisions of `assignments`."""
    variant = ranked_by(catalog, assignments, policy.ranking)
    method = method_of(policy.ranking)
    run_date = day - timedelta(days=1)
    rates = pd.DataFrame()
    model = method.model(variant)
    if method.uses_posteriors and model is not None:
        placements = sorted({(placement, channel) for _, placement, channel in assignments})
        rates = posteriors(facts, model, placements, run_date, Prior.of(settings))
    rows = candidates(variant, run_date, policy.ranking)
    frame = with_posteriors(pd.DataFrame(rows, columns=list(Candidate._fields)), rates, Prior.of(settings))
    ranked = rank_all(frame, run_date).merge(
        frame[["placement_id", "channel", "segment", "exploration_share"]].drop_duplicates(CONTEXT), on=CONTEXT
    )
    keys = zip(ranked["decision_id"], ranked["placement_id"], ranked["channel"])
    return ranked[np.array([key in assignments for key in keys], dtype=bool)]


def on_placements(frame: pd.DataFrame, placements: set[tuple[str, str]]) -> np.ndarray:
    """Which rows are on one of the (placement, channel) pairs."""
    return np.array([pair in placements for pair in zip(frame["placement_id"], frame["channel"])], dtype=bool)


def slot_targets(ranked: pd.DataFrame, policy: Policy, slots: int, seed: int) -> pd.DataFrame:
    """P(the policy puts each offer of one ranked list in each of the first `slots` slots): offer_id, slot,
    target. A fixed order puts rank k in slot k; random spreads 1 / K; a model's served policy mixes its
    exploration share with the Thompson draw's slot probabilities, as the lookup does."""
    ranked = ranked.sort_values("rank")
    offers, count = ranked["offer_id"].to_numpy(), len(ranked)
    shown = min(slots, count)
    if policy.name == RANDOM_POLICY:
        target = np.full((count, shown), 1.0 / count)
    elif policy.fixed_order:
        target = np.eye(count, shown)
    else:
        share = ranked["exploration_share"].iloc[0]  # none for a list of the fallback alone: it is always shown
        share = 0.0 if pd.isna(share) else float(share)
        cold = ranked["reason"].to_numpy() == Reason.COLD_START.value
        table, explored_first = split_by_cold_start(
            posterior_table(ranked["alpha"].to_numpy(float), ranked["beta"].to_numpy(float)), cold, share
        )
        in_slot = slot_probabilities(table, shown, seed)
        explore = random_slot_probability(count, shown, explored_first)
        target = serving_probability(in_slot, share, count, 0.0, explore)
    offer, slot = np.meshgrid(np.arange(count), np.arange(shown), indexing="ij")
    return pd.DataFrame({"offer_id": offers[offer.ravel()], "slot": slot.ravel() + 1, "target": target.ravel()})


def policy_targets(
    catalog: Catalog,
    policy: Policy,
    model: AIModel,
    logged: pd.DataFrame,
    facts: pd.DataFrame,
    days: list[date],
    settings: Settings,
) -> pd.DataFrame:
    """The policy's slot probabilities on each logged day, placement, channel and segment of the model. A segment
    the policy has no list of gets its all-traffic list, as the lookup serves it."""
    assignments = assignments_of(catalog, model)
    # (placement_id, channel): the highest slot logged; pandas types a MultiIndex's tuple keys as bare Hashable
    slots: dict[Any, Any] = logged.groupby(["placement_id", "channel"])["slot"].max().to_dict()
    frames = []
    for day in days:
        ranked = candidate_lists(catalog, policy, assignments, facts, day, settings)
        lists = {key: group for key, group in ranked.groupby(CONTEXT)}
        for (placement, channel), shown in slots.items():
            for segment in model.ranked_segments:
                group = lists.get((placement, channel, segment), lists.get((placement, channel, ALL_SEGMENTS)))
                if group is None:
                    continue
                seed = run_seed(day, policy.name, placement, channel, segment)
                frames.append(
                    slot_targets(group, policy, int(shown), seed).assign(
                        event_date=day, placement_id=placement, channel=channel, segment=segment
                    )
                )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["offer_id", "slot", "target", "event_date", *CONTEXT])
    )


# --- estimates -----------------------------------------------------------------------------------------------


def reward_model(logged: pd.DataFrame) -> pd.DataFrame:
    """The direct method's rate of each offer in each slot of a context: its logged rate over the window, shrunk
    towards the slot's mean rate by `REWARD_MODEL_WEIGHT` pseudo-impressions (an offer never shown there gets the
    slot's mean)."""
    keys = [*CONTEXT, "slot"]
    offers = logged.groupby([*keys, "offer_id"], as_index=False)[["impressions", "conversions"]].sum()
    slot_totals = offers.groupby(keys)[["impressions", "conversions"]].transform("sum")
    mean = slot_totals["conversions"] / slot_totals["impressions"]
    return offers.assign(
        reward=(offers["conversions"] + REWARD_MODEL_WEIGHT * mean) / (offers["impressions"] + REWARD_MODEL_WEIGHT),
        slot_mean=mean,
    )[[*keys, "offer_id", "reward", "slot_mean"]]


def unit_rows(logged: pd.DataFrame, targets: pd.DataFrame, rewards: pd.DataFrame) -> pd.DataFrame:
    """The logged rows with the candidate's probability (`target`, 0 for items it never shows), the reward
    model's rate and the direct method's value of their day and slot (`direct`)."""
    keys = ["event_date", *CONTEXT, "slot", "offer_id"]
    context_rewards = rewards.drop(columns="offer_id").drop_duplicates([*CONTEXT, "slot"])[
        [*CONTEXT, "slot", "slot_mean"]
    ]
    with_reward = targets.merge(rewards.drop(columns="slot_mean"), on=[*CONTEXT, "slot", "offer_id"], how="left")
    with_reward = with_reward.merge(context_rewards, on=[*CONTEXT, "slot"], how="left")
    with_reward["reward"] = with_reward["reward"].fillna(with_reward["slot_mean"])
    direct = (
        with_reward.assign(direct=with_reward["target"] * with_reward["reward"])
        .groupby(["event_date", *CONTEXT, "slot"], as_index=False)["direct"]
        .sum()
    )
    rows = logged.merge(targets, on=keys, how="left").merge(direct, on=["event_date", *CONTEXT, "slot"], how="left")
    rows = rows.merge(rewards.drop(columns="slot_mean"), on=[*CONTEXT, "slot", "offer_id"], how="left")
    return rows.assign(target=rows["target"].fillna(0.0), direct=rows["direct"].fillna(0.0))


def unsupported_share(logged: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Per context and slot: the share of the candidate's slot mass (over the logged days, weighted by each day's
    impressions) on offers the logs never showed in that slot, and the worst of them."""
    shown = logged[[*CONTEXT, "slot", "offer_id"]].drop_duplicates().assign(shown=True)
    volume = logged.groupby(["event_date", *CONTEXT, "slot"], as_index=False)["impressions"].sum()
    mass = targets.merge(volume, on=["event_date", *CONTEXT, "slot"]).merge(
        shown, on=[*CONTEXT, "slot", "offer_id"], how="left"
    )
    mass["weighted"] = mass["target"] * mass["impressions"]
    mass["missing"] = mass["weighted"].where(mass["shown"].isna(), 0.0)
    per_offer = mass.groupby([*CONTEXT, "slot", "offer_id"], as_index=False)[["weighted", "missing"]].sum()
    totals = per_offer.groupby([*CONTEXT, "slot"], as_index=False)[["weighted", "missing"]].sum()
    worst = per_offer.sort_values("missing", ascending=False).drop_duplicates([*CONTEXT, "slot"])
    totals = totals.merge(worst[[*CONTEXT, "slot", "offer_id"]], on=[*CONTEXT, "slot"])
    totals["unsupported_share"] = totals["missing"] / totals["weighted"].where(totals["weighted"] > 0)
    return totals[[*CONTEXT, "slot", "unsupported_share", "offer_id"]].rename(columns={"offer_id": "worst_offer"})


def estimate_units(
    policy: Policy, rows: pd.DataFrame, support: pd.DataFrame, max_weight: float = MAX_WEIGHT
) -> list[dict]:
    """One estimate per context and slot, and per context over all its slots (slot None)."""
    results = []
    for by_slot in (True, False):
        keys = [*CONTEXT, "slot"] if by_slot else CONTEXT
        for key, group in rows.groupby(keys):
            where = dict(zip(keys, key))
            unit_support = support.merge(pd.DataFrame([where]), on=keys)
            share = float(unit_support["unsupported_share"].fillna(0).max()) if len(unit_support) else 0.0
            row = {
                **where,
                "slot": where.get("slot"),
                "policy": policy.name,
                "unsupported_share": share,
                "impressions": int(group["impressions"].sum()),
                "conversions": int(group["conversions"].sum()),
            }
            missing = int(group.loc[group["propensity"].isna(), "impressions"].sum())
            if missing:
                row["refused"] = (
                    f"{missing} of {row['impressions']} impressions logged no propensity (served before "
                    "the lookup logged them, or by another server): evaluate a window where all did"
                )
            elif not (group["target"] > 0).any():
                row["refused"] = f"{policy.name} never shows what the logged traffic showed here: no estimate"
            elif share > MAX_UNSUPPORTED_SHARE:
                worst = unit_support.sort_values("unsupported_share", ascending=False).iloc[0]
                row["refused"] = (
                    f"{policy.name} puts {share:.1%} of slot {int(worst['slot'])} on items the logged traffic never "
                    f"showed there (most: {worst['worst_offer']}): no estimate without support"
                )
            else:
                try:
                    row |= evaluate(
                        group["impressions"].to_numpy(),
                        group["conversions"].to_numpy(),
                        group["propensity"].to_numpy(),
                        group["target"].to_numpy(),
                        group["reward"].to_numpy(),
                        group["direct"].to_numpy(),
                        max_weight,
                    ).as_row()
                except WeightsRefused as refused:
                    row["refused"] = str(refused)
            results.append(row)
    return results


def evaluate_model(
    catalog: Catalog,
    model: AIModel,
    policies: list[Policy],
    logged: pd.DataFrame,
    facts: pd.DataFrame,
    first: date,
    last: date,
    settings: Settings,
) -> pd.DataFrame:
    """`policy_evaluations` rows of `policies` on the impressions `model`'s placements logged in [first, last]."""
    placements = {(placement, channel) for _, placement, channel in assignments_of(catalog, model)}
    if not placements:
        raise EvaluationUnavailable(f"no decision placement ranks with AI model {model.name!r}")
    # deterministic serving (the published order, fallbacks) logs propensity 1: no other offer had a chance there,
    # so those impressions cannot speak for a candidate that would have shown something else
    logged = logged[
        (logged["propensity"].isna() | (logged["propensity"] < 1)).to_numpy()
        & on_placements(logged, placements)
        & logged["segment"].isin(model.ranked_segments).to_numpy()
        & logged["event_date"].between(first, last).to_numpy()
    ]
    if logged.empty:
        raise EvaluationUnavailable(
            f"no logged impressions with slots on {model.name}'s placements between {first} and {last}"
        )
    for policy in policies:
        policy.check(catalog)
        candidate = method_of(policy.ranking).model(catalog)
        missing = set(candidate.ranked_segments) - set(facts["segment"]) if candidate else set()
        if missing:
            raise EvaluationUnavailable(
                f"policy {policy.name!r}: no daily facts of segment(s) {', '.join(sorted(missing))} to learn from: "
                "the aggregate counts the segments of active personalized models only"
            )
    rewards = reward_model(logged)
    days = sorted(set(logged["event_date"]))
    results = []
    for policy in policies:
        try:
            targets = policy_targets(catalog, policy, model, logged, facts, days, settings)
        except RankingFailed as failed:
            raise EvaluationUnavailable(f"policy {policy.name!r} cannot rank: {failed}") from None
        # a candidate's probability is at most 1 and ingest accepts propensities from `min_propensity` up: a weight
        # above 1 / min_propensity comes from a propensity ingest would not accept today
        results += estimate_units(
            policy, unit_rows(logged, targets, rewards), unsupported_share(logged, targets), 1 / settings.min_propensity
        )
    frame = pd.DataFrame(results).reindex(columns=POLICY_EVALUATIONS.column_names)
    frame["logged_rate"] = frame["conversions"] / frame["impressions"]
    return frame.assign(window_end=last, window_start=first, model_name=model.name)


# --- I/O at the edges -----------------------------------------------------------------------------------------


def read_logs(
    settings: Settings, first: date, last: date, lookback_days: int, datasets: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`slot_stats_daily` of [first, last] and the daily facts (traffic types summed) the days' posteriors read, of
    the event `datasets` (a model's), summed over them."""
    from offerrank.engines.delta_rs import rows_between

    logged = rows_between(settings, SLOT_STATS_DAILY, "event_date", first, last)
    facts = rows_between(settings, OFFER_STATS_DAILY, "event_date", first - timedelta(days=lookback_days), last)
    if logged is None or facts is None:
        raise EvaluationUnavailable("no aggregated slot facts yet: run the nightly chain first")
    keys = ["event_date", "offer_id", "placement_id", "channel", "segment"]
    facts = facts_of(facts, datasets, FACT_COUNTS)
    counts = ["impressions", "conversions"]
    return facts_of(logged, datasets, counts), facts.groupby(keys, as_index=False)[counts].sum()


def replaced_by(window_end: date, model_name: str, policies: Iterable[str], source: EvaluationSource) -> dict:
    """The `policy_evaluations` rows a store of `source` replaces: the nightly report's, all of its window and model
    (and those stored before sources were); an ad hoc or draft evaluation's, its own of the `policies` it evaluated
    (the nightly rows and other policies' stay)."""
    where: dict[str, object] = {"window_end": window_end, "model_name": model_name}
    if source is EvaluationSource.NIGHTLY:
        return where | {"source": [source.value, None]}
    return where | {"source": source.value, "policy": sorted(set(policies))}


def store(
    settings: Settings,
    rows: pd.DataFrame,
    window_end: date,
    model_name: str,
    source: EvaluationSource,
    policies: Iterable[Policy] = (),
) -> None:
    """Write an evaluation's rows of the `policies` it evaluated (the nightly report's: all its policies) of
    `window_end` and `model_name` to `policy_evaluations` under `source`, replacing what `replaced_by` says (no
    rows: the earlier ones go)."""
    from offerrank.engines.delta_rs import write_frame

    where = replaced_by(window_end, model_name, [policy.name for policy in policies], source)
    rows = rows.assign(window_end=window_end, model_name=model_name, source=source.value)
    write_frame(settings, POLICY_EVALUATIONS, rows, mode="overwrite", where=where)


def run(
    settings: Settings,
    catalog: Catalog,
    model_name: str,
    first: date | None,
    last: date,
    policies: list[str] | None = None,
    source: EvaluationSource | None = None,
) -> pd.DataFrame:
    """Evaluate the policies (default: `default_policies`) for the named model of `catalog` over [first, last]
    (default: its look-back window ending `last`); store the rows in `policy_evaluations` under `source` when given
    (None: only return them)."""
    model = next((m for m in catalog.ai_models if m.name == model_name), None)
    if model is None:
        known = ", ".join(sorted(m.name for m in catalog.ai_models)) or "none"
        raise EvaluationUnavailable(f"no AI model {model_name!r} in the catalog (known: {known})")
    first = first or model.window_start(last)
    logged, facts = read_logs(settings, first, last, max(m.lookback_days for m in catalog.ai_models), model.datasets)
    chosen = [Policy(p) for p in policies] if policies else default_policies(model)
    rows = evaluate_model(catalog, model, chosen, logged, facts, first, last, settings)
    if source is not None:
        store(settings, rows, last, model.name, source, chosen)
    return rows
