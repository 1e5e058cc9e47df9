"""Runs (batches of work), jobs (one unit on one cell) and the latest verdict per cell."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from .hosts import Host
from .reference import Platform
from .reference import Variant
from .verdicts import JOB_FINAL_VERDICTS
from .verdicts import Verdict


class RunTrigger(models.TextChoices):
    NEW_BUILD = "new_build", "New build"
    REVERSE_DEPENDENCY = "reverse_dependency", "Reverse-dependency re-test"
    TORCH_RELEASE = "torch_release", "New PyTorch release"
    FULL = "full", "Full distribution run"
    MANUAL = "manual", "Manual request"
    RETRY = "retry", "Retry"


class RunState(models.TextChoices):
    PLANNING = "planning", "Planning"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    """A batch of jobs started by one trigger, e.g. a new build or a PyTorch release wave."""

    Trigger = RunTrigger

    State = RunState

    trigger = models.CharField(max_length=24, choices=Trigger.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNING)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Free text for machine triggers: "sync of channel staging", "API token ci-main of kornia".
    trigger_detail = models.CharField(max_length=300, blank=True)
    trigger_build = models.ForeignKey(
        "packages_app.Build", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger__in=RunTrigger.values), name="run_trigger_valid"
            ),
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="run_state_valid"),
        ]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.get_trigger_display()})"


class JobKind(models.TextChoices):
    INSTALL_CHECK = "install_check", "Install check"
    TEST = "test", "Test"


class JobRunner(models.TextChoices):
    """What runs a test job; a job that names one goes to that runner's queue (services/queues)."""

    ANY = "", "Any runner"
    CONDA_BUILD = "conda-build", "conda-build --test"
    RATTLER = "rattler", "rattler (py-rattler, no conda)"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    """One unit of work on one cell: an install check (solver only) or a test (conda-build)."""

    Kind = JobKind

    Status = JobStatus

    Runner = JobRunner

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The cell.
    build = models.ForeignKey("packages_app.Build", on_delete=models.CASCADE, related_name="jobs")
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease", on_delete=models.CASCADE, related_name="jobs"
    )
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="jobs")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="jobs")
    python = models.CharField(max_length=8, blank=True)
    # A reverse-dependency re-test pins the upstream build that triggered it.
    pinned_build = models.ForeignKey(
        "packages_app.Build", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    extra_specs = models.JSONField(default=list, blank=True)
    # Why the planner could not decide the cell's applicability from the catalog ("no PyTorch
    # 2.5.1 record for linux-64 in the channel stack"): the cell is "unknown" until this job's
    # install check decides it. Empty when the catalog decided it applicable.
    planning_note = models.CharField(max_length=300, blank=True)
    # The runner this job needs; "" accepts either (the host's conda-build, else rattler).
    required_runner = models.CharField(
        max_length=32, choices=Runner.choices, blank=True, default=Runner.ANY
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    queue_name = models.CharField(max_length=100)
    # Higher goes first within a push (release-blocking work before routine work).
    priority = models.SmallIntegerField(default=0)
    # Expected host seconds this job stands for (its own run, plus, for an install check, the
    # test it unlocks), from the cell's history (selectors/job_estimates.py): the order jobs
    # are pushed in (longest first) and each queue's remaining work (services/queue_work.py).
    expected_s = models.FloatField(default=0)
    # An install check's share of expected_s that is the test it unlocks, and the queue that
    # test will go to: while the check is queued or running, that queue's remaining work counts
    # the test too (its latent work, services/queue_work.py). 0 and "" for a test.
    unlocks_s = models.FloatField(default=0)
    unlocks_queue = models.CharField(max_length=100, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    timeout_s = models.PositiveIntegerField(default=3600)

    # Earliest time an automatic retry may start (backoff); null: at once.
    not_before = models.DateTimeField(null=True, blank=True)
    # Hosts where earlier attempts of this cell hit an infrastructure error: prefer others.
    avoid_host_ids = models.JSONField(default=list, blank=True)
    # Times a worker on an avoided host passed the job on to another host (bounded).
    handoffs = models.PositiveSmallIntegerField(default=0)

    host = models.ForeignKey(
        Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    worker = models.ForeignKey(
        "testing_app.WorkerProcess",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    worker_name = models.CharField(max_length=200, blank=True)
    gpu_index = models.SmallIntegerField(null=True, blank=True)
    gpu_name = models.CharField(max_length=200, blank=True)
    driver_version = models.CharField(max_length=32, blank=True)
    runner = models.CharField(max_length=32, blank=True)
    runner_version = models.CharField(max_length=32, blank=True)
    command = models.JSONField(default=list, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    solved_packages = models.JSONField(default=list, blank=True)
    log_path = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)
    failure_excerpt = models.TextField(blank=True)
    error_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    # The parts of duration_s: fetching the package, then conda-build (environment + tests).
    download_s = models.FloatField(null=True, blank=True)
    test_s = models.FloatField(null=True, blank=True)
    # Finished by a host under its limited role (HOST_LIMITED_ROLE): the maintainers' notices
    # and the package's reinstatement are still to run, on the web side (the reconciler).
    follow_ups_due = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        permissions = [("retry_any_job", "Can retry any job (release manager)")]
        constraints = [
            # One attempt per cell per run; a re-test with a pinned upstream build is a cell of
            # its own (models/pinned_results.py), so a run may hold both.
            models.UniqueConstraint(
                fields=[
                    "run",
                    "kind",
                    "build",
                    "torch_release",
                    "variant",
                    "platform",
                    "python",
                    "attempt",
                ],
                condition=Q(pinned_build__isnull=True),
                name="job_unique_cell_attempt_per_run",
            ),
            models.UniqueConstraint(
                fields=[
                    "run",
                    "kind",
                    "build",
                    "pinned_build",
                    "torch_release",
                    "variant",
                    "platform",
                    "python",
                    "attempt",
                ],
                condition=Q(pinned_build__isnull=False),
                name="job_unique_pinned_cell_attempt_per_run",
            ),
            models.CheckConstraint(condition=Q(kind__in=JobKind.values), name="job_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(verdict="") | Q(verdict__in=sorted(JOB_FINAL_VERDICTS)),
                name="job_verdict_valid",
            ),
            # A finished job always carries its verdict; an unfinished one never does.
            models.CheckConstraint(
                condition=(Q(status="finished") & ~Q(verdict=""))
                | (~Q(status="finished") & Q(verdict="")),
                name="job_verdict_iff_finished",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "status", "verdict"]),
            models.Index(fields=["status", "queue_name"]),
            models.Index(fields=["build", "torch_release", "variant", "platform", "-created_at"]),
            models.Index(fields=["host", "-started_at"]),
            models.Index(fields=["-finished_at"]),
            # The reconciler's look for follow-ups due: the few rows that have them.
            models.Index(
                fields=["follow_ups_due"],
                condition=Q(follow_ups_due=True),
                name="job_follow_ups_due",
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk}: {self.get_kind_display()} {self.build_id} on {self.variant_id}"

    def get_absolute_url(self) -> str:
        return reverse("testing:job-detail", kwargs={"pk": self.pk})

    @property
    def rq_job_id(self) -> str:
        """RQ ids allow only [A-Za-z0-9_-]: derived from the primary key, never from names."""
        return f"distro-job-{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.CANCELLED)


class CellResult(models.Model):
    """The latest verdict per cell, kept current when jobs finish: the matrix reads only this."""

    build = models.ForeignKey(
        "packages_app.Build", on_delete=models.CASCADE, related_name="cell_results"
    )
    # Denormalised from the build so the matrix groups by package with one indexed read.
    package = models.ForeignKey(
        "packages_app.Package",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cell_results",
    )
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease", on_delete=models.CASCADE, related_name="cell_results"
    )
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="cell_results")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="cell_results")
    python = models.CharField(max_length=8, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.QUEUED)
    # The verdict before the latest one: tells a regression from a failure that already existed.
    previous_verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    latest_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Why the planner decided the cell without running anything (not_applicable), for pages.
    detail = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["build", "torch_release", "variant", "platform", "python"],
                name="cellresult_unique_cell",
            ),
            models.CheckConstraint(
                condition=Q(verdict__in=Verdict.values),
                name="cellresult_verdict_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["package", "torch_release", "verdict"]),
            models.Index(fields=["torch_release", "verdict"]),
            models.Index(fields=["verdict", "updated_at"]),
        ]

    def __str__(self) -> str:
        return (
            f"{self.build_id} x {self.torch_release_id} x {self.variant_id} x "
            f"{self.platform_id}: {self.verdict}"
        )
