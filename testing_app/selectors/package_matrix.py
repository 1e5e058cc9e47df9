"""One package's matrix: its builds x (PyTorch release x variant x platform), with cell history.

Shown on /packages/<name>/. Costs one query when the package has no results yet, and four when
it has (cells, supported releases, the version's builds, the last N jobs of each shown cell),
whatever the number of builds, cells or jobs.
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from django.db.models import F
from django.db.models import Window
from django.db.models.functions import RowNumber
from rattler import Version

from packages_app.models import Build
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models.verdicts import Verdict

HISTORY_LENGTH = 5


@dataclass(frozen=True)
class HistoryEntry:
    """One past job of a cell: its verdict, or its status while unfinished."""

    job_id: int
    verdict: str
    created_at: datetime


@dataclass(frozen=True)
class Column:
    pk: int
    version: str


@dataclass(frozen=True)
class VariantCell:
    variant: str
    python: str
    verdict: str
    previous_verdict: str
    latest_job_id: int | None
    history: tuple[HistoryEntry, ...] = ()
    release: str = ""
    platform: str = ""
    detail: str = ""  # the planner's reason for a cell it decided without a job


@dataclass
class PackageMatrixRow:
    """One build on one platform (a noarch build has a row per platform it was tested on)."""

    build: Build
    platform_subdir: str
    cells: list[list[VariantCell]] = field(default_factory=list)

    @property
    def has_results(self) -> bool:
        return any(self.cells)


@dataclass(frozen=True)
class LastKnownGood:
    """The newest PyTorch release some build of the package passed on, per platform x variant."""

    platform: str
    variant: str
    release: str
    build_version: str


@dataclass
class PackageMatrix:
    name: str
    version: str = ""
    versions: list[str] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    rows: list[PackageMatrixRow] = field(default_factory=list)
    last_known_good: list[LastKnownGood] = field(default_factory=list)
    has_results: bool = False
    all_columns: bool = False
    total_columns: int = 0

    @property
    def hidden_columns(self) -> int:
        return self.total_columns - len(self.columns)


@dataclass(frozen=True)
class _Cell:
    """A CellResult row as read (plain values: a package has hundreds, models would be slow)."""

    build_id: int
    build_version: str
    release_id: int
    release_version: str
    variant: str
    variant_order: int
    platform: str
    platform_order: int
    python: str
    verdict: str
    previous_verdict: str
    latest_job_id: int | None
    detail: str

    @property
    def key(self) -> tuple:
        return (self.build_id, self.release_id, self.variant, self.platform, self.python)


CELL_FIELDS = (
    "build_id",
    "build__version",
    "torch_release_id",
    "torch_release__version",
    "variant__name",
    "variant__sort_order",
    "platform__subdir",
    "platform__sort_order",
    "python",
    "verdict",
    "previous_verdict",
    "latest_job_id",
    "detail",
)


def _last_known_good(cells: list[_Cell]) -> list[LastKnownGood]:
    best: dict[tuple[str, str], tuple[Version, _Cell]] = {}
    for cell in cells:
        if cell.verdict != Verdict.PASSED:
            continue
        key = (cell.platform, cell.variant)
        version = Version(cell.release_version)
        if key not in best or version > best[key][0]:
            best[key] = (version, cell)
    ordered = sorted(
        (c for _, c in best.values()),
        key=lambda c: (c.platform_order, c.platform, c.variant_order, c.variant),
    )
    return [
        LastKnownGood(
            platform=c.platform,
            variant=c.variant,
            release=c.release_version,
            build_version=c.build_version,
        )
        for c in ordered
    ]


def _history(build_ids: list[int]) -> dict[tuple, tuple[HistoryEntry, ...]]:
    """The last HISTORY_LENGTH tests of every cell of the given builds, newest first (1 query)."""
    ranked = (
        # Tests only: a cell's install checks (a solve before each test) are on its cell page;
        # mixed in here a failed test read "✗ ✓", the ✓ being its own install check.
        Job.objects.filter(build_id__in=build_ids, kind=Job.Kind.TEST)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[
                    F("build_id"),
                    F("torch_release_id"),
                    F("variant_id"),
                    F("platform_id"),
                    F("python"),
                ],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=HISTORY_LENGTH)
        .values_list(
            "build_id",
            "torch_release_id",
            "variant__name",
            "platform__subdir",
            "python",
            "id",
            "status",
            "verdict",
            "created_at",
            "rank",
        )
    )
    grouped: dict[tuple, list[tuple[int, HistoryEntry]]] = {}
    for build, release, variant, platform, python, pk, status, verdict, created, rank in ranked:
        entry = HistoryEntry(job_id=pk, verdict=verdict or status, created_at=created)
        grouped.setdefault((build, release, variant, platform, python), []).append((rank, entry))
    return {key: tuple(e for _, e in sorted(entries)) for key, entries in grouped.items()}


def _rows(
    builds: list[Build],
    version_cells: list[_Cell],
    columns: list[Column],
    history: dict[tuple, tuple[HistoryEntry, ...]],
) -> list[PackageMatrixRow]:
    by_row: dict[tuple[int, str], dict[int, list[_Cell]]] = {}
    for cell in version_cells:
        by_row.setdefault((cell.build_id, cell.platform), {}).setdefault(
            cell.release_id, []
        ).append(cell)
    rows = []
    for build in builds:
        subdirs = sorted(s for b, s in by_row if b == build.pk) or [build.subdir]
        for subdir in subdirs:
            per_release = by_row.get((build.pk, subdir), {})
            row = PackageMatrixRow(build=build, platform_subdir=subdir)
            for column in columns:
                cells = sorted(
                    per_release.get(column.pk, []),
                    key=lambda c: (c.variant_order, c.variant, c.python),
                )
                row.cells.append(
                    [
                        VariantCell(
                            variant=c.variant,
                            python=c.python,
                            verdict=c.verdict,
                            previous_verdict=c.previous_verdict,
                            latest_job_id=c.latest_job_id,
                            history=history.get(c.key, ()),
                            release=c.release_version,
                            platform=c.platform,
                            detail=c.detail,
                        )
                        for c in cells
                    ]
                )
            rows.append(row)
    return rows


def get_package_matrix(
    *,
    name: str,
    versions: list[str],
    requested_version: str = "",
    all_columns: bool = False,
    supported_releases: list[TorchRelease] | None = None,
) -> PackageMatrix:
    """The matrix of one version of `name` (the requested one, else the newest in `versions`).

    `versions` are the package's live versions, newest first (packages_app's list_versions).
    By default only the releases with a result other than "not applicable" are columns;
    `all_columns` shows every supported release. `supported_releases` saves the page that
    already read them a query.
    """
    matrix = PackageMatrix(name=name, versions=versions)
    if not versions:
        return matrix
    matrix.version = requested_version if requested_version in versions else versions[0]
    # Every cell of every build: the shown version's, and the passes for "last known good"
    # (plain tuples: a package has at most builds x releases x variants of them).
    rows = CellResult.objects.filter(build__name=name).values_list(*CELL_FIELDS)
    cells = [_Cell(*values) for values in rows]
    if not cells:
        return matrix
    matrix.has_results = True
    matrix.last_known_good = _last_known_good(cells)
    version_cells = [c for c in cells if c.build_version == matrix.version]
    if supported_releases is None:
        supported = TorchRelease.objects.filter(supported=True).values_list("pk", "version")
    else:
        supported = [(release.pk, release.version) for release in supported_releases]
    columns = {pk: Column(pk, version) for pk, version in supported}
    columns.update({c.release_id: Column(c.release_id, c.release_version) for c in version_cells})
    matrix.total_columns = len(columns)
    if not all_columns:
        # Only the releases where this version holds a result other than "not applicable":
        # eight columns of "not applicable" before the first verdict hid the verdicts.
        answered = {c.release_id for c in version_cells if c.verdict != Verdict.NOT_APPLICABLE}
        columns = {pk: column for pk, column in columns.items() if pk in answered}
    matrix.all_columns = all_columns
    matrix.columns = sorted(columns.values(), key=lambda c: Version(c.version), reverse=True)
    builds = list(
        Build.objects.filter(name=name, version=matrix.version)
        .exclude(state=Build.State.WITHDRAWN)
        .only("id", "filename", "subdir", "version", "build_number", "build_string")
        .order_by("subdir", "-build_number", "build_string")
    )
    history = _history([b.pk for b in builds])
    matrix.rows = _rows(builds, version_cells, matrix.columns, history)
    return matrix
