"""Runs and jobs: progress by verdict, remaining-time estimate, filtered job lists, job detail.

Progress is one grouped query on Job(run, status, verdict); job lists are paginated querysets
with their foreign keys joined, so each page costs a fixed number of queries.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from django.db.models import Avg
from django.db.models import Count
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from testing_app.models import Job
from testing_app.models import Run
from testing_app.models.verdicts import Verdict
from testing_app.selectors.matrix import PROBLEM_VERDICTS
from testing_app.selectors.verdict_display import DISPLAY_ORDER

JOB_FILTER_FIELDS = ("status", "verdict", "kind", "variant", "platform", "package")


@dataclass(frozen=True)
class ProgressSegment:
    key: str  # a verdict, or "running"/"queued"/"cancelled"
    count: int
    percent: float


@dataclass
class RunProgress:
    """Where a run stands: counts by verdict (in flight kept apart) and an ETA."""

    total: int = 0
    done: int = 0
    running: int = 0
    queued: int = 0
    cancelled: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)
    mean_duration_s: float | None = None
    remaining_s: float | None = None

    @property
    def percent_done(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0

    @property
    def segments(self) -> list[ProgressSegment]:
        counts = {**self.by_verdict, "running": self.running, "queued": self.queued}
        if self.cancelled:
            counts["cancelled"] = self.cancelled
        # Done work from the left (worst first), then what is still in flight.
        order = [k for k in DISPLAY_ORDER if k not in ("running", "queued")]
        order += ["cancelled", "running", "queued"]
        return [
            ProgressSegment(key=k, count=counts[k], percent=100.0 * counts[k] / self.total)
            for k in sorted(counts, key=order.index)
            if counts[k] and self.total
        ]


def _estimate_remaining_s(
    rows: list[dict], running: int, queued: int
) -> tuple[float | None, float | None]:
    """Remaining seconds: each unfinished job costs the mean observed duration of its queue.

    Work is spread over the jobs running now (at least one); without a finished job in the run
    there is nothing observed to estimate from, so the answer is None rather than a guess.
    """
    durations: dict[str, tuple[float, int]] = {}
    for row in rows:
        if row["status"] == Job.Status.FINISHED and row["mean"] is not None:
            total, n = durations.get(row["queue_name"], (0.0, 0))
            durations[row["queue_name"]] = (total + row["mean"] * row["n"], n + row["n"])
    if not durations:
        return None, None
    overall = sum(t for t, _ in durations.values()) / sum(n for _, n in durations.values())
    remaining_work = 0.0
    for row in rows:
        if row["status"] in (Job.Status.QUEUED, Job.Status.RUNNING):
            total, n = durations.get(row["queue_name"], (overall, 1))
            per_job = total / n
            # A running job has on average half of its duration left.
            remaining_work += per_job * row["n"] * (0.5 if row["status"] == "running" else 1.0)
    return overall, remaining_work / max(running, 1) if (running or queued) else 0.0


def get_run_progress(run: Run) -> RunProgress:
    """Counts by status/verdict and the remaining-time estimate, in one grouped query."""
    rows = list(
        Job.objects.filter(run=run)
        .order_by()
        .values("status", "verdict", "queue_name")
        .annotate(n=Count("pk"), mean=Avg("duration_s"))
    )
    progress = RunProgress()
    for row in rows:
        progress.total += row["n"]
        if row["status"] == Job.Status.FINISHED:
            progress.done += row["n"]
            progress.by_verdict[row["verdict"]] = (
                progress.by_verdict.get(row["verdict"], 0) + row["n"]
            )
        elif row["status"] == Job.Status.RUNNING:
            progress.running += row["n"]
        elif row["status"] == Job.Status.QUEUED:
            progress.queued += row["n"]
        else:
            progress.cancelled += row["n"]
    progress.mean_duration_s, progress.remaining_s = _estimate_remaining_s(
        rows, progress.running, progress.queued
    )
    return progress


def get_run(pk: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("triggered_by", "trigger_build", "torch_release"), pk=pk
    )


def list_runs(*, state: str = "", trigger: str = "") -> QuerySet[Run]:
    """Runs newest first; job counts come from count_run_jobs for the page shown."""
    runs = Run.objects.select_related("triggered_by", "torch_release", "trigger_build")
    if state:
        runs = runs.filter(state=state)
    if trigger:
        runs = runs.filter(trigger=trigger)
    return runs.order_by("-id")


@dataclass(frozen=True)
class RunCounts:
    total: int = 0
    done: int = 0
    problems: int = 0


def count_run_jobs(run_ids: list[int]) -> dict[int, RunCounts]:
    """Jobs per run (total, finished, problems) for a page of runs: one grouped query on the
    Job(run, status, verdict) index, never an aggregate over the whole job history."""
    rows = (
        Job.objects.filter(run_id__in=run_ids)
        .order_by()
        .values_list("run_id", "status", "verdict")
        .annotate(n=Count("pk"))
    )
    totals: dict[int, list[int]] = {pk: [0, 0, 0] for pk in run_ids}
    for run_id, status, verdict, n in rows:
        counts = totals[run_id]
        counts[0] += n
        if status == Job.Status.FINISHED:
            counts[1] += n
        if verdict in PROBLEM_VERDICTS:
            counts[2] += n
    return {pk: RunCounts(*counts) for pk, counts in totals.items()}


def parse_job_filters(params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Job-table filters from a query string; unknown choice values are reported and dropped."""
    filters = {name: params.get(name, "").strip()[:100] for name in JOB_FILTER_FIELDS}
    errors = {}
    allowed = {
        "status": Job.Status.values,
        "verdict": Verdict.values,
        "kind": Job.Kind.values,
    }
    for name, values in allowed.items():
        if filters[name] and filters[name] not in values:
            errors[name] = f"Unknown {name} {filters[name]!r}."
            filters[name] = ""
    return {k: v for k, v in filters.items() if v}, errors


def list_jobs(*, run: Run | None = None, filters: Mapping[str, str] | None = None) -> QuerySet[Job]:
    """Jobs (of one run, or all), filtered, newest first, with the cell's rows joined."""
    jobs = Job.objects.all() if run is None else Job.objects.filter(run=run)
    filters = filters or {}
    lookups = {
        "status": "status",
        "verdict": "verdict",
        "kind": "kind",
        "variant": "variant__name",
        "platform": "platform__subdir",
        "package": "build__name__icontains",
        "run": "run_id",
    }
    for name, lookup in lookups.items():
        if filters.get(name):
            jobs = jobs.filter(**{lookup: filters[name]})
    return jobs.select_related("build", "torch_release", "variant", "platform", "host").defer(
        "log_tail", "solved_packages", "command", "failure_excerpt", "error_message"
    )


def get_job(pk: int) -> Job:
    """One job with everything its page shows (build, channel, package, host, run)."""
    return get_object_or_404(
        Job.objects.select_related(
            "run",
            "run__triggered_by",
            "build",
            "build__channel",
            "build__package",
            "torch_release",
            "variant",
            "platform",
            "host",
            "pinned_build",
            "retry_of",
        ),
        pk=pk,
    )


def list_cell_jobs(job: Job, *, limit: int = 10) -> list[Job]:
    """The latest jobs of the same cell (all runs and attempts), newest first: its history."""
    return list(
        Job.objects.filter(
            build_id=job.build_id,
            torch_release_id=job.torch_release_id,
            variant_id=job.variant_id,
            platform_id=job.platform_id,
            python=job.python,
        )
        .only(
            "id",
            "status",
            "verdict",
            "attempt",
            "run_id",
            "created_at",
            "finished_at",
            "duration_s",
        )
        .order_by("-created_at", "-id")[:limit]
    )


def job_is_live(job: Job) -> bool:
    return job.status in (Job.Status.QUEUED, Job.Status.RUNNING)


def seconds_since(moment: datetime | None) -> float | None:
    return (timezone.now() - moment).total_seconds() if moment else None


# Shown in their own sections of the job page rather than in the list of recorded fields.
JOB_FIELDS_SHOWN_APART = frozenset({"log_tail", "failure_excerpt", "solved_packages", "command"})


def job_facts(job: Job) -> list[tuple[str, object]]:
    """Every recorded field of a job as (label, value), related rows by name when loaded."""
    facts = []
    for model_field in Job._meta.concrete_fields:
        if model_field.name in JOB_FIELDS_SHOWN_APART:
            continue
        if model_field.is_relation:
            loaded = model_field.is_cached(job)
            value = getattr(job, model_field.name) if loaded else getattr(job, model_field.attname)
        else:
            value = getattr(job, model_field.name)
        facts.append((str(model_field.verbose_name), value))
    return facts
