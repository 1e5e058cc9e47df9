"""Charts with little data (a demo's first day) stay readable: whole-number count axes, points
and bars where a line or an area would draw nothing, durations in a unit that fits."""

import json
import re
from datetime import date
from types import SimpleNamespace

from testing_app.selectors.hosts import HostDay
from testing_app.selectors.trends import DailyVerdicts
from testing_app.selectors.trends import ReleaseWave
from testing_app.views import charts

DAY = date(2026, 12, 6)


def _figure(html: str) -> dict:
    payload = re.search(r'<script type="application/json"[^>]*>(.*)</script>', html, re.S)
    assert payload is not None
    return json.loads(payload.group(1))


def test_job_counts_of_one_day_get_integer_ticks_from_zero():
    html, _ = charts.host_activity([HostDay(host="demo-host", day=DAY, jobs=3, problems=1)])
    yaxis = _figure(html)["layout"]["yaxis"]
    assert (yaxis["tick0"], yaxis["dtick"], yaxis["tickformat"]) == (0, 1, ",d")
    assert yaxis["rangemode"] == "tozero"
    daily = [DailyVerdicts(day=DAY, counts={"passed": 2, "failed": 1})]
    pass_rate = _figure(charts.pass_rate_over_time(daily, title="t"))
    assert pass_rate["layout"]["yaxis2"]["dtick"] == 1
    assert pass_rate["data"][1]["mode"] == "lines+markers"


def test_large_counts_keep_automatic_integer_ticks():
    html, _ = charts.host_activity([HostDay(host="h", day=DAY, jobs=480, problems=3)])
    yaxis = _figure(html)["layout"]["yaxis"]
    assert yaxis["tickformat"] == ",d"
    assert "dtick" not in yaxis


def test_sub_second_install_checks_are_shown_in_seconds_with_their_points():
    figure = _figure(charts.durations_by_variant({"cpu": [0.06, 0.24]}, title="durations"))
    assert figure["layout"]["yaxis"]["title"]["text"] == "seconds"
    assert figure["data"][0]["y"] == [0.06, 0.24]
    assert figure["data"][0]["boxpoints"] == "all"
    long_jobs = _figure(charts.durations_by_variant({"cuda12.4": [600.0] * 8}, title="d"))
    assert long_jobs["layout"]["yaxis"]["title"]["text"] == "minutes"
    assert long_jobs["data"][0]["y"] == [10.0] * 8
    assert long_jobs["data"][0]["boxpoints"] is False


def test_a_release_wave_of_one_day_is_drawn_as_stacked_bars():
    release = SimpleNamespace(version="2.5.1")  # the chart reads only the version
    wave = ReleaseWave(release=release, cells_by_day=[(DAY, {"passed": 28, "failed": 2})])
    figure = _figure(charts.release_wave_progress(wave))
    assert {trace["type"] for trace in figure["data"]} == {"bar"}
    assert sum(trace["y"][0] for trace in figure["data"]) == 30
    assert figure["layout"]["barmode"] == "stack"
