"""Reads for the channel's health: a package's lint and lifecycle, the maintenance overview,
the claims queue. Bounded queries whatever the catalog size."""

from dataclasses import dataclass
from dataclasses import field
from datetime import date
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models import Q
from django.db.models import QuerySet
from django.utils import timezone
from rattler import Version

from packages_app.lint.rules import PYTORCH_NAMES
from packages_app.lint.rules import spec_name
from packages_app.models import Build
from packages_app.models import Package
from packages_app.models import TorchRelease
from packages_app.selectors.lint_report import PackageLint
from packages_app.selectors.lint_report import get_package_lint
from testing_app.models import CellResult
from testing_app.models import MaintainerClaim
from testing_app.models import PackageStatusEvent
from testing_app.models.verdicts import Verdict

Status = Package.Status
EVENTS_SHOWN = 10
PASSING = (Verdict.PASSED, Verdict.WAIVED)
# Verdicts that keep a build from counting as passing (in-flight ones just wait).
BLOCKING = (
    Verdict.FAILED,
    Verdict.UNINSTALLABLE,
    Verdict.NO_TESTS,
    Verdict.TIMEOUT,
    Verdict.ERROR,
    Verdict.QUEUED,
    Verdict.RUNNING,
)


def newest_supported_release() -> TorchRelease | None:
    """The newest supported final release with a release date (the policy needs the date)."""
    releases = TorchRelease.objects.filter(
        supported=True, kind=TorchRelease.Kind.FINAL, released_on__isnull=False
    )
    return max(releases, key=lambda r: Version(r.version), default=None)


def packages_with_passing_build(release: TorchRelease, package_ids=None) -> set[int]:
    """Packages with a build whose cells for `release` all passed (or were waived), one query."""
    cells = CellResult.objects.filter(torch_release=release, package_id__isnull=False)
    if package_ids is not None:
        cells = cells.filter(package_id__in=package_ids)
    rows = (
        cells.order_by()
        .values("package_id", "build_id")
        .annotate(
            good=Count("pk", filter=Q(verdict__in=PASSING)),
            bad=Count("pk", filter=Q(verdict__in=BLOCKING)),
        )
        .filter(good__gt=0, bad=0)
        .values_list("package_id", flat=True)
    )
    return set(rows)


def packages_depending_on_pytorch(package_ids) -> set[int]:
    """Packages with a live build that depends on PyTorch (one query). The policy measures a
    package against PyTorch releases only when it depends on PyTorch: faiss or a pure-Python
    helper has no PyTorch result to lack."""
    rows = (
        Build.objects.filter(package_id__in=package_ids)
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("package_id", "depends")
    )
    return {
        package_id
        for package_id, depends in rows
        if any(spec_name(spec) in PYTORCH_NAMES for spec in depends or () if isinstance(spec, str))
    }


def deadline_for(package: Package) -> str:
    """When the next automatic step happens to a package, in words (for notices and pages)."""
    if package.status == Status.AT_RISK and package.status_changed_at:
        when = package.status_changed_at + timedelta(days=settings.MAINTENANCE_DEPRECATE_AFTER_DAYS)
        return f"It will be deprecated (no further promotions) on {when:%Y-%m-%d}."
    if package.status == Status.DEPRECATED:
        return "A release manager may now remove it from the target channel."
    return ""


@dataclass
class PackageHealth:
    """The package page's health section: lint of the latest version, lifecycle, maintainers."""

    lint: PackageLint | None
    events: list[PackageStatusEvent]
    next_step: str
    maintainer_needed: bool
    open_claims: int


def get_package_health(*, name: str, package: Package | None, versions: list[str]):
    """Lint of the newest version (versions come newest first) and, for a registered package,
    its lifecycle events and whether it needs a maintainer."""
    lint = get_package_lint(name=name, version=versions[0] if versions else "")
    if package is None:
        return PackageHealth(lint, [], "", False, 0)
    # An active package's past episodes stay in the admin: the page shows the timeline only
    # while the package is on it (and saves the query otherwise).
    events = []
    if package.status in (Status.AT_RISK, Status.DEPRECATED, Status.REMOVED):
        events = list(
            PackageStatusEvent.objects.filter(package=package)
            .select_related("torch_release", "by")
            .order_by("-created_at", "-id")[:EVENTS_SHOWN]
        )
    maintainer_needed = not package.maintainers.all()  # prefetched by the page
    claims = (
        MaintainerClaim.objects.filter(
            package=package, state=MaintainerClaim.State.SUBMITTED
        ).count()
        if maintainer_needed
        else 0
    )
    return PackageHealth(lint, events, deadline_for(package), maintainer_needed, claims)


@dataclass
class MaintenanceRow:
    package: Package
    passing: bool
    next_step: str
    maintainers: int


@dataclass
class MaintenanceOverview:
    release: TorchRelease | None
    at_risk_from: date | None
    grace_over: bool
    rows: list[MaintenanceRow]
    unmaintained: list[Package]
    without_passing_build: int
    not_measured: list[Package] = field(default_factory=list)  # no PyTorch dependency


def get_maintenance_overview() -> MaintenanceOverview:
    """Packages on the policy's timeline (at risk, deprecated, removed), the active ones that
    would become at risk, and the packages that need a maintainer."""
    release = newest_supported_release()
    packages = list(
        Package.objects.filter(
            status__in=[Status.ACTIVE, Status.AT_RISK, Status.DEPRECATED, Status.REMOVED]
        )
        .exclude(name__in=PYTORCH_NAMES)  # the releases themselves are not on the timeline
        .annotate(maintainer_count=Count("maintainers"))
        .order_by("name")
    )
    ids = [p.pk for p in packages]
    passing = packages_with_passing_build(release, ids) if release else set()
    measured = packages_depending_on_pytorch(ids)
    rows = [
        MaintenanceRow(p, p.pk in passing, deadline_for(p), p.maintainer_count)
        for p in packages
        if p.status != Status.ACTIVE
        or (release is not None and p.pk in measured and p.pk not in passing)
    ]
    order = [Status.REMOVED, Status.DEPRECATED, Status.AT_RISK, Status.ACTIVE]
    rows.sort(key=lambda r: (order.index(r.package.status), r.package.name))
    at_risk_from = (
        release.released_on + timedelta(days=settings.MAINTENANCE_GRACE_DAYS) if release else None
    )
    return MaintenanceOverview(
        release=release,
        at_risk_from=at_risk_from,
        grace_over=at_risk_from is not None and timezone.now().date() >= at_risk_from,
        rows=rows,
        unmaintained=[p for p in packages if not p.maintainer_count and p.status != Status.REMOVED],
        without_passing_build=sum(1 for r in rows if not r.passing),
        not_measured=[p for p in packages if p.pk not in measured],
    )


def list_open_claims() -> QuerySet[MaintainerClaim]:
    """Claims waiting for a reviewer, oldest first."""
    return (
        MaintainerClaim.objects.filter(state=MaintainerClaim.State.SUBMITTED)
        .select_related("package")
        .order_by("created_at", "id")
    )


def list_decided_claims(limit: int = 20) -> list[MaintainerClaim]:
    return list(
        MaintainerClaim.objects.filter(~Q(state=MaintainerClaim.State.SUBMITTED))
        .select_related("package", "reviewed_by")
        .order_by("-reviewed_at", "-id")[:limit]
    )
