"""Set-partner solves: which other staged builds one staged build needs to be installable."""

from django.db import models
from django.db.models import Q


class SetPartnerSolveState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Could not run"


class SetPartnerSolve(models.Model):
    """One staged build on one platform, solved against the target and upstream channels
    without the other staged builds and, when that fails, with them: the staged builds the
    solution needs (the fewest the solver can go without) are its set partners. The suggested
    coordinated sets are the connected groups of these partners (selectors/promotion_sets.py).

    `candidates_digest` names the staged candidates and the channel stack the row was solved
    against; when either changes, the sweep solves the build again.
    """

    State = SetPartnerSolveState

    build = models.ForeignKey(
        "packages_app.Build", on_delete=models.CASCADE, related_name="set_partner_solves"
    )
    subdir = models.CharField(max_length=32)
    candidates_digest = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # Installable from the target and upstream channels without any other staged build.
    alone_ok = models.BooleanField(null=True, blank=True)
    alone_explanation = models.TextField(blank=True)
    # Installable once the other staged builds are added (None when it was not asked).
    with_staged_ok = models.BooleanField(null=True, blank=True)
    with_staged_explanation = models.TextField(blank=True)
    # Build ids of the staged builds it cannot be installed without.
    partner_ids = models.JSONField(default=list, blank=True)
    solves = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=SetPartnerSolveState.values),
                name="setpartnersolve_state_valid",
            ),
            models.CheckConstraint(
                condition=(Q(state="done") & Q(alone_ok__isnull=False))
                | (~Q(state="done") & Q(alone_ok__isnull=True)),
                name="setpartnersolve_verdict_iff_done",
            ),
            models.UniqueConstraint(
                fields=["build", "subdir", "candidates_digest"],
                name="setpartnersolve_one_per_candidates",
            ),
        ]
        indexes = [models.Index(fields=["build", "subdir", "-id"])]

    def __str__(self) -> str:
        return f"Set partners of build {self.build_id} on {self.subdir}: {self.state}"

    @property
    def rq_job_id(self) -> str:
        return f"distro-setsolve-{self.pk}"

    @property
    def needs_staged(self) -> bool:
        return self.state == self.State.DONE and bool(self.partner_ids)
