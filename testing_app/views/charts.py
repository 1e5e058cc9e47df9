"""Plotly figures from selector output: pure functions returning an HTML fragment each.

A fragment is an empty chart box and the figure as a JSON data block; static/js/charts.js draws
every box with plotly.js (loaded from static/vendor/plotly/, never a CDN). No inline script, so
the Content-Security-Policy forbids them all. Symbols and text accompany every colour.
"""

from collections import defaultdict
from functools import cache
from itertools import accumulate
from uuid import uuid4

import plotly.graph_objects as go
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.safestring import mark_safe
from plotly.io.json import to_json_plotly

from testing_app.selectors.hosts import HostDay
from testing_app.selectors.matrix import ResultsMatrix
from testing_app.selectors.trends import DailyVerdicts
from testing_app.selectors.trends import ReleaseWave
from testing_app.selectors.verdict_display import DISPLAY_ORDER
from testing_app.selectors.verdict_display import SEVERITY_RANK
from testing_app.selectors.verdict_display import style_of

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "plot_bgcolor": "#ffffff",
    "paper_bgcolor": "#ffffff",
    "autosize": True,
}
# Days as categories: a period with one or two days of data stays readable instead of zooming
# into milliseconds of a date axis.
DAY_AXIS = {"type": "category", "title": "day (UTC)"}
# Below this many points a series is drawn with markers (a line needs two points to be seen, a
# stacked area three) and a box plot shows its points.
FEW_POINTS = 5


def count_axis(title: str, values) -> dict:
    """A y axis for counts (jobs, cells): whole numbers from zero. With small counts plotly's
    automatic ticks fall between integers (0.5, 1.26), so they are forced to steps of 1."""
    axis = {"title": title, "rangemode": "tozero", "tickformat": ",d"}
    if max(values, default=0) <= 10:
        axis.update(tick0=0, dtick=1)
    return axis


def duration_unit(seconds: list[float]) -> tuple[str, float]:
    """(unit, divisor) that keeps durations readable: seconds for jobs under two minutes (an
    install check takes 0.1 s, which in minutes read 0.003), minutes above, hours past two."""
    longest = max(seconds, default=0)
    if longest < 120:
        return "seconds", 1.0
    if longest < 7200:
        return "minutes", 60.0
    return "hours", 3600.0


class PlainFigure:
    """The part of plotly's `go.Figure` these charts use (add_bar/add_scatter/add_box,
    update_layout, to_plotly_json), built as plain dicts. go.Figure validates every property
    against plotly's schema on each call: on the hosts page (13 hosts x 2 figures) that took
    more time than everything else the page does. The JSON is the same figure: the default
    template included, titles in their {"text": ...} form, `marker_color` as marker.color."""

    def __init__(self):
        self.data: list[dict] = []
        self.layout: dict = {}

    def _add(self, kind: str, properties: dict) -> None:
        trace: dict = {"type": kind}
        for key, value in properties.items():
            prefix, _, rest = key.partition("_")
            if rest and prefix in ("marker", "line"):
                trace.setdefault(prefix, {})[rest] = value
            else:
                trace[key] = value
        self.data.append(trace)

    def add_bar(self, **properties) -> None:
        self._add("bar", properties)

    def add_scatter(self, **properties) -> None:
        self._add("scatter", properties)

    def add_box(self, **properties) -> None:
        self._add("box", properties)

    def update_layout(self, **properties) -> None:
        for key, value in properties.items():
            if key == "title" and isinstance(value, str):
                value = {"text": value}
            elif key.startswith(("xaxis", "yaxis")) and isinstance(value.get("title"), str):
                value = {**value, "title": {"text": value["title"]}}
            self.layout[key] = value

    def to_plotly_json(self) -> dict:
        return {"data": self.data, "layout": {"template": _default_template(), **self.layout}}


@cache
def _default_template() -> dict:
    """The template go.Figure puts in every layout (plotly.io.templates.default)."""
    return go.Figure().to_plotly_json()["layout"]["template"]


# What json_script escapes, so the JSON cannot close its <script> block early.
_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def _html(figure: go.Figure | PlainFigure) -> SafeString:
    """The chart box and its figure as an application/json block, which browsers never run."""
    parts = figure.to_plotly_json()
    # plotly's own encoder (the one figure.to_json() uses), with the config beside the figure.
    payload = to_json_plotly(
        {"data": parts["data"], "layout": parts["layout"], "config": PLOT_CONFIG}
    )
    figure_id = f"figure-{uuid4().hex}"
    data_block = mark_safe(  # noqa: S308 - the JSON's <, > and & are escaped (_JSON_SCRIPT_ESCAPES)
        f'<script type="application/json" id="{figure_id}">'
        f"{payload.translate(_JSON_SCRIPT_ESCAPES)}</script>"
    )
    return format_html('<div class="plotly-chart" data-figure="{}"></div>{}', figure_id, data_block)


def _empty(title: str, message: str) -> str:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        height=220,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[{"text": message, "showarrow": False, "font": {"size": 14}}],
        **LAYOUT,
    )
    return _html(figure)


def matrix_heatmap(matrix: ResultsMatrix) -> str:
    """The matrix page's rows as a heatmap: colour by worst verdict, symbol and count as text."""
    if not matrix.rows or not matrix.columns:
        return _empty("Compatibility heatmap", "No packages match these filters.")
    # Discrete colours: z is the severity rank, each rank owns one band of the colour scale.
    bands = len(DISPLAY_ORDER)
    scale = []
    for rank, key in enumerate(DISPLAY_ORDER):
        colour = style_of(key).colour if key != "missing" else "#eaeef2"
        scale += [[rank / bands, colour], [(rank + 1) / bands, colour]]
    z, text, hover = [], [], []
    for row in matrix.rows:
        z.append([SEVERITY_RANK[cell.worst] for cell in row.cells])
        text.append(
            [
                f"{style_of(cell.worst).symbol} {cell.worst_count or ''}".strip()
                for cell in row.cells
            ]
        )
        hover.append(
            [
                ", ".join(f"{n} {style_of(v).label}" for v, n in cell.counts) or "no result"
                for cell in row.cells
            ]
        )
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[release.version for release in matrix.columns],
            y=[row.package.name for row in matrix.rows],
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{y} × PyTorch %{x}<br>%{customdata}<extra></extra>",
            colorscale=scale,
            zmin=0,
            zmax=bands,
            showscale=False,
            xgap=2,
            ygap=2,
        )
    )
    figure.update_layout(
        title="Worst verdict per package × PyTorch release",
        height=max(260, 28 * len(matrix.rows) + 120),
        xaxis={"type": "category", "side": "top", "title": "PyTorch"},
        yaxis={"type": "category", "autorange": "reversed"},
        **LAYOUT,
    )
    return _html(figure)


def pass_rate_over_time(days: list[DailyVerdicts], *, title: str) -> str:
    """Daily pass rate (line, % of jobs that ran) over the number of test jobs (bars)."""
    if not days:
        return _empty(title, "No finished test jobs in this period.")
    x = [d.day.isoformat() for d in days]
    figure = PlainFigure()
    figure.add_bar(
        x=x,
        y=[d.ran for d in days],
        name="jobs that ran",
        marker_color="#d0d7de",
        yaxis="y2",
        hovertemplate="%{x}: %{y} jobs<extra></extra>",
    )
    figure.add_scatter(
        x=x,
        y=[d.pass_rate for d in days],
        name="pass rate %",
        mode="lines+markers",
        line={"color": style_of("passed").colour, "width": 3},
        hovertemplate="%{x}: %{y}% passed<extra></extra>",
    )
    figure.update_layout(
        title=title,
        height=320,
        xaxis=DAY_AXIS,
        yaxis={"title": "pass rate %", "range": [0, 100]},
        yaxis2={
            **count_axis("jobs", [d.ran for d in days]),
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
        },
        legend={"orientation": "h", "y": -0.2},
        **LAYOUT,
    )
    return _html(figure)


def durations_by_variant(durations: dict[str, list[float]], *, title: str) -> str:
    """Box plot of job durations per variant, in seconds, minutes or hours as they need."""
    if not durations:
        return _empty(title, "No finished test jobs with a duration yet.")
    unit, divisor = duration_unit([s for values in durations.values() for s in values])
    figure = PlainFigure()
    for variant, seconds in durations.items():
        figure.add_box(
            y=[round(s / divisor, 2) for s in seconds],
            name=variant,
            # A box of two jobs says nothing: show the jobs themselves.
            boxpoints="all" if len(seconds) < FEW_POINTS else False,
            marker_color="#0969da",
        )
    figure.update_layout(
        title=title,
        height=320,
        yaxis={"title": unit, "rangemode": "tozero"},
        showlegend=False,
        **LAYOUT,
    )
    return _html(figure)


def release_wave_progress(wave: ReleaseWave) -> str:
    """Cells of one PyTorch release that reached their current verdict, cumulated per day."""
    title = f"PyTorch {wave.release.version}: cells by current verdict over time"
    if not wave.cells_by_day:
        return _empty(title, "No cell has a result for this release yet.")
    x = [day.isoformat() for day, _ in wave.cells_by_day]
    # One or two days of data: stacked bars (an area of one point draws nothing at all).
    as_bars = len(x) < 3
    totals = [0] * len(x)
    figure = PlainFigure()
    for key in DISPLAY_ORDER:
        daily = [counts.get(key, 0) for _, counts in wave.cells_by_day]
        if not any(daily):
            continue
        style = style_of(key)
        cumulative = list(accumulate(daily))
        totals = [t + c for t, c in zip(totals, cumulative, strict=True)]
        if as_bars:
            figure.add_bar(
                x=x, y=cumulative, name=f"{style.symbol} {style.label}", marker_color=style.colour
            )
            continue
        figure.add_scatter(
            x=x,
            y=cumulative,
            name=f"{style.symbol} {style.label}",
            stackgroup="cells",
            mode="lines+markers" if len(x) < FEW_POINTS else "lines",
            line={"color": style.colour},
        )
    figure.update_layout(
        title=title,
        height=340,
        barmode="stack",
        xaxis=DAY_AXIS,
        yaxis=count_axis("cells", totals),
        legend={"orientation": "h", "y": -0.2},
        **LAYOUT,
    )
    return _html(figure)


JOBS_TITLE = "Jobs finished per day"
FAILURE_TITLE = "Failure rate per day (failed, uninstallable, timeout, infra error)"


def host_activity(stats: list[HostDay]) -> tuple[str, str]:
    """Two figures: jobs finished per day per host, and each host's daily problem rate (%)."""
    if not stats:
        message = "No job finished on any host in this period."
        return _empty(JOBS_TITLE, message), _empty(FAILURE_TITLE, message)
    per_host: dict[str, list[HostDay]] = defaultdict(list)
    for row in stats:
        per_host[row.host].append(row)
    jobs, rate = PlainFigure(), PlainFigure()
    for host, rows in per_host.items():
        x = [r.day.isoformat() for r in rows]
        jobs.add_bar(x=x, y=[r.jobs for r in rows], name=host)
        rate.add_scatter(
            x=x,
            y=[round(100.0 * r.problems / r.jobs, 1) for r in rows],
            name=host,
            mode="lines+markers",
        )
    jobs.update_layout(
        title=JOBS_TITLE,
        barmode="stack",
        height=300,
        xaxis=DAY_AXIS,
        yaxis=count_axis("jobs", _daily_totals(stats)),
        **LAYOUT,
    )
    rate.update_layout(
        title=FAILURE_TITLE,
        height=300,
        xaxis=DAY_AXIS,
        yaxis={"title": "% of jobs", "rangemode": "tozero"},
        **LAYOUT,
    )
    return _html(jobs), _html(rate)


def _daily_totals(stats: list[HostDay]) -> list[int]:
    """Jobs per day over every host: the height of each stacked bar."""
    totals: dict = defaultdict(int)
    for row in stats:
        totals[row.day] += row.jobs
    return list(totals.values())
