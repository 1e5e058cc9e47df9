"""Release impact and the release wave per package: what a PyTorch release means for each
package before any test ran (admits / excludes / unbounded), then how far each one got.

Bounded queries whatever the catalog size: live packages with maintainers (2), their latest
versions' live builds (1), the distinct specs of older builds where a latest version excludes
the release (1) and the builds of the packages one of those admits (1), the release's cells of
the judged builds (1, grouped), the impact recorded at registration (1).
"""

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field

from django.db.models import Count
from rattler import Version

from distro_site.sql_arrays import in_array
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import ReleaseImpact
from testing_app.models import Run
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict
from testing_app.selectors.release_judgement import BuildsByVersion
from testing_app.selectors.release_judgement import ReleaseJudge
from testing_app.selectors.release_judgement import judge_package
from testing_app.selectors.release_judgement import list_live_packages
from testing_app.selectors.release_judgement import read_live_builds
from testing_app.selectors.release_judgement import read_release_builds
from testing_app.selectors.verdict_display import worst_of

Category = ReleaseImpact.Category
FAILING_VERDICTS = frozenset(
    {Verdict.FAILED, Verdict.UNINSTALLABLE, Verdict.NO_TESTS, Verdict.TIMEOUT, Verdict.ERROR}
)
GOOD_VERDICTS = frozenset({Verdict.PASSED, Verdict.WAIVED})

READY, FAILING, NEEDS_BUMP, WAITING = "ready", "failing", "needs_bump", "waiting"
NOT_APPLICABLE = "not_applicable"
WAVE_STATES = {
    NEEDS_BUMP: "Needs bump",
    FAILING: "Failing",
    WAITING: "Waiting",
    READY: "Ready",
    NOT_APPLICABLE: "Not applicable",
}


def final_version(release: TorchRelease) -> str:
    """The version an rc leads to (2.6.0rc1 -> 2.6.0); a final release's own version.

    Bounds are judged against it: `<2.6` admits 2.6.0rc1 in conda's ordering, yet the package
    still needs a bump for 2.6.0.
    """
    version = Version(release.version)
    segments = version.segments()
    numbers = [str(s[0]) for s in segments if s and isinstance(s[0], int)]
    parts = []
    for segment, number in zip(segments, numbers, strict=False):
        parts.append(number)
        if len(segment) > 1:  # "0rc1": the numeric head is the last final component
            break
    return ".".join(parts) if release.kind == release.Kind.RC else release.version


@dataclass
class PackageImpact:
    """One live package against one release, judged from the builds of its newest version
    that admits the release (its latest version's, when none does)."""

    package: Package
    category: str
    version: str
    specs: str
    maintainers: list[Maintainer] = field(default_factory=list)
    # Set when an older version is the one judged: the latest version, which excludes it.
    latest_excludes: str = ""

    @property
    def category_label(self) -> str:
        return Category(self.category).label


def attach_maintainers(impacts: list[PackageImpact]) -> list[PackageImpact]:
    """Fill `maintainers` of the given impacts (one query): only the rows that are shown or
    told need them, not every live package."""
    through = Package.maintainers.through
    rows = (
        through.objects.filter(package_id__in=[i.package.pk for i in impacts])
        .select_related("maintainer")
        .order_by("maintainer__name")
    )
    by_package: dict[int, list[Maintainer]] = defaultdict(list)
    for row in rows:
        by_package[row.package_id].append(row.maintainer)
    for impact in impacts:
        impact.maintainers = by_package.get(impact.package.pk, [])
    return impacts


def get_release_impact(release: TorchRelease) -> list[PackageImpact]:
    """Every live package (PyTorch itself aside) against `release`, before any test runs
    (without maintainers: attach_maintainers fills those that are needed)."""
    return _impact_and_latest(release)[0]


def _impact_and_latest(release: TorchRelease) -> tuple[list[PackageImpact], list[int]]:
    """Every live package's impact, and the ids of the builds each was judged by."""
    packages = list_live_packages()
    judge = ReleaseJudge(Version(final_version(release)))
    return impacts_of(packages, read_release_builds(packages, judge), release, judge)


def impacts_of(
    packages: list[Package],
    builds: BuildsByVersion,
    release: TorchRelease,
    judge: "ReleaseJudge | None" = None,
) -> tuple[list[PackageImpact], list[int]]:
    judge = judge or ReleaseJudge(Version(final_version(release)))
    result, judged_ids = [], []
    for package in packages:
        judged = judge_package(package, builds.get(package.pk, {}), judge)
        judged_ids += judged.build_ids
        result.append(
            PackageImpact(
                package=package,
                category=judged.category,
                version=judged.version,
                specs=judged.specs,
                latest_excludes=judged.latest_excludes,
            )
        )
    return result, judged_ids


@dataclass
class WaveRow:
    """One package in a release wave: its state, cell counts and whom to contact."""

    impact: PackageImpact
    state: str
    cell_counts: dict[str, int]
    worst: str
    # The category recorded when the release was registered (it may differ now).
    registered_category: str = ""

    @property
    def state_label(self) -> str:
        return WAVE_STATES[self.state]

    @property
    def needs_contact(self) -> bool:
        return self.state in (NEEDS_BUMP, FAILING)


@dataclass
class ReleaseFollow:
    release: TorchRelease
    final_version: str
    rows: list[WaveRow]
    by_state: dict[str, int]
    by_category: dict[str, int]
    registered: bool
    # The runs of this release's wave (newest first); none until the planner starts it.
    runs: list = field(default_factory=list)

    @property
    def packages_with_result(self) -> int:
        """Rows of the table with a result (the sentence above it counts the same rows)."""
        return sum(1 for row in self.rows if _has_result(row.cell_counts))

    @property
    def cells_with_result(self) -> int:
        return sum(
            n
            for row in self.rows
            for verdict, n in row.cell_counts.items()
            if verdict not in IN_FLIGHT_VERDICTS
        )


def _has_result(counts: dict[str, int]) -> bool:
    return any(verdict not in IN_FLIGHT_VERDICTS for verdict in counts)


def wave_state(category: str, counts: dict[str, int]) -> str:
    """ready / failing / needs bump / waiting / not applicable, from the impact and the
    release's cells. A package without a PyTorch dependency is not part of a wave; one whose
    every cell is not applicable (its own constraints exclude them) has nothing to wait for."""
    if category == Category.NO_DEPENDENCY:
        return NOT_APPLICABLE
    verdicts = set(counts)
    if verdicts & FAILING_VERDICTS:
        return FAILING
    if verdicts & IN_FLIGHT_VERDICTS:
        return WAITING
    if verdicts & GOOD_VERDICTS:
        return READY
    if category == Category.EXCLUDES:
        return NEEDS_BUMP  # the bound keeps the release out
    return NOT_APPLICABLE if verdicts == {Verdict.NOT_APPLICABLE} else WAITING


def get_release_follow(release: TorchRelease) -> ReleaseFollow:
    """The wave per package, worst first: needs bump, failing, waiting, ready (the page shows
    them a page at a time, optionally one state only; the counts cover every package)."""
    impacts, judged_ids = _impact_and_latest(release)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    cells = (
        CellResult.objects.filter(torch_release=release, build_id__in=in_array(judged_ids))
        .order_by()
        .values_list("package_id", "verdict")
        .annotate(n=Count("pk"))
    )
    for package_id, verdict, n in cells:
        counts[package_id][verdict] = n
    registered = dict(
        ReleaseImpact.objects.filter(torch_release=release).values_list("package_id", "category")
    )
    order = list(WAVE_STATES)
    rows = []
    for impact in impacts:
        package_counts = counts.get(impact.package.pk, {})
        rows.append(
            WaveRow(
                impact=impact,
                state=wave_state(impact.category, package_counts),
                cell_counts=package_counts,
                worst=worst_of(list(package_counts)) if package_counts else "",
                registered_category=registered.get(impact.package.pk, ""),
            )
        )
    rows.sort(key=lambda r: (order.index(r.state), r.impact.package.name))
    by_state = {s: sum(1 for r in rows if r.state == s) for s in order}
    by_category = {c: sum(1 for i in impacts if i.category == c) for c in Category.values}
    return ReleaseFollow(
        release=release,
        final_version=final_version(release),
        rows=rows,
        by_state=by_state,
        by_category=by_category,
        registered=bool(registered),
        runs=list(Run.objects.filter(torch_release=release).order_by("-id")[:5]),
    )


def list_releases_with_impact() -> list[tuple[TorchRelease, list[int]]]:
    """Registered releases, newest first (conda ordering), with their impact counts in the
    order of ReleaseImpact.Category: as recorded at registration, or computed now for a
    release that has no record (seeded or imported, never registered through the page).
    Four queries whatever the number of releases: the catalog is read once for all."""
    releases = sorted(TorchRelease.objects.all(), key=lambda r: Version(r.version), reverse=True)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (
        ReleaseImpact.objects.order_by()
        .values_list("torch_release_id", "category")
        .annotate(n=Count("pk"))
    )
    for release_id, category, n in rows:
        counts[release_id][category] = n
    unrecorded = [r for r in releases if r.pk not in counts]
    if unrecorded:
        packages = list_live_packages()
        builds = read_live_builds()
        for release in unrecorded:
            for impact in impacts_of(packages, builds, release)[0]:
                counts[release.pk][impact.category] = counts[release.pk].get(impact.category, 0) + 1
    return [(r, [counts[r.pk].get(c, 0) for c in Category.values]) for r in releases]
