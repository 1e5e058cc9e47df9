"""Notices to maintainers: one per maintainer per root cause, never one per cell."""

from django.db import models
from django.db.models import Q


class NotificationKind(models.TextChoices):
    OWN_FAILURE = "own_failure", "Your package failed"
    UPSTREAM_BREAKAGE = "upstream_breakage", "Breakage caused by an upstream build"
    DOWNSTREAM_BREAKAGE = "downstream_breakage", "Your build broke a dependent package"
    BUMP_NEEDED = "bump_needed", "A new PyTorch release needs a bump"
    PROPOSAL_DECISION = "proposal_decision", "Proposal decision"
    AT_RISK = "at_risk", "Package at risk"
    DEPRECATED = "deprecated", "Package deprecated"
    REMOVAL = "removal", "Package removal"
    REINSTATED = "reinstated", "Package active again"
    PROMOTION_DONE = "promotion_done", "Promotion done"


class NotificationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    DIGESTED = "digested", "Included in a digest"
    SENT = "sent", "Sent"
    SUPPRESSED = "suppressed", "Suppressed (opted out)"
    FAILED = "failed", "Sending failed"


class Notification(models.Model):
    """A message for one maintainer about one root cause, queued, digested or sent."""

    Kind = NotificationKind

    State = NotificationState

    maintainer = models.ForeignKey(
        "packages_app.Maintainer", on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    # Identifies the root cause ("build:123:torch:2.5.1"); with maintainer and kind it is unique,
    # so a cause that stays unchanged is never notified twice.
    root_cause_key = models.CharField(max_length=200)
    package = models.ForeignKey(
        "packages_app.Package", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    build = models.ForeignKey(
        "packages_app.Build", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=300)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    error_message = models.TextField(blank=True)
    # The comment posted on the package's notice issue for this cause (optional GitHub notices).
    github_comment_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        constraints = [
            models.UniqueConstraint(
                fields=["maintainer", "kind", "root_cause_key"], name="notification_one_per_cause"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=NotificationState.values), name="notification_state_valid"
            ),
        ]
        indexes = [models.Index(fields=["state", "maintainer", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.maintainer_id}: {self.subject}"
