"""Job pages: every recorded fact, the failure excerpt first, the log (live tail, download)."""

import gzip

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse
from django.http import Http404
from django.http import HttpResponse
from django.http import JsonResponse
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.http import require_POST

from testing_app.selectors.logs import FULL_LOG_BYTES
from testing_app.selectors.logs import TAIL_BYTES
from testing_app.selectors.logs import chunk_markers
from testing_app.selectors.logs import get_failure_excerpt
from testing_app.selectors.logs import log_segments
from testing_app.selectors.logs import read_log_chunk
from testing_app.selectors.logs import read_log_steps
from testing_app.selectors.logs import read_log_tail
from testing_app.selectors.logs import resolve_log_path
from testing_app.selectors.runs import get_job
from testing_app.selectors.runs import job_facts
from testing_app.selectors.runs import job_is_live
from testing_app.selectors.runs import list_cell_jobs
from testing_app.services.dispatch import retry_job
from testing_app.services.dispatch import user_may_retry_job
from testing_app.services.reproduce import get_reproduction
from testing_app.views.runs import POLL_MS
from testing_app.views.runs import job_state


@require_GET
def job_detail(request, pk):
    """The job's facts and its log: the outline of its steps (start, duration) and the text,
    its last 64 KiB (or all of it up to 4 MiB with ?log=full), followed live while it runs."""
    job = get_job(pk)
    full = request.GET.get("log") == "full"
    log = read_log_tail(job, max_bytes=FULL_LOG_BYTES if full else TAIL_BYTES)
    steps = read_log_steps(job)
    return render(
        request,
        "testing_app/job_detail.html",
        {
            "job": job,
            "log": log,
            "steps": steps,
            "segments": log_segments(log, steps) if log else [],
            "full_log": full,
            "excerpt": get_failure_excerpt(job, log),
            "live": job_is_live(job),
            "cell_jobs": list_cell_jobs(job),
            "facts": job_facts(job),
            # The service decides again on POST; this only decides whether to offer the button.
            "may_retry": not job_is_live(job) and user_may_retry_job(request.user, job),
            "poll_ms": POLL_MS,
            "reproduction": get_reproduction(job),
        },
    )


@require_GET
def job_reproduce_script(request, pk):
    """The cell's local rerun as a bash script to download (the same as the page shows)."""
    reproduction = get_reproduction(get_job(pk))
    response = HttpResponse(reproduction.script(), content_type="text/x-shellscript; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reproduce-job-{pk}.sh"'
    return response


@require_GET
def job_log(request, pk):
    """The whole log as plain text: shown in the browser, or a download with ?download=1.

    A finished log is stored gzip-compressed; it goes out compressed only to a client that
    says it accepts gzip (Content-Encoding, so the browser still shows text), else unpacked.
    """
    job = get_job(pk)
    path = resolve_log_path(job)
    if path is None:
        raise Http404(f"Job {pk} has no log file on this server.")
    compressed = path.suffix == ".gz"
    send_compressed = compressed and accepts_gzip(request.headers.get("Accept-Encoding", ""))
    # FileResponse closes the file when the response is done.
    body = gzip.open(path, "rb") if compressed and not send_compressed else path.open("rb")  # noqa: SIM115
    response = FileResponse(
        body,
        as_attachment=request.GET.get("download") == "1",
        filename=f"job-{job.pk}.log",
        content_type="text/plain; charset=utf-8",
    )
    if send_compressed:
        response["Content-Encoding"] = "gzip"
    elif compressed:
        del response["Content-Length"]  # FileResponse measured the compressed file
    response["Vary"] = "Accept-Encoding"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an Accept-Encoding header admits gzip (and does not refuse it with q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            quality = params.strip().removeprefix("q=").strip() if params else "1"
            try:
                return float(quality or "1") > 0
            except ValueError:
                return False
    return False


@require_GET
def job_log_tail(request, pk):
    """Log text from `offset` on, for the live tail; `live` tells the page whether to go on."""
    job = get_job(pk)
    raw_offset = request.GET.get("offset", "0")
    if not raw_offset.isdigit():
        return JsonResponse(
            {"detail": "offset must be a non-negative integer.", "code": "invalid_offset"},
            status=400,
        )
    chunk = read_log_chunk(job, offset=int(raw_offset))
    return JsonResponse(
        {
            "job": job.pk,
            "status": job.status,
            "verdict": job.verdict,
            "live": job_is_live(job),
            "state": job_state(job),
            "available": chunk is not None,
            "text": chunk.text if chunk else "",
            # The step markers inside `text`, in order: the page adds them to its outline.
            "markers": chunk_markers(chunk) if chunk else [],
            # Without a log file, the lines the worker keeps on the row are all there is.
            "tail": "" if chunk else job.log_tail,
            "offset": chunk.offset if chunk else 0,
            "next_offset": chunk.next_offset if chunk else 0,
            "size": chunk.size if chunk else 0,
            "poll_ms": POLL_MS,
        }
    )


@login_required
@require_POST
def job_retry(request, pk):
    """Ask for the cell to run again (maintainers of the package, release managers)."""
    job = get_job(pk)
    try:
        retry = retry_job(job=job, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(job.get_absolute_url())
    messages.success(request, f"Retry queued as job {retry.pk} (attempt {retry.attempt}).")
    return redirect(retry.get_absolute_url())
