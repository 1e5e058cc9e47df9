"""The hosts page: state, hardware, current jobs, activity plots, capability queue depths."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from testing_app.selectors.hosts import STATS_DAYS
from testing_app.selectors.hosts import get_host_daily_stats
from testing_app.selectors.hosts import get_queue_depths
from testing_app.selectors.hosts import list_hosts
from testing_app.views import charts


@require_GET
def host_list(request):
    rows = list_hosts()
    queues = get_queue_depths([row.host for row in rows])
    jobs_chart, failure_chart = charts.host_activity(get_host_daily_stats(days=STATS_DAYS))
    return render(
        request,
        "testing_app/host_list.html",
        {
            "rows": rows,
            "queues": queues,
            "unserved": [q for q in queues.queues if q.unserved],
            "jobs_chart": jobs_chart,
            "failure_chart": failure_chart,
            "stats_days": STATS_DAYS,
        },
    )
