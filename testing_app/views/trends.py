"""Trend plots: pass rate over time (overall or one package) and durations per variant."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from testing_app.selectors.matrix import list_supported_releases
from testing_app.selectors.trends import TREND_DAYS
from testing_app.selectors.trends import get_daily_verdicts
from testing_app.selectors.trends import get_durations_by_variant
from testing_app.views import charts


@require_GET
def trends(request):
    package = request.GET.get("package", "").strip()[:128]
    scope = f"{package}: " if package else "All packages: "
    return render(
        request,
        "testing_app/trends.html",
        {
            "package": package,
            "days": TREND_DAYS,
            "pass_rate_chart": charts.pass_rate_over_time(
                get_daily_verdicts(package_name=package),
                title=f"{scope}pass rate of test jobs per day",
            ),
            "durations_chart": charts.durations_by_variant(
                get_durations_by_variant(package_name=package),
                title=f"{scope}test job durations per variant (latest jobs)",
            ),
            "releases": list_supported_releases(),
        },
    )
