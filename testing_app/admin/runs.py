"""Admin for runs, jobs and the latest verdict per cell (the large tables)."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models.functions import Coalesce
from django.utils.html import format_html

from packages_app.admin.base import LargeTableAdmin
from packages_app.admin.base import ReadOnlyAdmin
from packages_app.admin.base import related_count
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import JobDayCount
from testing_app.models import PackageVerdictCount
from testing_app.models import PinnedCellResult
from testing_app.models import Run
from testing_app.models import Verdict
from testing_app.services.dispatch import retry_job
from testing_app.services.execution import cancel_job

# An admin action touches at most this many jobs at once (each is its own transaction).
MAX_ACTION_JOBS = 500
# Finished verdicts that need someone's attention, for the run's progress column.
PROBLEM_VERDICTS = (
    Verdict.FAILED,
    Verdict.UNINSTALLABLE,
    Verdict.NO_TESTS,
    Verdict.ERROR,
    Verdict.TIMEOUT,
)


def _job_count(**filters) -> Coalesce:
    """Jobs of the outer run matching `filters`: a count on the (run, status, verdict) index."""
    return related_count(Job.objects.filter(**filters), "run")


@admin.register(Run)
class RunAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "trigger",
        "state",
        "trigger_detail",
        "triggered_by",
        "trigger_build",
        "torch_release",
        "progress",
        "created_at",
        "finished_at",
    )
    list_select_related = ("triggered_by", "trigger_build", "torch_release")
    list_filter = ("state", "trigger", "torch_release", "created_at")
    search_fields = ("trigger_detail", "^trigger_build__name")
    raw_id_fields = ("trigger_build",)
    autocomplete_fields = ("triggered_by",)
    readonly_fields = ("progress", "created_at", "started_at", "finished_at")
    fields = (
        ("trigger", "state"),
        "triggered_by",
        "trigger_detail",
        "trigger_build",
        "torch_release",
        "progress",
        ("created_at", "started_at", "finished_at"),
    )

    def get_queryset(self, request):
        # Counted only for the rows shown: each is a correlated subquery evaluated per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                _jobs=_job_count(),
                _done=_job_count(status__in=[Job.Status.FINISHED, Job.Status.CANCELLED]),
                _problems=_job_count(verdict__in=PROBLEM_VERDICTS),
            )
        )

    @admin.display(description="jobs done")
    def progress(self, obj: Run) -> str:
        if obj.pk is None:
            return "—"
        text = f"{obj._done} / {obj._jobs}"
        return f"{text} ({obj._problems} need attention)" if obj._problems else text


# What the worker records while running a job; the admin shows it, never edits it.
JOB_EXECUTION_FIELDS = (
    "status",
    "verdict",
    "host",
    "worker_name",
    "gpu_index",
    "runner",
    "runner_version",
    "command",
    "exit_code",
    "solved_packages",
    "log_path",
    "log_tail_pre",
    "failure_excerpt_pre",
    "error_message",
    "created_at",
    "enqueued_at",
    "started_at",
    "finished_at",
    "duration_s",
)


@admin.register(Job)
class JobAdmin(LargeTableAdmin):
    # Retry and cancel go through the services (rate limit, guarded transitions); no bulk delete.
    actions = ["retry_selected", "cancel_selected"]
    list_display = (
        "id",
        "kind",
        "build",
        "torch_release",
        "variant",
        "platform",
        "python",
        "status",
        "verdict",
        "attempt",
        "host",
        "run_id",
        "finished_at",
        "duration",
    )
    list_select_related = ("build", "torch_release", "variant", "platform", "host")
    list_filter = (
        "status",
        "verdict",
        "kind",
        "variant",
        "platform",
        "torch_release",
        "host",
        "finished_at",
    )
    # Only indexed orderings: any other sort over millions of rows is a full sort.
    sortable_by = ("id", "finished_at")
    search_fields = ("^build__name", "=queue_name", "^host__name")
    raw_id_fields = ("run", "build", "pinned_build", "retry_of")
    readonly_fields = JOB_EXECUTION_FIELDS
    fieldsets = (
        (
            "Cell",
            {
                "fields": (
                    ("run", "kind"),
                    "build",
                    ("torch_release", "variant", "platform", "python"),
                    "pinned_build",
                    "extra_specs",
                )
            },
        ),
        (
            "Dispatch",
            {
                "fields": (
                    ("status", "verdict"),
                    ("queue_name", "priority"),
                    ("attempt", "max_attempts", "retry_of"),
                    "timeout_s",
                )
            },
        ),
        (
            "Execution",
            {
                "fields": (
                    ("host", "worker_name", "gpu_index"),
                    ("runner", "runner_version"),
                    "command",
                    "exit_code",
                    ("created_at", "enqueued_at"),
                    ("started_at", "finished_at", "duration_s"),
                )
            },
        ),
        (
            "Output",
            {
                "fields": (
                    "error_message",
                    "failure_excerpt_pre",
                    "log_tail_pre",
                    "log_path",
                    "solved_packages",
                )
            },
        ),
    )

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Retry selected finished jobs (rate-limited)")
    def retry_selected(self, request, queryset):
        for job in queryset[:MAX_ACTION_JOBS]:
            try:
                retry = retry_job(job=job, requested_by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"Job {job.pk}: {' '.join(exc.messages)}", "error")
            else:
                self.message_user(request, f"Job {job.pk}: retried as job {retry.pk}.")

    @admin.action(description="Cancel selected queued or running jobs")
    def cancel_selected(self, request, queryset):
        reason = f"Cancelled by {request.user.get_username()} in the admin."
        done = [job.pk for job in queryset[:MAX_ACTION_JOBS] if cancel_job(job=job, reason=reason)]
        self.message_user(request, f"Cancelled {len(done)} job(s).")

    @admin.display(description="run", ordering="run_id")
    def run_id(self, obj: Job) -> int:
        return obj.run_id

    @admin.display(description="duration", ordering="duration_s")
    def duration(self, obj: Job) -> str:
        return f"{obj.duration_s:.0f} s" if obj.duration_s is not None else "—"

    @admin.display(description="log tail")
    def log_tail_pre(self, obj: Job) -> str:
        return format_html("<pre>{}</pre>", obj.log_tail) if obj.log_tail else "—"

    @admin.display(description="failure excerpt")
    def failure_excerpt_pre(self, obj: Job) -> str:
        return format_html("<pre>{}</pre>", obj.failure_excerpt) if obj.failure_excerpt else "—"


@admin.register(CellResult)
class CellResultAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "package",
        "build",
        "torch_release",
        "variant",
        "platform",
        "python",
        "verdict",
        "previous_verdict",
        "latest_job_id",
        "updated_at",
    )
    list_select_related = ("package", "build", "torch_release", "variant", "platform")
    list_filter = ("verdict", "previous_verdict", "torch_release", "variant", "platform")
    sortable_by = ("id",)
    search_fields = ("^package__name", "^build__name")
    raw_id_fields = ("build",)
    # Kept by the service that finishes jobs: editing a verdict here would desync the matrix.
    readonly_fields = ("package", "verdict", "previous_verdict", "latest_job", "updated_at")
    fields = (
        "build",
        "package",
        ("torch_release", "variant", "platform", "python"),
        ("verdict", "previous_verdict"),
        "latest_job",
        "updated_at",
    )

    @admin.display(description="latest job", ordering="latest_job")
    def latest_job_id(self, obj: CellResult) -> int | None:
        return obj.latest_job_id


@admin.register(PinnedCellResult)
class PinnedCellResultAdmin(LargeTableAdmin):
    """Re-tests of dependents with an upstream build pinned: kept apart from their own cells."""

    list_display = (
        "id",
        "package",
        "build",
        "pinned_build",
        "torch_release",
        "variant",
        "platform",
        "python",
        "verdict",
        "updated_at",
    )
    list_select_related = (
        "package",
        "build",
        "pinned_build",
        "torch_release",
        "variant",
        "platform",
    )
    list_filter = ("verdict", "torch_release", "variant", "platform")
    sortable_by = ("id",)
    search_fields = ("^package__name", "^build__name", "^pinned_build__name")
    raw_id_fields = ("build", "pinned_build")
    # Kept by the service that finishes jobs, like CellResult.
    readonly_fields = ("package", "verdict", "previous_verdict", "latest_job", "updated_at")


class RollupAdmin(ReadOnlyAdmin):
    """Counts kept by database triggers (testing_app/models/rollups.py): shown to check them,
    never edited (an edit would make them disagree with the rows they count)."""

    show_full_result_count = False


@admin.register(PackageVerdictCount)
class PackageVerdictCountAdmin(RollupAdmin):
    list_display = ("id", "package", "version", "torch_release", "verdict", "cells")
    list_select_related = ("package", "torch_release")
    list_filter = ("verdict",)
    search_fields = ("^package__name",)


@admin.register(JobDayCount)
class JobDayCountAdmin(RollupAdmin):
    list_display = ("id", "day", "host", "kind", "verdict", "jobs")
    list_select_related = ("host",)
    list_filter = ("kind", "verdict")
    search_fields = ("^host__name",)
    date_hierarchy = "day"
