"""Waivers (accepted failures) and promotions (copies from staging into the target channel)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from .reference import Platform
from .reference import Variant


class Waiver(models.Model):
    """A release manager's accepted failure: one cell, or one gate policy, of one build."""

    build = models.ForeignKey(
        "packages_app.Build", on_delete=models.CASCADE, related_name="waivers"
    )
    # Either a cell (torch_release + variant + platform) or a gate policy name.
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    platform = models.ForeignKey(
        Platform, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    policy = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="waiver_reason_required"),
            # A waiver names a policy or a whole cell, not a half-specified cell.
            models.CheckConstraint(
                condition=(
                    ~Q(policy="")
                    & Q(torch_release__isnull=True, variant__isnull=True, platform__isnull=True)
                )
                | (
                    Q(policy="")
                    & Q(torch_release__isnull=False, variant__isnull=False, platform__isnull=False)
                ),
                name="waiver_cell_or_policy",
            ),
        ]
        indexes = [models.Index(fields=["build", "revoked_at"])]

    def __str__(self) -> str:
        target = self.policy or f"{self.torch_release_id}/{self.variant_id}/{self.platform_id}"
        return f"Waiver on {self.build_id}: {target}"


class PromotionBackend(models.TextChoices):
    ANACONDA = "anaconda", "anaconda.org (anaconda-client copy)"
    LOCAL = "local", "Local file channel"


class PromotionState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Copying"
    DONE = "done", "Done"
    PARTIAL = "partial", "Partly copied (resumable)"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Promotion(models.Model):
    """A release manager's request to copy one build or a coordinated set into the target."""

    Backend = PromotionBackend

    State = PromotionState

    name = models.CharField(max_length=200, blank=True, help_text="Name of a coordinated set.")
    backend = models.CharField(max_length=16, choices=Backend.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    source_channel = models.ForeignKey(
        "packages_app.Channel", on_delete=models.PROTECT, related_name="+"
    )
    target_channel = models.ForeignKey(
        "packages_app.Channel", on_delete=models.PROTECT, related_name="+"
    )
    # Same key => same promotion: a double click does not promote twice.
    idempotency_key = models.CharField(max_length=64, unique=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The job copying it renews this after every item; once it has run out, the job is presumed
    # dead (worker killed) and the promotion may be resumed.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # What happened after the copies: [{"step", "ok", "detail"}] (re-sync, notices, checks).
    followups = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=PromotionState.values), name="promotion_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(backend__in=PromotionBackend.values),
                name="promotion_backend_valid",
            ),
        ]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"Promotion {self.pk} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        return reverse("testing:promotion-detail", kwargs={"pk": self.pk})

    @property
    def is_open(self) -> bool:
        """Still holds its builds: copying, waiting to, or stopped part-way (resumable)."""
        return self.state in OPEN_PROMOTION_STATES


# A build in a promotion in one of these states is taken: it cannot join another one.
OPEN_PROMOTION_STATES = (
    PromotionState.PENDING,
    PromotionState.RUNNING,
    PromotionState.PARTIAL,
    PromotionState.FAILED,
)


class PromotionItemState(models.TextChoices):
    PENDING = "pending", "Pending"
    COPYING = "copying", "Copying"
    DONE = "done", "Copied"
    FAILED = "failed", "Failed"


class PromotionItem(models.Model):
    """One build inside a promotion, with its own copy state so a crash resumes where it was."""

    State = PromotionItemState

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="items")
    build = models.ForeignKey(
        "packages_app.Build", on_delete=models.PROTECT, related_name="promotion_items"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    copied_at = models.DateTimeField(null=True, blank=True)
    # Where the file comes from and goes to, as shown on the confirmation page.
    source = models.CharField(max_length=500, blank=True)
    destination = models.CharField(max_length=500, blank=True)
    # How it landed: copied, or found already in the target with the same sha256.
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["promotion", "id"]
        constraints = [
            models.UniqueConstraint(fields=["promotion", "build"], name="promotionitem_unique"),
            models.CheckConstraint(
                condition=Q(state__in=PromotionItemState.values), name="promotionitem_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.build} in promotion {self.promotion_id}: {self.state}"
