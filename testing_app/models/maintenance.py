"""Keeping the channel healthy: release impact, lifecycle events, claims, notice issues."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ImpactCategory(models.TextChoices):
    ADMITS = "admits", "Admits it"
    EXCLUDES = "excludes", "Excludes it (bump needed)"
    UNBOUNDED = "unbounded", "Unbounded (will be tested)"
    NO_DEPENDENCY = "no_dependency", "No PyTorch dependency"
    NO_BUILD = "no_build", "No build yet"


class ReleaseImpact(models.Model):
    """What a PyTorch release meant for one package when it was registered, before any test ran:
    whether the package's latest builds admit it, exclude it (a bump is needed) or have no
    upper bound (they will simply be tested)."""

    Category = ImpactCategory

    torch_release = models.ForeignKey(
        "packages_app.TorchRelease", on_delete=models.CASCADE, related_name="impacts"
    )
    package = models.ForeignKey(
        "packages_app.Package", on_delete=models.CASCADE, related_name="release_impacts"
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    # The latest version judged and the PyTorch specs of its builds, as written.
    version = models.CharField(max_length=64, blank=True)
    specs = models.CharField(max_length=500, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["torch_release", "package__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["torch_release", "package"], name="releaseimpact_one_per_package"
            ),
            models.CheckConstraint(
                condition=Q(category__in=ImpactCategory.values), name="releaseimpact_category_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package_id} x {self.torch_release_id}: {self.category}"


class PackageStatusEvent(models.Model):
    """One lifecycle step of a package (active -> at_risk -> deprecated -> removed, and back),
    with why and who: the maintenance timeline shown on the package page."""

    package = models.ForeignKey(
        "packages_app.Package", on_delete=models.CASCADE, related_name="status_events"
    )
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    reason = models.TextField()
    # The release the policy measured against (none for manual steps).
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["package", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.package_id}: {self.from_status} -> {self.to_status}"


class ClaimState(models.TextChoices):
    SUBMITTED = "submitted", "Waiting for review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class MaintainerClaim(models.Model):
    """Someone offering to maintain a package that has no maintainer, reviewed like a proposal."""

    State = ClaimState

    package = models.ForeignKey(
        "packages_app.Package", on_delete=models.CASCADE, related_name="maintainer_claims"
    )
    name = models.CharField(max_length=200)
    email = models.EmailField()
    github_handle = models.CharField(max_length=39, blank=True)
    rationale = models.TextField(help_text="Why you, and how you will keep it working.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.SUBMITTED)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # The decision is emailed to the claimant; delivery is recorded here.
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)
    # Hash of the client's address, for rate limiting without storing the address.
    client_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ClaimState.values), name="maintainerclaim_state_valid"
            ),
            # One open claim per person and package: a double submit is a conflict, not a copy.
            models.UniqueConstraint(
                fields=["package", "email"],
                condition=Q(state="submitted"),
                name="maintainerclaim_one_open_per_person",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "created_at"]),
            models.Index(fields=["client_fingerprint", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} claims {self.package_id} ({self.state})"


class PackageNoticeIssue(models.Model):
    """A GitHub issue where notices about a package are also posted as comments (optional)."""

    package = models.OneToOneField(
        "packages_app.Package", on_delete=models.CASCADE, related_name="notice_issue"
    )
    issue_url = models.URLField(
        help_text="https://github.com/<owner>/<repo>/issues/<number>",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(issue_url__regex=r"^https://github\.com/[^/]+/[^/]+/issues/[0-9]+$"),
                name="packagenoticeissue_github_issue_url",
            ),
        ]

    def __str__(self) -> str:
        return self.issue_url
