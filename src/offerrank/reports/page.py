"""A model report as one small HTML page: Plotly charts loading plotly.js from one shared copy next to the pages
(`script_name`: opens offline, no CDN, and 4.8 MB once per reports folder instead of once per page).

Reads a `offerrank.jobs.report.ModelReport` (every number on the page is one of its rows) and returns the page's
HTML; `offerrank.jobs.report` writes it and the script. The charts, for all traffic (segment `*`):
- conversion rate of model and random traffic per day, with 95% intervals;
- cumulative lift of model over random traffic, with its 95% interval;
- conversion rate per offer and placement over the window, sorted, with 95% intervals (cold-start offers marked);
- each offer's share of the model's impressions per day (exploration shrinking as the model learns);
- for personalized models, model against random traffic per segment;
and a table of what other policies (the model as published, priority, random) would have converted on the same
traffic: off-policy estimates (see `offerrank.jobs.evaluate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from offerrank.jobs.report import ModelReport

COLORS = {"model": "#2563eb", "random": "#9ca3af"}
LAYOUT = {"template": "plotly_white", "height": 380, "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}
DAYS = {"xaxis_tickformat": "%b %d", "xaxis_dtick": 86_400_000}  # one tick a day on date axes


def script_name() -> str:
    """The file name of the plotly.js copy the pages load; versioned, so a page keeps the script it was drawn for."""
    from plotly.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


def render(report: ModelReport, script_src: str) -> str:
    """The report's page, loading plotly.js from `script_src` (the shared copy, relative to the page)."""
    figures = [
        rate_over_time(report),
        cumulative_lift(report),
        offer_rates(report),
        offer_traffic_shares(report),
    ]
    if report.summary["segment"].nunique() > 1:
        figures.append(segment_comparison(report))
    sections = []
    for index, figure in enumerate(figures):
        script = script_src if index == 0 else False  # the first chart loads plotly.js, the others use it
        sections.append(f'<section class="chart">{figure.to_html(full_html=False, include_plotlyjs=script)}</section>')
    charts = "\n".join(sections)
    model = escape(report.model.name)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Model report: {model} ({report.window_start} to {report.window_end})</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #111827; }}
h1 {{ margin-bottom: 0.2em; }} .window {{ color: #6b7280; margin-top: 0; }}
.verdict {{ font-size: 1.3em; padding: 0.8em 1em; background: #f3f4f6; border-left: 6px solid #2563eb; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.chart {{ margin: 1.5em 0; }} td.verdict-cell {{ text-align: left; min-width: 22em; }}
</style>
</head>
<body>
<h1>Model report: {model}</h1>
<p class="window">{escape(report.model.type.value.replace("_", " "))} model ·
{escape(report.model.description)} · traffic from {report.window_start} to {report.window_end}</p>
<p class="verdict">{escape(report.verdict)}</p>
{summary_table(report.summary)}
{charts}
{drivers_section(report)}
{evaluation_section(report)}
<p class="window">Intervals are 95%: Wilson intervals for conversion rates, the delta method on the log rate ratio
for lift; p-values from the Wald test of that log rate ratio. Gini = 2·AUC − 1 of the scores the model served against
conversions on random traffic.</p>
</body>
</html>
"""


def summary_table(summary: pd.DataFrame) -> str:
    """Model against random traffic per segment, as an HTML table."""

    def percent(value, digits: int = 2) -> str:
        return "–" if value is None or value != value else f"{value:.{digits}%}"

    def interval(low, high, digits: int = 2) -> str:
        return "–" if low is None or low != low else f"{percent(low, digits)} – {percent(high, digits)}"

    rows = "".join(
        f"<tr><td>{escape('all traffic' if r.segment == '*' else r.segment)}</td>"
        f"<td>{r.model_impressions:,}</td><td>{percent(r.model_rate)}</td>"
        f"<td>{interval(r.model_ci_low, r.model_ci_high)}</td>"
        f"<td>{r.random_impressions:,}</td><td>{percent(r.random_rate)}</td>"
        f"<td>{interval(r.random_ci_low, r.random_ci_high)}</td>"
        f"<td>{percent(r.lift, 0)}</td><td>{interval(r.lift_low, r.lift_high, 0)}</td>"
        f"<td>{'–' if r.p_value != r.p_value or r.p_value is None else p_value(r.p_value)}</td>"
        f"<td>{'–' if r.gini != r.gini or r.gini is None else f'{r.gini:.2f}'}</td>"
        f"<td class='verdict-cell'>{escape(r.verdict)}</td></tr>"
        for r in _rows(summary)
    )
    return (
        "<table><thead><tr><th>segment</th><th>model impressions</th><th>model CR</th><th>95% interval</th>"
        "<th>random impressions</th><th>random CR</th><th>95% interval</th><th>lift</th><th>95% interval</th>"
        "<th>p-value</th><th>Gini</th><th>verdict</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def drivers_section(report: ModelReport) -> str:
    """A contextual model's largest feature-level effects per offer, as an HTML table (nothing for other models)."""
    if report.drivers is None:
        return ""
    if report.drivers.empty:
        return "<h2>What drives the scores</h2><p>No offer is past the personalization thresholds yet.</p>"
    rows = "".join(
        f"<tr><td>{escape(r.placement_id)}/{escape(r.channel)}</td><td>{escape(r.offer_id)}</td>"
        f"<td>{escape(r.feature)}</td><td>{r.effect:+.4f}</td><td>{r.low:+.4f} to {r.high:+.4f}</td></tr>"
        for r in _rows(report.drivers)
    )
    return (
        "<h2>What drives the scores</h2>"
        "<p class='window'>Per offer, the feature levels that change its click rate most against their feature's "
        "average level, with 90% posterior intervals (the latest training; <code>offerrank models explain</code> "
        "prints the same).</p>"
        "<table><thead><tr><th>placement</th><th>offer</th><th>feature level</th><th>effect</th>"
        "<th>90% interval</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def evaluation_section(report: ModelReport) -> str:
    """What other policies would have converted on the model's logged impressions (all slots), as an HTML table."""
    if report.evaluations is None:
        return f"<h2>Other policies on this traffic</h2><p>{escape(report.evaluation_note)}</p>"
    pooled = report.evaluations[report.evaluations["slot"].isna()]

    def cell(r, name: str) -> str:
        value, low, high = getattr(r, name), getattr(r, f"{name}_low"), getattr(r, f"{name}_high")
        return f"<td>{value:.2%}</td><td>{low:.2%} – {high:.2%}</td>"

    rows = "".join(
        f"<tr><td>{escape(r.placement_id)}/{escape(r.channel)}</td>"
        f"<td>{escape('all traffic' if r.segment == '*' else r.segment)}</td><td>{escape(r.policy)}</td>"
        f"<td>{r.impressions:,}</td><td>{r.logged_rate:.2%}</td>"
        + (
            f"{cell(r, 'dr')}{cell(r, 'snipw')}<td>{r.effective_sample_size:,.0f}</td><td></td>"
            if pd.isna(r.refused)
            else f"<td colspan='5'></td><td class='verdict-cell'>{escape(r.refused)}</td>"
        )
        + "</tr>"
        for r in _rows(pooled)
    )
    return (
        "<h2>Other policies on this traffic (off-policy estimates)</h2>"
        "<p class='window'>The conversion rate each policy would have had on the impressions these placements "
        "logged, from their logged propensities: doubly robust (DR) and self-normalized IPW estimates with 95% "
        "intervals, and the effective sample size they rest on. Trust an estimate whose interval is narrow and "
        "whose effective sample size is in the thousands.</p>"
        "<table><thead><tr><th>placement</th><th>segment</th><th>policy</th><th>logged impressions</th>"
        "<th>logged CR</th><th>DR</th><th>95% interval</th><th>SNIPW</th><th>95% interval</th>"
        "<th>effective sample</th><th>refused</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _rows(frame: pd.DataFrame) -> Iterator[Any]:
    """A frame's rows as named tuples of its columns (`itertuples`), their fields typed as what the cells hold."""
    return frame.itertuples()


def p_value(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def rate_over_time(report: ModelReport):
    import plotly.graph_objects as go

    trend = report.trend[report.trend["segment"] == "*"]
    figure = go.Figure()
    for traffic in ("model", "random"):
        rows = trend[trend["traffic_type"] == traffic]
        figure.add_trace(
            go.Scatter(
                x=rows["report_date"],
                y=rows["conversion_rate"],
                name=f"{traffic} traffic",
                mode="lines+markers",
                line={"color": COLORS[traffic]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_high"] - rows["conversion_rate"],
                    "arrayminus": rows["conversion_rate"] - rows["ci_low"],
                },
            )
        )
    return figure.update_layout(
        title="Conversion rate per day: model vs random traffic (95% intervals)",
        yaxis_tickformat=".1%",
        **LAYOUT,
        **DAYS,
    )


def cumulative_lift(report: ModelReport):
    import plotly.graph_objects as go

    running = report.cumulative[report.cumulative["segment"] == "*"]
    figure = go.Figure(
        [
            go.Scatter(
                x=running["report_date"], y=running["lift_high"], mode="lines", line={"width": 0}, showlegend=False
            ),
            go.Scatter(
                x=running["report_date"],
                y=running["lift_low"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(37, 99, 235, 0.2)",
                name="95% interval",
            ),
            go.Scatter(
                x=running["report_date"],
                y=running["lift"],
                mode="lines+markers",
                line={"color": COLORS["model"]},
                name="lift",
            ),
        ]
    )
    figure.add_hline(y=0, line_dash="dash", line_color=COLORS["random"])
    return figure.update_layout(
        title="Cumulative lift of model over random traffic", yaxis_tickformat="+.0%", **LAYOUT, **DAYS
    )


def offer_rates(report: ModelReport):
    import plotly.graph_objects as go

    offers = report.offers[report.offers["segment"] == "*"].sort_values("conversion_rate")
    labels = offers["offer_id"] + " @ " + offers["placement_id"]
    figure = go.Figure(
        go.Bar(
            x=offers["conversion_rate"],
            y=labels,
            orientation="h",
            marker_color=[COLORS["random"] if cold else COLORS["model"] for cold in offers["cold_start"]],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": offers["ci_high"] - offers["conversion_rate"],
                "arrayminus": offers["conversion_rate"] - offers["ci_low"],
            },
            customdata=offers[["impressions", "traffic_share"]],
            hovertemplate="%{y}: %{x:.2%} over %{customdata[0]:,} impressions, %{customdata[1]:.1%} of traffic",
            name="conversion rate",
        )
    )
    return figure.update_layout(
        title="Conversion rate per offer over the window (95% intervals; grey: still in cold start)",
        xaxis_tickformat=".1%",
        **{**LAYOUT, "height": max(380, 22 * len(offers) + 120)},
    )


def offer_traffic_shares(report: ModelReport):
    import plotly.graph_objects as go

    shares = report.offer_shares
    figure = go.Figure(
        [
            go.Scatter(x=rows["report_date"], y=rows["traffic_share"], name=offer, stackgroup="share", mode="lines")
            for offer, rows in shares.groupby("offer_id")
        ]
    )
    return figure.update_layout(
        title="Share of the model's impressions per offer and day", yaxis_tickformat=".0%", **LAYOUT, **DAYS
    )


def segment_comparison(report: ModelReport):
    import plotly.graph_objects as go

    summary = report.summary
    figure = go.Figure(
        [
            go.Bar(
                x=summary["segment"].replace({"*": "all traffic"}),
                y=summary[f"{traffic}_rate"],
                name=f"{traffic} traffic",
                marker_color=COLORS[traffic],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": summary[f"{traffic}_ci_high"] - summary[f"{traffic}_rate"],
                    "arrayminus": summary[f"{traffic}_rate"] - summary[f"{traffic}_ci_low"],
                },
            )
            for traffic in ("model", "random")
        ]
    )
    return figure.update_layout(
        title="Model vs random traffic per segment (95% intervals)", barmode="group", yaxis_tickformat=".1%", **LAYOUT
    )
