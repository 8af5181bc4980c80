"""Model reports: does each AI model beat random serving, by how much, with what certainty (pandas, no JVM).

Reads  `offer_stats_daily` (the window's event dates: impressions and conversions per offer, placement, channel,
       segment and traffic type, conversions on their impression's date), `offer_conversion_rates` (the model's
       posteriors: the scores it served each day, for the Gini coefficient, and cold start at the window's end) and
       the registry's catalog — a few rows per offer and day, so reports run in pandas.
Writes `model_report_daily`  per report_date (an event date), model, placement, channel, segment, traffic type:
                             impressions, conversions, rate and its 95% interval; replaces dates [D - L, D]
                             (L = lateness days: late clicks still change them);
       `model_report`        per window_end (D), model and segment (`*` = all traffic): model against random
                             traffic, lift with its interval, p-value, random impressions still needed, Gini,
                             verdict; replaces window_end = D;
       `model_report_offers` per window_end, model, segment, placement, channel, offer: rate, interval, share of
                             traffic, cold start; replaces window_end = D;
       `policy_evaluations`  per window_end and model, source `nightly`: what other policies would have converted on
                             the window's logged impressions (off-policy estimates, see offerrank.jobs.evaluate);
       each model's page `<reports_dir>/<model>/<D>.html` and its figures `<D>.json` (see offerrank.reports.page),
                             and once `<reports_dir>/plotly-<version>.min.js`, the script every page loads.
A nightly report's window is the model's look-back window ending D. One computation (`model_report`) gives the rows
of the tables, the page and the JSON, so they show the same numbers.
Run: the nightly `report` step (after publish; a report failure never blocks a publish), or
     `offerrank report --model NAME [--from D1 --to D2] --out DIR [--format html|json]`.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from offerrank.catalog import AIModel, Catalog
from offerrank.engines.delta_rs import file_exists, open_table, rows_between, write_file, write_frame
from offerrank.errors import Unavailable
from offerrank.jobs.evaluate import EvaluationUnavailable
from offerrank.jobs.evaluate import run as evaluate
from offerrank.jobs.evaluate import store as store_evaluations
from offerrank.jobs.rank import latest_parameters
from offerrank.learning.bandit import facts_of
from offerrank.learning.contextual.training import explain
from offerrank.reports.stats import compare, gini, rate_interval
from offerrank.serving.policy import MODEL, RANDOM
from offerrank.settings import Settings
from offerrank.tables import (
    ALL_SEGMENTS,
    FACT_COUNTS,
    MODEL_REPORT,
    MODEL_REPORT_DAILY,
    MODEL_REPORT_OFFERS,
    OFFER_CONVERSION_RATES,
    OFFER_STATS_DAILY,
    POLICY_EVALUATIONS,
    UNKNOWN_TRAFFIC,
    EvaluationSource,
)

log = logging.getLogger(__name__)

COUNTS = ["impressions", "conversions"]
PLACEMENT_KEYS = ["placement_id", "channel"]
DATE_COLUMNS = ("report_date", "window_start", "window_end")


class ReportUnavailable(Unavailable, ValueError):
    """A report that cannot be made (an unknown model, no facts in the window)."""


@dataclass(frozen=True)
class ModelReport:
    """One model's report over [window_start, window_end]: the rows of the three tables, plus the running lift and
    the daily traffic shares of offers that the page charts."""

    model: AIModel
    window_start: date
    window_end: date
    daily: pd.DataFrame  # MODEL_REPORT_DAILY's columns
    trend: pd.DataFrame  # per segment, day and traffic type over all the model's placements: counts, rate, interval
    summary: pd.DataFrame  # MODEL_REPORT's columns, one row per segment
    offers: pd.DataFrame  # MODEL_REPORT_OFFERS's columns
    cumulative: pd.DataFrame  # per segment and day: lift of the window's traffic up to that day, with its interval
    offer_shares: pd.DataFrame  # per day and offer: share of the model's impressions (all traffic, segment `*`)
    evaluations: pd.DataFrame | None = None  # POLICY_EVALUATIONS's columns: what other policies would have converted
    evaluation_note: str = ""  # why there are no evaluations
    drivers: pd.DataFrame | None = None  # a contextual model's largest feature-level effects per placement and offer

    @property
    def verdict(self) -> str:
        """The verdict on all the model's traffic."""
        return self.summary.loc[self.summary["segment"] == ALL_SEGMENTS, "verdict"].iloc[0]

    def as_json(self) -> dict:
        """Every figure of the report, JSON-ready (what `--format json` prints and the page embeds)."""

        def records(frame: pd.DataFrame) -> list[dict]:
            dates = {column: str for column in DATE_COLUMNS if column in frame.columns}
            return json.loads(frame.astype(dates).to_json(orient="records"))

        return {
            "model": self.model.name,
            "model_type": self.model.type.value,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "summary": records(self.summary),
            "offers": records(self.offers),
            "daily": records(self.daily),
            "trend": records(self.trend),
            "cumulative": records(self.cumulative),
            "offer_shares": records(self.offer_shares),
            "evaluations": records(self.evaluations) if self.evaluations is not None else [],
            "evaluation_note": self.evaluation_note,
            "drivers": records(self.drivers) if self.drivers is not None else [],
        }


# --- pure transformations -----------------------------------------------------------------------------------


def with_rates(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """Adds the rate and 95% interval of each row's `<prefix>impressions` and `<prefix>conversions`."""
    impressions, conversions = frame[f"{prefix}impressions"], frame[f"{prefix}conversions"]
    low, high = rate_interval(conversions, impressions)
    rate_column = f"{prefix}rate" if prefix else "conversion_rate"
    return frame.assign(
        **{
            rate_column: np.where(impressions > 0, conversions / impressions.where(impressions > 0, 1), np.nan),
            f"{prefix}ci_low": low,
            f"{prefix}ci_high": high,
        }
    )


def model_facts(stats: pd.DataFrame, model: AIModel, placements: list[tuple[str, str]], first: date, last: date):
    """The rows of `offer_stats_daily` a model's report counts: its datasets, its placements, its segments, the
    window."""
    assigned = pd.DataFrame(placements, columns=PLACEMENT_KEYS)
    stats = facts_of(stats, model.datasets, FACT_COUNTS)
    in_window = stats["event_date"].between(first, last) & stats["segment"].isin(model.ranked_segments)
    return stats[in_window].merge(assigned, on=PLACEMENT_KEYS)


def counts_by(facts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Impressions and conversions per `keys`, with rate and interval; event dates become report dates."""
    grouped = facts.groupby(keys, as_index=False)[COUNTS].sum()
    return with_rates(grouped).rename(columns={"event_date": "report_date"})


def daily_rows(facts: pd.DataFrame, model: AIModel) -> pd.DataFrame:
    """Per event date, placement, channel, segment and traffic type: counts, rate and interval."""
    daily = counts_by(facts, ["event_date", *PLACEMENT_KEYS, "segment", "traffic_type"])
    return daily.assign(model_name=model.name)[MODEL_REPORT_DAILY.column_names]


def served_scores(rates: pd.DataFrame, model: AIModel) -> pd.DataFrame:
    """The score each offer was served with on each day: its posterior mean as of the day before."""
    own = rates[rates["model_name"] == model.name]
    return own.assign(
        event_date=[d + timedelta(days=1) for d in own["as_of_date"]],
        score=own["alpha"] / (own["alpha"] + own["beta"]),
    )[["event_date", "offer_id", *PLACEMENT_KEYS, "segment", "score"]]


def traffic_totals(facts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Model and random traffic side by side per `keys`: model_impressions, model_conversions, random_...."""
    split = {
        f"{traffic}_{count}": facts[count].where(facts["traffic_type"] == traffic, 0)
        for traffic in (MODEL, RANDOM)
        for count in COUNTS
    }
    return facts.assign(**split).groupby(keys, as_index=False)[list(split)].sum()


def _rows(frame: pd.DataFrame) -> Iterator[Any]:
    """A frame's rows as named tuples of its columns (`itertuples`), their fields typed as what the cells hold."""
    return frame.itertuples()


def comparison_columns(totals: pd.DataFrame) -> pd.DataFrame:
    """`compare` of each row of `traffic_totals`, as columns."""
    compared = [
        compare(r.model_conversions, r.model_impressions, r.random_conversions, r.random_impressions).as_dict()
        for r in _rows(totals)
    ]
    columns = ["lift", "lift_low", "lift_high", "p_value", "random_impressions_needed", "verdict"]
    return pd.DataFrame([{c: row[c] for c in columns} for row in compared], index=totals.index, columns=columns)


def summary_rows(facts: pd.DataFrame, scores: pd.DataFrame, model: AIModel, first: date, last: date) -> pd.DataFrame:
    """Per segment: model against random traffic over the window, and the Gini of the served scores on random
    traffic (how well the scores ordered the offers that random serving showed)."""
    totals = traffic_totals(facts, ["segment"]).set_index("segment").reindex(model.ranked_segments, fill_value=0)
    totals = totals.reset_index()
    summary = with_rates(with_rates(totals, "model_"), "random_").join(comparison_columns(totals))
    random_traffic = facts[facts["traffic_type"] == RANDOM].merge(
        scores, on=["event_date", "offer_id", *PLACEMENT_KEYS, "segment"]
    )
    summary["gini"] = [
        gini(group["score"], group["conversions"], group["impressions"] - group["conversions"])
        for group in (random_traffic[random_traffic["segment"] == segment] for segment in summary["segment"])
    ]
    summary = summary.assign(window_end=last, window_start=first, model_name=model.name, model_type=model.type.value)
    summary["random_impressions_needed"] = summary["random_impressions_needed"].astype("Int64")
    return summary[MODEL_REPORT.column_names]


def offer_rows(facts: pd.DataFrame, rates: pd.DataFrame, model: AIModel, first: date, last: date) -> pd.DataFrame:
    """Per segment, placement and offer over the window: rate, interval, share of the placement's traffic, and
    whether the offer is still in cold start at the window's end (no posterior yet counts as cold start)."""
    keys = ["segment", *PLACEMENT_KEYS, "offer_id"]
    offers = facts.groupby(keys, as_index=False)[COUNTS].sum()
    placement_total = offers.groupby(["segment", *PLACEMENT_KEYS])["impressions"].transform("sum")
    offers["traffic_share"] = offers["impressions"] / placement_total.where(placement_total > 0)
    at_end = rates[(rates["model_name"] == model.name) & (rates["as_of_date"] == last)][[*keys, "cold_start"]]
    offers = offers.merge(at_end, on=keys, how="left")
    offers["cold_start"] = offers["cold_start"].fillna(True).astype(bool)
    offers = with_rates(offers).assign(window_end=last, window_start=first, model_name=model.name)
    return offers.sort_values(["segment", "conversion_rate"], ascending=[True, False])[MODEL_REPORT_OFFERS.column_names]


def cumulative_lift(facts: pd.DataFrame) -> pd.DataFrame:
    """Per segment and day: the lift of all the window's traffic up to that day, with its interval."""
    per_day = traffic_totals(facts, ["segment", "event_date"]).sort_values(["segment", "event_date"])
    counts = [c for c in per_day.columns if c.endswith(tuple(COUNTS))]
    per_day[counts] = per_day.groupby("segment")[counts].cumsum()
    running = per_day.join(comparison_columns(per_day))
    return running.rename(columns={"event_date": "report_date"}).reset_index(drop=True)


def offer_shares(facts: pd.DataFrame) -> pd.DataFrame:
    """Per day and offer: its share of the day's impressions over the model's placements (segment `*`)."""
    everyone = facts[facts["segment"] == ALL_SEGMENTS]
    shares = everyone.groupby(["event_date", "offer_id"], as_index=False)[["impressions"]].sum()
    day_total = shares.groupby("event_date")["impressions"].transform("sum")
    shares["traffic_share"] = shares["impressions"] / day_total.where(day_total > 0)
    return shares.rename(columns={"event_date": "report_date"})


def drivers(parameters: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per placement, channel and offer of a contextual model's training, the `top` feature levels with the largest
    effects on its click rate (posterior median and 90% interval, see `explain`)."""
    rows = [
        {"placement_id": r.placement_id, "channel": r.channel, "offer_id": r.offer_id, **reason}
        for r in _rows(parameters)
        for reason in explain(list(r.features), list(r.weights), list(r.covariance), top)
    ]
    return pd.DataFrame(rows, columns=["placement_id", "channel", "offer_id", "feature", "effect", "low", "high"])


def model_report(
    model: AIModel,
    placements: list[tuple[str, str]],
    stats: pd.DataFrame,
    rates: pd.DataFrame,
    first: date,
    last: date,
) -> ModelReport:
    """A model's report over [first, last] from `offer_stats_daily` and `offer_conversion_rates` rows."""
    facts = model_facts(stats, model, placements, first, last)
    if facts.empty:
        raise ReportUnavailable(f"no facts for {model.name}'s placements between {first} and {last}")
    return ModelReport(
        model=model,
        window_start=first,
        window_end=last,
        daily=daily_rows(facts, model),
        trend=counts_by(facts, ["segment", "event_date", "traffic_type"]),
        summary=summary_rows(facts, served_scores(rates, model), model, first, last),
        offers=offer_rows(facts, rates, model, first, last),
        cumulative=cumulative_lift(facts),
        offer_shares=offer_shares(facts),
    )


# --- I/O at the edges -----------------------------------------------------------------------------------------


def read_facts(settings: Settings, first: date, last: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`offer_stats_daily` of event dates [first, last] and `offer_conversion_rates` of as-of dates
    [first - 1, last] (the scores served on `first` are those of the day before)."""
    stats = rows_between(settings, OFFER_STATS_DAILY, "event_date", first, last)
    rates = rows_between(settings, OFFER_CONVERSION_RATES, "as_of_date", first - timedelta(days=1), last)
    if stats is None or rates is None:
        raise ReportUnavailable("no aggregated facts yet: run the nightly chain first")
    if "traffic_type" not in stats.columns:  # facts aggregated before traffic types were
        stats["traffic_type"] = None
    stats["traffic_type"] = stats["traffic_type"].fillna(UNKNOWN_TRAFFIC)
    return stats, rates


def latest_fact_date(settings: Settings) -> date:
    """The latest event date `offer_stats_daily` holds (where a report ends by default)."""
    opened = open_table(settings, OFFER_STATS_DAILY)
    days = [date.fromisoformat(p["event_date"]) for p in opened.partitions()] if opened is not None else []
    if not days:
        raise ReportUnavailable("no aggregated facts yet: run the nightly chain first")
    return max(days)


def page_path(settings: Settings, model_name: str, window_end: date, suffix: str = "html") -> str:
    """Where the nightly run writes a model's report page (and its JSON figures)."""
    return f"{settings.reports_dir.rstrip('/')}/{model_name}/{window_end.isoformat()}.{suffix}"


def write_report_files(
    report: ModelReport, html_path: str | None, json_path: str | None, scripts_folder: str | None = None
) -> None:
    """The report as an HTML page and/or its figures as JSON. The page loads plotly.js from `scripts_folder`
    (default: the page's folder), where it is written once: one copy serves every page under it."""
    if html_path:
        from plotly.offline import get_plotlyjs

        from offerrank.reports.page import render, script_name

        page_folder = posixpath.dirname(html_path)
        script = f"{(scripts_folder or page_folder).rstrip('/')}/{script_name()}"
        if not file_exists(script):
            write_file(script, get_plotlyjs().encode())
        write_file(html_path, render(report, posixpath.relpath(script, page_folder)).encode())
    if json_path:
        write_file(json_path, json.dumps(report.as_json(), indent=1).encode())


def reports_for(
    settings: Settings, catalog: Catalog, model_names: list[str], first: date | None, last: date
) -> list[ModelReport | ReportUnavailable]:
    """Reports of the named models (each over its look-back window ending `last`, or over [first, last]); a model
    without facts in its window gets the ReportUnavailable that says so."""
    models = [m for m in catalog.ai_models if m.name in model_names]
    starts = [first or m.window_start(last) for m in models]
    stats, rates = read_facts(settings, min(starts, default=last), last)
    reports: list[ModelReport | ReportUnavailable] = []
    for model, start in zip(models, starts):
        try:
            report = model_report(model, catalog.placements_of(model), stats, rates, start, last)
        except ReportUnavailable as unavailable:
            reports.append(unavailable)
            continue
        if model.contextual:
            report = replace(report, drivers=drivers(latest_parameters(settings, model.name, last)))
        try:
            evaluations = evaluate(settings, catalog, model.name, start, last)
            reports.append(replace(report, evaluations=evaluations))
        except EvaluationUnavailable as unavailable:
            reports.append(replace(report, evaluation_note=f"no off-policy estimates: {unavailable}"))
    return reports


def empty(table) -> pd.DataFrame:
    return pd.DataFrame(columns=table.column_names)


def run(settings: Settings, catalog: Catalog, run_date: date) -> str:
    """The nightly reports of every active model: tables and pages; returns a line per model."""
    outcomes = reports_for(settings, catalog, [m.name for m in catalog.active_models()], None, run_date)
    reports = [r for r in outcomes if isinstance(r, ModelReport)]
    recent = (run_date - timedelta(days=settings.lateness_days), run_date)

    def rows(part: str, table) -> pd.DataFrame:
        frames = [getattr(r, part) for r in reports]
        return pd.concat(frames, ignore_index=True) if frames else empty(table)

    daily = rows("daily", MODEL_REPORT_DAILY)
    write_frame(
        settings,
        MODEL_REPORT_DAILY,
        daily[daily["report_date"].between(*recent)],
        mode="overwrite",
        where={"report_date": recent},
    )
    write_frame(settings, MODEL_REPORT, rows("summary", MODEL_REPORT), mode="overwrite", where={"window_end": run_date})
    for report in reports:  # a rerun without estimates removes the run's earlier ones
        evaluations = report.evaluations if report.evaluations is not None else empty(POLICY_EVALUATIONS)
        store_evaluations(settings, evaluations, run_date, report.model.name, EvaluationSource.NIGHTLY)
    write_frame(
        settings,
        MODEL_REPORT_OFFERS,
        rows("offers", MODEL_REPORT_OFFERS),
        mode="overwrite",
        where={"window_end": run_date},
    )
    lines = [f"no report: {outcome}" for outcome in outcomes if isinstance(outcome, ReportUnavailable)]
    for report in reports:
        page = page_path(settings, report.model.name, run_date)
        write_report_files(report, page, page_path(settings, report.model.name, run_date, "json"), settings.reports_dir)
        lines.append(f"{report.model.name}: {report.verdict}; report {page}")
    return "\n".join(lines) or "no active AI model to report on"
