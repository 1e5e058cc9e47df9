"""The compatibility matrix: packages (latest version's builds) x supported PyTorch releases.

Each cell aggregates the package's CellResult rows over variants x platforms into the worst
verdict plus counts. Reads CellResult, or its per-package counts (PackageVerdictCount, kept by
triggers) when no platform or variant is chosen, never job history; a page costs a fixed number
of queries whatever the catalog size: releases, the package page (+ its count and maintainers),
and one grouped aggregate over the page's cells.
"""

from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

from django.core.paginator import Page
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models import Exists
from django.db.models import F
from django.db.models import IntegerField
from django.db.models import OuterRef
from django.db.models import Prefetch
from django.db.models import Q
from django.db.models import QuerySet
from django.db.models import Subquery
from django.db.models import Sum
from django.db.models.functions import Coalesce
from rattler import Version

from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import PackageVerdictCount
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict
from testing_app.selectors.verdict_display import DISPLAY_ORDER
from testing_app.selectors.verdict_display import MISSING
from testing_app.selectors.verdict_display import SEVERITY_RANK
from testing_app.selectors.verdict_display import worst_of

# What "failing only" means: the package's own failures plus infrastructure trouble that
# needs someone to look (the first four of VERDICT_SEVERITY).
PROBLEM_VERDICTS = frozenset(
    {Verdict.FAILED, Verdict.UNINSTALLABLE, Verdict.TIMEOUT, Verdict.ERROR}
)
# Rows are the packages of the distribution; proposals and removed names have no matrix row.
LISTED_PACKAGE_STATUSES = (
    Package.Status.ACTIVE,
    Package.Status.AT_RISK,
    Package.Status.DEPRECATED,
)
# "failing" covers every PROBLEM_VERDICTS cell: failed, uninstallable, timed out, infra error.
STATUS_CHOICES = {
    "failing": "failing",
    "in_flight": "queued or running",
    "passing": "all passed",
    "untested": "no results yet",
}
SORT_CHOICES = {
    "name": "name A→Z",
    "-name": "name Z→A",
    "failing": "most problems first",
}
MAX_SEARCH_LENGTH = 100
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class MatrixFilters:
    """The matrix's query-string filters, validated: every field is safe to use as is."""

    search: str = ""
    maintainer: str = ""
    status: str = ""
    platform: str = ""
    variant: str = ""
    sort: str = "name"

    def as_query(self) -> dict[str, str]:
        """Non-default values, for permalinks and pagination links."""
        values = {
            "q": self.search,
            "maintainer": self.maintainer,
            "status": self.status,
            "platform": self.platform,
            "variant": self.variant,
            "sort": "" if self.sort == "name" else self.sort,
        }
        return {key: value for key, value in values.items() if value}

    @property
    def is_filtered(self) -> bool:
        return bool(set(self.as_query()) - {"sort"})


def parse_matrix_filters(
    params: Mapping[str, str], *, variants: list[Variant], platforms: list[Platform]
) -> tuple[MatrixFilters, dict[str, str]]:
    """Read filters from a query string; unknown values are dropped and reported per field."""
    errors: dict[str, str] = {}
    search = params.get("q", "").strip()
    if len(search) > MAX_SEARCH_LENGTH:
        errors["q"] = f"Search is limited to {MAX_SEARCH_LENGTH} characters."
        search = search[:MAX_SEARCH_LENGTH]
    maintainer = params.get("maintainer", "").strip()[:MAX_SEARCH_LENGTH]
    choices = {
        "status": (params.get("status", ""), set(STATUS_CHOICES)),
        "platform": (params.get("platform", ""), {p.subdir for p in platforms}),
        "variant": (params.get("variant", ""), {v.name for v in variants}),
        "sort": (params.get("sort", "") or "name", set(SORT_CHOICES)),
    }
    clean: dict[str, str] = {}
    for name, (value, allowed) in choices.items():
        if value and value not in allowed:
            errors[name] = f"Unknown {name} {value!r}; choose one of: {', '.join(sorted(allowed))}."
            value = "name" if name == "sort" else ""
        clean[name] = value
    return MatrixFilters(search=search, maintainer=maintainer, **clean), errors


@dataclass(frozen=True)
class CellSummary:
    """One matrix cell: the worst verdict over variants x platforms, and how many of each."""

    worst: str
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)

    @property
    def worst_count(self) -> int:
        return dict(self.counts).get(self.worst, 0)


EMPTY_CELL = CellSummary(worst=MISSING)


@dataclass(frozen=True)
class MatrixRow:
    package: Package
    maintainers: list[Maintainer]
    cells: list[CellSummary]


@dataclass
class ResultsMatrix:
    """A page of the matrix: columns (newest release first), rows, and the paginator page."""

    columns: list[TorchRelease]
    rows: list[MatrixRow]
    page: Page
    filters: MatrixFilters
    verdict_totals: dict[str, int] = field(default_factory=dict)


def list_supported_releases() -> list[TorchRelease]:
    """Supported PyTorch releases, newest first in conda version order (py-rattler)."""
    releases = TorchRelease.objects.filter(supported=True)
    return sorted(releases, key=lambda r: Version(r.version), reverse=True)


def list_variants() -> list[Variant]:
    return list(Variant.objects.all())


def list_platforms() -> list[Platform]:
    return list(Platform.objects.all())


def _scoped_cells(
    filters: MatrixFilters, release_ids: list[int], *, package_ref=None
) -> QuerySet[CellResult]:
    """CellResults of the latest version's builds, within the selected releases/variant/platform.

    With `package_ref` (an OuterRef), the queryset is correlated to one package row.
    """
    if package_ref is not None:
        cells = CellResult.objects.filter(
            package=package_ref, build__version=OuterRef("latest_version")
        )
    else:
        cells = CellResult.objects.filter(build__version=F("package__latest_version"))
    cells = cells.filter(torch_release_id__in=release_ids)
    if filters.platform:
        cells = cells.filter(platform__subdir=filters.platform)
    if filters.variant:
        cells = cells.filter(variant__name=filters.variant)
    return cells


def _counts_apply(filters: MatrixFilters) -> bool:
    """The per-package counts hold every variant and platform: usable unless one is chosen."""
    return not filters.platform and not filters.variant


def _scoped_counts(release_ids: list[int], *, package_ref=None) -> QuerySet[PackageVerdictCount]:
    """The cell counts of the latest version, within the selected releases (all variants and
    platforms); with `package_ref` (an OuterRef), correlated to one package row."""
    if package_ref is not None:
        counts = PackageVerdictCount.objects.filter(
            package=package_ref, version=OuterRef("latest_version")
        )
    else:
        counts = PackageVerdictCount.objects.filter(version=F("package__latest_version"))
    return counts.filter(torch_release_id__in=release_ids)


def list_matrix_packages(filters: MatrixFilters, release_ids: list[int]) -> QuerySet[Package]:
    """The matrix's rows: listed packages matching the filters, in the requested order."""
    packages = Package.objects.filter(status__in=LISTED_PACKAGE_STATUSES)
    if filters.search:
        packages = packages.filter(name__icontains=filters.search)
    if filters.maintainer:
        matching = Maintainer.objects.filter(
            Q(github_handle__iexact=filters.maintainer.lstrip("@"))
            | Q(email__iexact=filters.maintainer)
            | Q(name__icontains=filters.maintainer)
        )
        links = Package.maintainers.through.objects.filter(
            package=OuterRef("pk"), maintainer__in=Subquery(matching.values("pk"))
        )
        packages = packages.filter(Exists(links))
    # Both querysets have a `verdict`: the status filters read either the same way. The counts
    # make "failing only, most problems first" read ~40 rows per package instead of ~240 cells.
    counted = _counts_apply(filters)
    if counted:
        in_scope = _scoped_counts(release_ids, package_ref=OuterRef("pk"))
    else:
        in_scope = _scoped_cells(filters, release_ids, package_ref=OuterRef("pk"))
    if counted and filters.sort == "failing":
        # One grouped join of the counts (~100,000 small rows at design scale), not a
        # correlated sum per package; with "failing only" the join itself is the filter.
        problems_in_scope = Q(
            verdict_counts__version=F("latest_version"),
            verdict_counts__torch_release_id__in=release_ids,
            verdict_counts__verdict__in=PROBLEM_VERDICTS,
        )
        if filters.status == "failing":
            # Only packages with problem rows: an inner join that keeps only those rows.
            packages = packages.filter(problems_in_scope).annotate(
                problem_count=Sum("verdict_counts__cells")
            )
        else:
            packages = packages.annotate(
                problem_count=Coalesce(Sum("verdict_counts__cells", filter=problems_in_scope), 0)
            )
    if filters.status == "failing" and not (counted and filters.sort == "failing"):
        packages = packages.filter(Exists(in_scope.filter(verdict__in=PROBLEM_VERDICTS)))
    elif filters.status == "in_flight":
        packages = packages.filter(Exists(in_scope.filter(verdict__in=IN_FLIGHT_VERDICTS)))
    elif filters.status == "passing":
        not_passed = ~Q(verdict__in=[Verdict.PASSED, Verdict.WAIVED, Verdict.NOT_APPLICABLE])
        packages = packages.filter(
            Exists(in_scope.filter(verdict=Verdict.PASSED)), ~Exists(in_scope.filter(not_passed))
        )
    elif filters.status == "untested":
        packages = packages.filter(~Exists(in_scope))
    if filters.sort == "failing":
        if not counted:
            problems = (
                in_scope.filter(verdict__in=PROBLEM_VERDICTS)
                .order_by()
                .values("package")
                .annotate(n=Count("pk"))
                .values("n")
            )
            packages = packages.annotate(
                problem_count=Coalesce(Subquery(problems, output_field=IntegerField()), 0)
            )
        packages = packages.order_by("-problem_count", "name")
    else:
        packages = packages.order_by("-name" if filters.sort == "-name" else "name")
    return packages.prefetch_related(
        Prefetch("maintainers", queryset=Maintainer.objects.order_by("name"))
    )


def summarise_counts(counts: Mapping[str, int]) -> CellSummary:
    """A cell from {verdict: count}: worst verdict first, counts in severity order."""
    ordered = tuple(
        sorted(((v, n) for v, n in counts.items() if n), key=lambda item: SEVERITY_RANK[item[0]])
    )
    return (
        CellSummary(worst=worst_of(v for v, _ in ordered), counts=ordered)
        if ordered
        else EMPTY_CELL
    )


def aggregate_cells(
    package_ids: list[int], releases: list[TorchRelease], filters: MatrixFilters
) -> dict[tuple[int, int], CellSummary]:
    """One grouped query: {(package_id, release_id): CellSummary} for the given packages."""
    release_ids = [r.pk for r in releases]
    if _counts_apply(filters):
        rows = (
            _scoped_counts(release_ids)
            .filter(package_id__in=package_ids)
            .values_list("package_id", "torch_release_id", "verdict", "cells")
        )
    else:
        rows = (
            _scoped_cells(filters, release_ids)
            .filter(package_id__in=package_ids)
            .order_by()
            .values_list("package_id", "torch_release_id", "verdict")
            .annotate(n=Count("pk"))
        )
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for package_id, release_id, verdict, n in rows:
        counts.setdefault((package_id, release_id), {})[verdict] = n
    return {key: summarise_counts(value) for key, value in counts.items()}


def _build_rows(
    packages: list[Package], releases: list[TorchRelease], filters: MatrixFilters
) -> list[MatrixRow]:
    cells = aggregate_cells([p.pk for p in packages], releases, filters)
    return [
        MatrixRow(
            package=package,
            maintainers=list(package.maintainers.all()),
            cells=[cells.get((package.pk, release.pk), EMPTY_CELL) for release in releases],
        )
        for package in packages
    ]


def get_results_matrix(
    *, filters: MatrixFilters, page_number=1, per_page: int = DEFAULT_PAGE_SIZE
) -> ResultsMatrix:
    """A page of the matrix in five queries: releases, count, packages, maintainers, cells."""
    releases = list_supported_releases()
    packages = list_matrix_packages(filters, [r.pk for r in releases])
    page = Paginator(packages, min(max(per_page, 1), MAX_PAGE_SIZE)).get_page(page_number)
    rows = _build_rows(list(page.object_list), releases, filters)
    totals: dict[str, int] = dict.fromkeys(DISPLAY_ORDER, 0)
    for row in rows:
        for cell in row.cells:
            totals[cell.worst] += 1
    return ResultsMatrix(
        columns=releases,
        rows=rows,
        page=page,
        filters=filters,
        verdict_totals={k: n for k, n in totals.items() if n},
    )


def iter_matrix_rows(
    *, filters: MatrixFilters, chunk_size: int = 500
) -> tuple[list[TorchRelease], Iterator[MatrixRow]]:
    """Every row matching the filters (CSV export), one aggregate query per chunk of packages."""
    releases = list_supported_releases()
    packages = list_matrix_packages(filters, [r.pk for r in releases])

    def rows() -> Iterator[MatrixRow]:
        # Keyset pagination would break the "failing" sort; offsets over a stable order are fine
        # for an export that reads each package once.
        start = 0
        while True:
            chunk = list(packages[start : start + chunk_size])
            if not chunk:
                return
            yield from _build_rows(chunk, releases, filters)
            start += chunk_size

    return releases, rows()


def filters_with(filters: MatrixFilters, **changes) -> MatrixFilters:
    """A copy of the filters with some fields changed (for links such as "failing only")."""
    return replace(filters, **changes)
