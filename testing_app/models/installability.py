"""Installability checks: one solver run of candidate builds (or none) against the target."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class InstallabilityCheckKind(models.TextChoices):
    GATE = "gate", "Gate check (candidate against the target)"
    PRECOPY = "precopy", "Before copying (the promotion's builds against the target)"
    POST = "post", "After a promotion (what users install, from the target)"


class InstallabilityCheckState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Could not run"


class InstallabilityCheck(models.Model):
    """One solve: the target channel (plus candidate builds put in front of it) must install
    `specs` on `subdir`. Runs as a job, never in a request; the gate reads the stored outcome.

    `subject_key` groups the rows the gate looks at: "build:<id>" for one candidate,
    "set:<id>,<id>" for a coordinated set, "promotion:<id>" for the checks of a promotion.
    """

    Kind = InstallabilityCheckKind

    State = InstallabilityCheckState

    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject_key = models.CharField(max_length=200)
    # Candidate builds served from a private channel in front of the target (may be empty).
    build_ids = models.JSONField(default=list, blank=True)
    build = models.ForeignKey(
        "packages_app.Build",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="installability_checks",
    )
    promotion = models.ForeignKey(
        "testing_app.Promotion",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="installability_checks",
    )
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    target_channel = models.ForeignKey(
        "packages_app.Channel", on_delete=models.PROTECT, related_name="+"
    )
    subdir = models.CharField(max_length=32)
    # "alone" (the candidates by themselves) or an install set ("pytorch torchvision torchaudio").
    label = models.CharField(max_length=200)
    specs = models.JSONField(default=list, blank=True)
    channels = models.JSONField(default=list, blank=True)
    virtual_packages = models.JSONField(default=list, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    ok = models.BooleanField(null=True, blank=True)
    explanation = models.TextField(blank=True)
    # When the candidates make a set unsolvable: does the set solve without them? If not, the
    # failure existed before and is not the candidates' fault (regression-only).
    baseline_ok = models.BooleanField(null=True, blank=True)
    baseline_explanation = models.TextField(blank=True)
    packages = models.JSONField(default=list, blank=True)
    error_message = models.TextField(blank=True)
    duration_s = models.FloatField(null=True, blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=InstallabilityCheckKind.values),
                name="installabilitycheck_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(state__in=InstallabilityCheckState.values),
                name="installabilitycheck_state_valid",
            ),
            # A verdict exists exactly when the solver ran to the end.
            models.CheckConstraint(
                condition=(Q(state="done") & Q(ok__isnull=False))
                | (~Q(state="done") & Q(ok__isnull=True)),
                name="installabilitycheck_ok_iff_done",
            ),
        ]
        indexes = [models.Index(fields=["subject_key", "-id"])]

    def __str__(self) -> str:
        return f"Installability {self.subject_key} {self.subdir} [{self.label}]: {self.state}"

    @property
    def rq_job_id(self) -> str:
        return f"distro-installcheck-{self.pk}"
