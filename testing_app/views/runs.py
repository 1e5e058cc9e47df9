"""Run pages: the list, one run with progress and its jobs, and the JSON the page polls."""

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from distro_site.paging import paginate
from testing_app.models import Job
from testing_app.models import Run
from testing_app.models.verdicts import JOB_FINAL_VERDICTS
from testing_app.selectors.matrix import list_platforms
from testing_app.selectors.matrix import list_variants
from testing_app.selectors.runs import count_run_jobs
from testing_app.selectors.runs import get_run
from testing_app.selectors.runs import get_run_progress
from testing_app.selectors.runs import list_jobs
from testing_app.selectors.runs import list_runs
from testing_app.selectors.runs import parse_job_filters
from testing_app.selectors.verdict_display import DISPLAY_ORDER
from testing_app.selectors.verdict_display import style_of
from testing_app.templatetags.verdicts import duration

MAX_POLLED_JOBS = 200
# Live pages poll every few seconds: cheap (two indexed queries) and fresh enough for humans.
POLL_MS = 3000
JOB_VERDICT_CHOICES = [
    (key, style_of(key).label) for key in DISPLAY_ORDER if key in JOB_FINAL_VERDICTS
]
LIVE_RUN_STATES = (Run.State.PLANNING, Run.State.RUNNING)


@require_GET
def run_list(request):
    state = request.GET.get("state", "")
    trigger = request.GET.get("trigger", "")
    state = state if state in Run.State.values else ""
    trigger = trigger if trigger in Run.Trigger.values else ""
    page, page_query = paginate(request, list_runs(state=state, trigger=trigger))
    counts = count_run_jobs([run.pk for run in page.object_list])
    return render(
        request,
        "testing_app/run_list.html",
        {
            "page": page,
            "rows": [(run, counts[run.pk]) for run in page.object_list],
            "page_query": page_query,
            "state": state,
            "trigger": trigger,
            "states": Run.State.choices,
            "triggers": Run.Trigger.choices,
        },
    )


@require_GET
def run_detail(request, pk):
    run = get_run(pk)
    filters, errors = parse_job_filters(request.GET)
    page, page_query = paginate(request, list_jobs(run=run, filters=filters))
    progress = get_run_progress(run)
    return render(
        request,
        "testing_app/run_detail.html",
        {
            "run": run,
            "progress": progress,
            "live": run.state in LIVE_RUN_STATES or progress.running or progress.queued,
            "page": page,
            "page_query": page_query,
            "filters": filters,
            "errors": errors,
            "variants": list_variants(),
            "platforms": list_platforms(),
            "statuses": Job.Status.choices,
            "verdicts": JOB_VERDICT_CHOICES,
            "poll_ms": POLL_MS,
            "kinds": Job.Kind.choices,
        },
        status=400 if errors else 200,
    )


def job_state(job: Job) -> dict:
    key = job.verdict or job.status
    style = style_of(key)
    return {
        "status": job.status,
        "verdict": job.verdict,
        "key": style.key,
        "symbol": style.symbol,
        "label": style.label,
        "duration": duration(job.duration_s) if job.duration_s is not None else "",
    }


@require_GET
def run_progress(request, pk):
    """Progress of a run (and the state of the listed jobs) for the page's live updates."""
    run = get_run(pk)
    progress = get_run_progress(run)
    ids = [int(part) for part in request.GET.get("jobs", "").split(",") if part.isdigit()]
    if len(ids) > MAX_POLLED_JOBS:
        return JsonResponse(
            {"detail": f"At most {MAX_POLLED_JOBS} job ids per request.", "code": "too_many_jobs"},
            status=400,
        )
    jobs = (
        Job.objects.filter(run=run, pk__in=ids).only("id", "status", "verdict", "duration_s")
        if ids
        else []
    )
    return JsonResponse(
        {
            "run": run.pk,
            "state": run.state,
            "live": run.state in LIVE_RUN_STATES or bool(progress.running or progress.queued),
            "total": progress.total,
            "done": progress.done,
            "running": progress.running,
            "queued": progress.queued,
            "percent_done": progress.percent_done,
            "remaining_s": progress.remaining_s,
            "remaining_text": duration(progress.remaining_s) if progress.remaining_s else "",
            "segments": [
                {
                    "key": s.key,
                    "label": style_of(s.key).label if s.key != "cancelled" else "cancelled",
                    "symbol": style_of(s.key).symbol,
                    "count": s.count,
                    "percent": round(s.percent, 2),
                }
                for s in progress.segments
            ],
            "jobs": {str(job.pk): job_state(job) for job in jobs},
            "poll_ms": POLL_MS,
        }
    )
