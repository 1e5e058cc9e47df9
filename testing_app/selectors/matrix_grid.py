"""The matrix as a grid of all three axes: rows are package x platform, columns are PyTorch
releases grouped with one sub-column per variant (cpu, each CUDA/ROCm).

By default only the (release, variant) columns where the page's packages hold a result other than
"not applicable" are shown: a column where every package says "not for this PyTorch" answers no
question a reader has, and fourteen releases x six variants never fit a screen. `columns=all`
shows every supported release x variant. "Failing only" keeps the failing cells, the rows that
have one and the columns that have one, and blanks every other cell.

Reads CellResult only, in a fixed number of queries whatever the catalog size: releases,
variants, platforms, the variants each release is built for, the package page (+ count and
maintainers) and one grouped aggregate.
"""

from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from functools import lru_cache
from urllib.parse import quote

from django.core.paginator import Page
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count
from django.db.models import F
from django.db.models import Max
from django.db.models import Subquery

from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models.verdicts import Verdict
from testing_app.selectors.matrix import MAX_PAGE_SIZE
from testing_app.selectors.matrix import PROBLEM_VERDICTS
from testing_app.selectors.matrix import CellSummary
from testing_app.selectors.matrix import MatrixFilters
from testing_app.selectors.matrix import list_matrix_packages
from testing_app.selectors.matrix import list_supported_releases
from testing_app.selectors.matrix import summarise_counts
from testing_app.selectors.verdict_display import DISPLAY_ORDER

COLUMN_CHOICES = {"": "with results", "all": "all releases and variants"}


@dataclass(frozen=True)
class GridCell:
    """One package x platform x release x variant: worst verdict over its pythons and builds,
    and one reason the planner or a job gave for it (shown on hover)."""

    summary: CellSummary
    reason: str = ""


@dataclass(frozen=True)
class GridColumn:
    release: TorchRelease
    variant: Variant
    first_of_release: bool = False

    @cached_property
    def path(self) -> str:
        """This column's part of a cell page's URL: release/variant/ (quoted, so HTML-safe)."""
        return f"{quote(self.release.version, safe='')}/{quote(self.variant.name, safe='')}/"


@dataclass(frozen=True)
class ReleaseGroup:
    release: TorchRelease
    span: int


@dataclass
class GridRow:
    package: Package
    maintainers: list[Maintainer]
    platform: str  # "" for a package's single summary row (nothing to show in the columns)
    cells: list[GridCell | None]
    note: str = ""  # why a summary row has no cells
    package_rowspan: int = 0  # > 0 on the package's first row only

    @property
    def is_empty(self) -> bool:
        return not self.platform


@dataclass
class ResultsGrid:
    groups: list[ReleaseGroup]
    columns: list[GridColumn]
    rows: list[GridRow]
    page: Page
    filters: MatrixFilters
    all_columns: bool
    total_columns: int
    verdict_totals: dict[str, int] = field(default_factory=dict)

    @property
    def hidden_columns(self) -> int:
        return self.total_columns - len(self.columns)


def _page_cells(package_ids: list[int], releases: list[TorchRelease], filters: MatrixFilters):
    """CellResults of the page's packages' latest-version builds: through an indexed build
    subquery (the page's ~200 builds), not a join with every build of the catalog."""
    builds = Build.objects.filter(
        package_id__in=package_ids, version=F("package__latest_version")
    ).values("pk")
    cells = CellResult.objects.filter(
        build_id__in=Subquery(builds), torch_release_id__in=[r.pk for r in releases]
    )
    if filters.platform:
        cells = cells.filter(platform__subdir=filters.platform)
    if filters.variant:
        cells = cells.filter(variant__name=filters.variant)
    return cells


@lru_cache(maxsize=1024)
def _summary(counts: tuple[tuple[str, int], ...]) -> CellSummary:
    """summarise_counts of a cell's (verdict, n) pairs; a page repeats few distinct ones."""
    return summarise_counts(dict(counts))


def _aggregate(
    package_ids: list[int], releases: list[TorchRelease], filters: MatrixFilters
) -> dict[tuple[int, int, int, int], GridCell]:
    """One grouped query: {(package, platform, release, variant): GridCell}."""
    if not package_ids or not releases:
        return {}  # an empty IN () has no SQL: Django raises EmptyResultSet when compiling it
    grouped = (
        _page_cells(package_ids, releases, filters)
        .order_by()
        .values_list("package_id", "platform_id", "torch_release_id", "variant_id", "verdict")
        .annotate(n=Count("pk"), reason=Max("detail"))
    )
    # Plain tuples from the cursor: a design-scale page groups ~10,000 cells, and the ORM's
    # per-row conversion of them cost as much as the query itself (bench/matrix_scale.py).
    sql, params = grouped.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Most cells hold one verdict: their rows map straight to a shared GridCell (a page repeats
    # few distinct ones), so that ~10,000 cells allocate next to nothing.
    single: dict[tuple, tuple] = {}
    several: dict[tuple, list[tuple]] = {}
    for row in rows:
        key = row[:4]
        if key in several:
            several[key].append(row)
        elif key in single:
            several[key] = [single.pop(key), row]
        else:
            single[key] = row
    shared: dict[tuple, GridCell] = {}
    cells: dict[tuple[int, int, int, int], GridCell] = {}
    for key, (*_, verdict, n, reason) in single.items():
        cell = shared.get((verdict, n, reason))
        if cell is None:
            cell = shared[(verdict, n, reason)] = GridCell(_summary(((verdict, n),)), reason or "")
        cells[key] = cell
    for key, group in several.items():
        summary = _summary(tuple(sorted((row[4], row[5]) for row in group)))
        reason = next((row[6] for row in group if row[4] == summary.worst and row[6]), "")
        cells[key] = GridCell(summary=summary, reason=reason)
    return cells


def _shown(cell: GridCell, failing_only: bool) -> bool:
    if failing_only:
        return cell.summary.worst in PROBLEM_VERDICTS
    return cell.summary.worst != Verdict.NOT_APPLICABLE


def get_results_grid(
    *, filters: MatrixFilters, all_columns: bool = False, page_number=1, per_page: int = 50
) -> ResultsGrid:
    """A page of the three-axis matrix in eight queries, whatever the catalog size."""
    releases = list_supported_releases()
    variants = list(Variant.objects.order_by("sort_order", "name"))
    platforms = {p.pk: p for p in Platform.objects.all()}
    if filters.variant:
        variants = [v for v in variants if v.name == filters.variant]
    packages = list_matrix_packages(filters, [r.pk for r in releases])
    page = Paginator(packages, min(max(per_page, 1), MAX_PAGE_SIZE)).get_page(page_number)
    page_packages = list(page.object_list)
    cells = _aggregate([p.pk for p in page_packages], releases, filters)
    failing_only = filters.status == "failing"

    wanted = {key[2:] for key, cell in cells.items() if _shown(cell, failing_only)}
    # "All" is every variant each release is built for (the release's own list), plus any
    # variant that holds a result anyway; a release without a list admits every variant.
    built_for: dict[int, set[int]] = {}
    for release_id, variant_id in TorchRelease.variants.through.objects.filter(
        torchrelease_id__in=[r.pk for r in releases]
    ).values_list("torchrelease_id", "variant_id"):
        built_for.setdefault(release_id, set()).add(variant_id)
    every = [
        (r, v)
        for r in releases
        for v in variants
        if r.pk not in built_for or v.pk in built_for[r.pk] or (r.pk, v.pk) in wanted
    ]
    if all_columns and not failing_only:
        chosen = every
    else:
        chosen = [(r, v) for r, v in every if (r.pk, v.pk) in wanted]
    columns, groups = [], []
    for release, variant in chosen:
        first = not groups or groups[-1].release.pk != release.pk
        if first:
            groups.append(ReleaseGroup(release=release, span=0))
        groups[-1] = ReleaseGroup(release=release, span=groups[-1].span + 1)
        columns.append(GridColumn(release=release, variant=variant, first_of_release=first))

    column_keys = [(c.release.pk, c.variant.pk) for c in columns]
    platform_ids: dict[int, set[int]] = {}
    applicable: set[int] = set()
    for (package_id, platform_id, *_), cell in cells.items():
        platform_ids.setdefault(package_id, set()).add(platform_id)
        if cell.summary.worst != Verdict.NOT_APPLICABLE:
            applicable.add(package_id)
    rows: list[GridRow] = []
    totals: dict[str, int] = dict.fromkeys(DISPLAY_ORDER, 0)
    for package in page_packages:
        maintainers = list(package.maintainers.all())
        ordered = sorted(
            (platforms[pk] for pk in platform_ids.get(package.pk, ())),
            key=lambda p: (p.sort_order, p.subdir),
        )
        package_rows = []
        for platform in ordered:
            # The tightest loop of the page (~10,000 cells at design scale): plain keys only.
            row_cells = [cells.get((package.pk, platform.pk, *key)) for key in column_keys]
            if failing_only:
                row_cells = [c if c is not None and _shown(c, True) else None for c in row_cells]
                if not any(row_cells):
                    continue
            for cell in row_cells:
                if cell is not None:
                    totals[cell.summary.worst] += 1
            package_rows.append(
                GridRow(
                    package=package,
                    maintainers=maintainers,
                    platform=platform.subdir,
                    cells=row_cells,
                )
            )
        if not failing_only and not any(any(r.cells) for r in package_rows):
            if package.pk not in platform_ids:
                note = "no result yet"
            elif package.pk not in applicable:
                note = "not applicable to any supported PyTorch release"
            else:
                note = "no result in the columns shown"
            package_rows = [
                GridRow(package=package, maintainers=maintainers, platform="", cells=[], note=note)
            ]
        if package_rows:
            package_rows[0].package_rowspan = len(package_rows)
            rows.extend(package_rows)
    return ResultsGrid(
        groups=groups,
        columns=columns,
        rows=rows,
        page=page,
        filters=filters,
        all_columns=all_columns,
        total_columns=len(every),
        verdict_totals={k: n for k, n in totals.items() if n},
    )
