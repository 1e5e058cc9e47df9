"""The release page's wave computation as it was before issue 16 (every build's specs decoded
and judged, every version parsed, the judged builds as an `IN` list), kept so that
`release_health.py` can time it beside the current one in the same run. Not used by the
product; `tests/testing_app/test_release_page_equivalence.py` checks the current computation
against the same logic."""

from collections import defaultdict

from django.db.models import Count
from rattler import Version
from rattler.exceptions import InvalidVersionError

from packages_app.lint.rules import pytorch_constraint
from packages_app.models import Build
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import ReleaseImpact
from testing_app.models import Run
from testing_app.selectors.releases import WAVE_STATES
from testing_app.selectors.releases import PackageImpact
from testing_app.selectors.releases import ReleaseFollow
from testing_app.selectors.releases import WaveRow
from testing_app.selectors.releases import final_version
from testing_app.selectors.releases import list_live_packages
from testing_app.selectors.releases import wave_state
from testing_app.selectors.verdict_display import worst_of

Category = ReleaseImpact.Category


def _live_builds(packages):
    rows = (
        Build.objects.filter(package__in=packages)
        .exclude(state=Build.State.WITHDRAWN)
        .order_by("package_id", "subdir", "pk")
        .values_list("package_id", "version", "pk", "depends", "constrains")
    )
    grouped = defaultdict(lambda: defaultdict(list))
    for package_id, version, pk, depends, constrains in rows:
        grouped[package_id][version].append((pk, depends or [], constrains or []))
    return {package_id: _newest_first(by_version) for package_id, by_version in grouped.items()}


def _newest_first(by_version):
    readable, unreadable = [], []
    for version in by_version:
        try:
            readable.append((Version(version), version))
        except InvalidVersionError:
            unreadable.append(version)
    readable.sort(key=lambda pair: pair[0], reverse=True)
    return {v: by_version[v] for v in [v for _, v in readable] + unreadable}


def _classify(builds, version):
    if not builds:
        return Category.NO_BUILD, ""
    constraints = [c for _, d, k in builds if (c := pytorch_constraint(depends=d, constrains=k))]
    if not constraints:
        return Category.NO_DEPENDENCY, ""
    specs = "; ".join(dict.fromkeys(" and ".join(c.specs) for c in constraints))[:500]
    admitting = [c for c in constraints if c.admits(version)]
    if any(not c.unbounded for c in admitting):
        return Category.ADMITS, specs
    if admitting:
        return Category.UNBOUNDED, specs
    return Category.EXCLUDES, specs


def _judge(package, by_version, version):
    latest = package.latest_version
    builds = by_version.get(latest, [])
    category, specs = _classify(builds, version)
    if category != Category.EXCLUDES:
        return PackageImpact(package, category, latest, specs), [b[0] for b in builds]
    for older, older_builds in by_version.items():
        if older == latest:
            continue
        older_category, older_specs = _classify(older_builds, version)
        if older_category == Category.ADMITS:
            impact = PackageImpact(package, older_category, older, older_specs)
            impact.latest_excludes = latest
            return impact, [b[0] for b in older_builds]
    return PackageImpact(package, category, latest, specs), [b[0] for b in builds]


def get_release_follow(release: TorchRelease) -> ReleaseFollow:
    packages = list_live_packages()
    builds = _live_builds(packages)
    version = Version(final_version(release))
    impacts, latest_ids = [], []
    for package in packages:
        impact, ids = _judge(package, builds.get(package.pk, {}), version)
        impacts.append(impact)
        latest_ids += ids
    counts = defaultdict(dict)
    cells = (
        CellResult.objects.filter(torch_release=release, build_id__in=latest_ids)
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
    return ReleaseFollow(
        release=release,
        final_version=final_version(release),
        rows=rows,
        by_state={s: sum(1 for r in rows if r.state == s) for s in order},
        by_category={c: sum(1 for i in impacts if i.category == c) for c in Category.values},
        registered=bool(registered),
        runs=list(Run.objects.filter(torch_release=release).order_by("-id")[:5]),
    )
