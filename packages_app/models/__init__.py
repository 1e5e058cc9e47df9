"""Catalog models: maintainers, packages, proposals, channels, builds, PyTorch releases."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.crypto import salted_hmac

# Conda package names: lowercase letters, digits and "._-", starting with a letter or digit.
CONDA_NAME_REGEX = r"^[a-z0-9][a-z0-9._-]*$"


def new_status_token() -> str:
    """An unguessable token for the proposer's private status URL."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored of a capability token: a leaked table must not hand out working links."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_unused_token_hash() -> str:
    """The hash of a fresh token nobody holds (a row made outside the form has no status link)."""
    return hash_token(new_status_token())


class MaintainerNotifyMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately"
    DAILY = "daily", "Daily digest"


class Maintainer(models.Model):
    """A person responsible for one or more packages; optionally linked to a login."""

    NotifyMode = MaintainerNotifyMode

    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)
    github_handle = models.CharField(max_length=39, blank=True)
    # GitHub's numeric user id, stored when the person first signs in with GitHub: logins can
    # be renamed, the id cannot, so a renamed handle is followed from then on (issue 21).
    github_id = models.BigIntegerField(null=True, blank=True, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="maintainer",
    )
    notify_mode = models.CharField(
        max_length=16, choices=NotifyMode.choices, default=NotifyMode.DAILY
    )
    # Notification kinds this maintainer opted out of (values of Notification.Kind).
    muted_kinds = models.JSONField(default=list, blank=True)
    # The preferences link is derived from this salt and SECRET_KEY (an HMAC), so the table alone
    # hands out no working link; a new salt makes every earlier link stop working.
    unsubscribe_salt = models.CharField(max_length=64, default=new_status_token)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def _unsubscribe_digest(self) -> str:
        return salted_hmac(
            "packages_app.Maintainer.unsubscribe",
            f"{self.pk}:{self.unsubscribe_salt}",
            algorithm="sha256",
        ).hexdigest()

    @property
    def unsubscribe_token(self) -> str:
        """The token in every email's preferences link: "<pk>.<hmac>"."""
        return f"{self.pk}.{self._unsubscribe_digest()}"

    def unsubscribe_token_matches(self, token: str) -> bool:
        return constant_time_compare(token, self.unsubscribe_token)


class PackageStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    ACTIVE = "active", "Active"
    AT_RISK = "at_risk", "At risk"
    DEPRECATED = "deprecated", "Deprecated"
    REMOVED = "removed", "Removed"


class Package(models.Model):
    """A name in the distribution, with its lifecycle and maintainers."""

    Status = PackageStatus

    name = models.CharField(max_length=128, unique=True)
    summary = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    maintainers = models.ManyToManyField(Maintainer, related_name="packages", blank=True)
    home_url = models.URLField(blank=True)
    repo_url = models.URLField(blank=True)
    recipe_url = models.URLField(blank=True)
    license = models.CharField(max_length=200, blank=True)
    # C++/CUDA extensions built against one exact PyTorch (torchvision, torchaudio, ...).
    abi_coupled = models.BooleanField(default=False)
    # Highest version seen among this package's live builds; kept by the import service so
    # list pages and the matrix need no per-package "latest" subquery.
    latest_version = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PackageStatus.values), name="package_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(name__regex=CONDA_NAME_REGEX), name="package_name_conda_rules"
            ),
        ]
        indexes = [models.Index(fields=["status", "name"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("packages:package-detail", kwargs={"name": self.name})


class PackageToken(models.Model):
    """A per-package API token for maintainers' CI ("test this build"); only its hash is kept."""

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        Maintainer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.package.name}: {self.name}"


class ProposalState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    CHECKING = "checking", "Pre-checks running"
    IN_REVIEW = "in_review", "Waiting for review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ProposalPrecheckOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    PASS = "pass", "Pass"
    WARN = "warn", "Warnings"
    FAIL = "fail", "Fail"
    ERROR = "error", "Could not run"


class Proposal(models.Model):
    """A package proposed through the public form, its automatic pre-checks and the review."""

    State = ProposalState

    PrecheckOutcome = ProposalPrecheckOutcome

    package_name = models.CharField(max_length=128)
    summary = models.CharField(max_length=300)
    home_url = models.URLField()
    repo_url = models.URLField()
    recipe_url = models.URLField(max_length=500)
    license = models.CharField(max_length=200)
    rationale = models.TextField(help_text="Why it belongs in the PyTorch ecosystem.")
    # [{"name", "email", "github_handle"}]; Maintainer rows are created on approval.
    maintainers_data = models.JSONField(default=list)
    confirms_pytorch_key_dependency = models.BooleanField(default=False)
    confirms_dependencies_available = models.BooleanField(default=False)
    confirms_recipe_exists = models.BooleanField(default=False)
    commits_to_maintain = models.BooleanField(default=False)

    # Where the status link and every decision are emailed.
    contact_email = models.EmailField(blank=True)

    state = models.CharField(max_length=20, choices=State.choices, default=State.SUBMITTED)
    # sha256 of the status-page token; the token itself is only in the email and the redirect.
    status_token_hash = models.CharField(
        max_length=64, unique=True, default=new_unused_token_hash, editable=False
    )
    precheck_outcome = models.CharField(
        max_length=16, choices=PrecheckOutcome.choices, default=PrecheckOutcome.PENDING
    )
    # [{"check", "outcome": pass|warn|fail, "detail"}]
    precheck_results = models.JSONField(default=list, blank=True)
    precheck_error = models.TextField(blank=True)
    prechecked_at = models.DateTimeField(null=True, blank=True)

    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_proposals",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    package = models.ForeignKey(
        Package, null=True, blank=True, on_delete=models.SET_NULL, related_name="proposals"
    )
    # Hash of the submitting client's address, for rate limiting without storing the address.
    client_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ProposalState.values), name="proposal_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(package_name__regex=CONDA_NAME_REGEX),
                name="proposal_name_conda_rules",
            ),
            # Two people proposing the same name at once: the second gets a clear conflict.
            models.UniqueConstraint(
                fields=["package_name"],
                condition=Q(state__in=["submitted", "checking", "in_review", "changes_requested"]),
                name="proposal_one_open_per_name",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "created_at"]),
            models.Index(fields=["package_name"]),
            models.Index(fields=["client_fingerprint", "created_at"]),
        ]
        permissions = [("review_proposal", "Can review proposals and decide on them")]

    def __str__(self) -> str:
        return f"Proposal of {self.package_name} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        """The public summary (no contact data); the status page needs the private token."""
        return reverse("proposals:proposal-summary", kwargs={"pk": self.pk})

    @property
    def recipe_was_rendered(self) -> bool:
        """True when the pre-checks got as far as rendering the recipe (a failed fetch or render
        renders nothing, and the page must not say it did)."""
        return any(
            isinstance(r, dict) and r.get("check") == "recipe_render" and r.get("outcome") != "fail"
            for r in self.precheck_results or ()
        )

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_PROPOSAL_STATES


# Proposals still waiting on pre-checks, a reviewer or the proposer.
OPEN_PROPOSAL_STATES = (
    ProposalState.SUBMITTED,
    ProposalState.CHECKING,
    ProposalState.IN_REVIEW,
    ProposalState.CHANGES_REQUESTED,
)


class ProposalNoteKind(models.TextChoices):
    NOTE = "note", "Note"
    DECISION = "decision", "Decision"
    EVENT = "event", "Event"


class ProposalDecision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"
    REQUEST_CHANGES = "request_changes", "Changes requested"


class ProposalNote(models.Model):
    """One entry of a proposal's thread: a note, a reviewer's decision, or a recorded event.

    Entries are never edited: the thread is the audit of who decided what and when.
    """

    Kind = ProposalNoteKind

    Decision = ProposalDecision

    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="proposal_notes",
    )
    # Shown name, kept when the account goes: a reviewer, "proposer" or "pre-checks".
    author_name = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NOTE)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Decisions are emailed to the proposal's contact; delivery is recorded here.
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ProposalNoteKind.values), name="proposalnote_kind_valid"
            ),
            models.CheckConstraint(
                condition=(Q(kind="decision") & Q(decision__in=ProposalDecision.values))
                | (~Q(kind="decision") & Q(decision="")),
                name="proposalnote_decision_iff_kind",
            ),
        ]
        indexes = [models.Index(fields=["proposal", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on proposal {self.proposal_id} by {self.author_name}"


class ChannelRole(models.TextChoices):
    STAGING = "staging", "Staging"
    TARGET = "target", "Target"
    UPSTREAM = "upstream", "Upstream"


class Channel(models.Model):
    """A conda channel (URL + optional label); the target is what users install from."""

    Role = ChannelRole

    name = models.CharField(max_length=100)
    url = models.CharField(max_length=500, help_text="Base URL: https://, http:// or file://")
    label = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.UPSTREAM)
    # Subdirs to read; empty means every subdir that answers.
    subdirs = models.JSONField(default=list, blank=True)
    # Per-subdir HTTP cache validators: {"linux-64": {"etag": ..., "last_modified": ...}}
    sync_state = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "label"]
        constraints = [
            # "pytorch" and "pytorch/label/test" are two channels: same owner, other label.
            models.UniqueConstraint(fields=["name", "label"], name="channel_unique_name_label"),
            models.CheckConstraint(
                condition=Q(role__in=ChannelRole.values), name="channel_role_valid"
            ),
            # One target channel: it is what `conda install -c ...` points at.
            models.UniqueConstraint(
                fields=["role"], condition=Q(role="target"), name="channel_single_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}/label/{self.label}" if self.label else self.name

    @property
    def base_url(self) -> str:
        """The URL conda reads subdirs from: <url>[/label/<label>]."""
        url = self.url.rstrip("/")
        return f"{url}/label/{self.label}" if self.label else url


class BuildState(models.TextChoices):
    STAGED = "staged", "Staged"
    PROMOTED = "promoted", "Promoted"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Build(models.Model):
    """One conda artifact seen in a channel, with its repodata record kept whole."""

    State = BuildState

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="builds")
    package = models.ForeignKey(
        Package, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds"
    )
    subdir = models.CharField(max_length=32)
    filename = models.CharField(max_length=255)
    name = models.CharField(max_length=128)
    version = models.CharField(max_length=64)
    build_string = models.CharField(max_length=128)
    build_number = models.PositiveIntegerField(default=0)
    depends = models.JSONField(default=list, blank=True)
    constrains = models.JSONField(default=list, blank=True)
    # Names out of `depends`, for reverse dependencies without parsing specs at read time.
    depends_names = models.JSONField(default=list, blank=True)
    track_features = models.CharField(max_length=255, blank=True)
    noarch = models.CharField(max_length=16, blank=True)
    license = models.CharField(max_length=255, blank=True)
    license_family = models.CharField(max_length=64, blank=True)
    md5 = models.CharField(max_length=32, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    # Digest of the stored record fields: a re-import compares it and writes only what changed.
    record_digest = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.STAGED)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-timestamp"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subdir", "filename"], name="build_unique_file_per_channel"
            ),
            models.CheckConstraint(
                condition=Q(state__in=BuildState.values), name="build_state_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["name", "subdir"]),
            models.Index(fields=["package", "state"]),
            models.Index(fields=["sha256"]),
        ]

    def __str__(self) -> str:
        return f"{self.subdir}/{self.filename}"

    def get_absolute_url(self) -> str:
        return reverse("packages:package-detail", kwargs={"name": self.name}) + f"#build-{self.pk}"

    @property
    def download_url(self) -> str:
        return f"{self.channel.base_url}/{self.subdir}/{self.filename}"


class TorchReleaseKind(models.TextChoices):
    RC = "rc", "Release candidate"
    FINAL = "final", "Final"


class TorchRelease(models.Model):
    """A PyTorch release or release candidate, and what it ships (variants, platforms, pythons)."""

    Kind = TorchReleaseKind

    version = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FINAL)
    released_on = models.DateField(null=True, blank=True)
    supported = models.BooleanField(default=False)
    variants = models.ManyToManyField("testing_app.Variant", related_name="torch_releases")
    platforms = models.ManyToManyField("testing_app.Platform", related_name="torch_releases")
    python_versions = models.JSONField(default=list, blank=True)
    torchvision_version = models.CharField(max_length=32, blank=True)
    torchaudio_version = models.CharField(max_length=32, blank=True)
    source = models.TextField(blank=True, help_text="Where these facts come from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-released_on", "-version"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=TorchReleaseKind.values), name="torchrelease_kind_valid"
            ),
        ]
        indexes = [models.Index(fields=["supported", "released_on"])]

    def __str__(self) -> str:
        return f"PyTorch {self.version}" + (" (rc)" if self.kind == self.Kind.RC else "")


# Kept in their own module (this one is long enough); imported here so Django registers them.
from packages_app.models.publishers import TrustedPublisher  # noqa: E402,F401
from packages_app.models.publishers import UsedPublishingToken  # noqa: E402,F401
from packages_app.models.revisions import SubdirRevision  # noqa: E402,F401
