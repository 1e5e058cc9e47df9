"""The release page's impact and wave, as computed now (each distinct depends/constrains pair
judged once, only admitting versions parsed, cells grouped by the build's version), equal the
straightforward computation they replaced, on generated catalogs with the awkward cases:
unreadable versions and specs, versions equal in conda's order but spelled apart, withdrawn
builds, constrains, several PyTorch names, builds of one version that disagree, cells on
versions other than the judged one."""

import random
from collections import defaultdict

import pytest
from django.db.models import Count
from rattler import Version
from rattler.exceptions import InvalidVersionError

from packages_app.lint.rules import pytorch_constraint
from packages_app.models import Build
from packages_app.models import Package
from testing_app.models import CellResult
from testing_app.models import ReleaseImpact
from testing_app.selectors.releases import final_version
from testing_app.selectors.releases import get_release_follow
from testing_app.selectors.releases import get_release_impact
from testing_app.selectors.releases import list_live_packages
from testing_app.selectors.releases import wave_state
from testing_app.selectors.verdict_display import worst_of
from tests import factories

Category = ReleaseImpact.Category

VERSIONS = ["1.0", "1.0.0", "1.1", "1.2rc1", "1.2", "2.0", "2.0.post1", "0.9", "1..2", "bad ver"]
DEPENDS = [
    ["pytorch >=2.4,<2.7"],
    ["pytorch >=2.0,<2.6", "numpy"],
    ["pytorch 2.5.*"],
    ["pytorch ==2.5.1"],
    ["pytorch >=1.10"],
    ["pytorch"],
    ["pytorch-cpu >=2.6"],
    ["libtorch <2.6"],
    ["pytorch >=2.4,<=2.5.0", "python >=3.10"],
    ["pytorch >=>2"],  # unreadable
    ["numpy >=1.21"],
    [],
]
CONSTRAINS = [[], [], ["pytorch <2.6"], ["pytorch-gpu >=2.5"]]
VERDICTS = ["passed", "failed", "running", "queued", "not_applicable", "waived", "timeout"]


# The computation before: every build's specs decoded and judged, every version parsed.
def _reference_builds(packages):
    rows = (
        Build.objects.filter(package__in=packages)
        .exclude(state=Build.State.WITHDRAWN)
        .order_by("package_id", "subdir", "pk")
        .values_list("package_id", "version", "pk", "depends", "constrains")
    )
    grouped = defaultdict(lambda: defaultdict(list))
    for package_id, version, pk, depends, constrains in rows:
        grouped[package_id][version].append((pk, depends or [], constrains or []))
    result = {}
    for package_id, by_version in grouped.items():
        readable, unreadable = [], []
        for version in by_version:
            try:
                readable.append((Version(version), version))
            except InvalidVersionError:
                unreadable.append(version)
        readable.sort(key=lambda pair: pair[0], reverse=True)
        result[package_id] = {v: by_version[v] for v in [v for _, v in readable] + unreadable}
    return result


def _reference_classify(builds, version):
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


def _reference_judge(package, by_version, version):
    """(category, version, specs, latest_excludes, judged build ids)"""
    latest = package.latest_version
    builds = by_version.get(latest, [])
    category, specs = _reference_classify(builds, version)
    if category != Category.EXCLUDES:
        return category, latest, specs, "", [b[0] for b in builds]
    for older, older_builds in by_version.items():
        if older == latest:
            continue
        older_category, older_specs = _reference_classify(older_builds, version)
        if older_category == Category.ADMITS:
            return older_category, older, older_specs, latest, [b[0] for b in older_builds]
    return category, latest, specs, "", [b[0] for b in builds]


def _reference_follow(release):
    packages = list_live_packages()
    builds = _reference_builds(packages)
    version = Version(final_version(release))
    judged, ids = {}, []
    for package in packages:
        *impact, build_ids = _reference_judge(package, builds.get(package.pk, {}), version)
        judged[package.pk] = tuple(impact)
        ids += build_ids
    counts = defaultdict(dict)
    cells = (
        CellResult.objects.filter(torch_release=release, build_id__in=ids)
        .order_by()
        .values_list("package_id", "verdict")
        .annotate(n=Count("pk"))
    )
    for package_id, verdict, n in cells:
        counts[package_id][verdict] = n
    rows = {}
    for package in packages:
        package_counts = counts.get(package.pk, {})
        state = wave_state(judged[package.pk][0], package_counts)
        worst = worst_of(list(package_counts)) if package_counts else ""
        rows[package.name] = (judged[package.pk], state, package_counts, worst)
    return rows


def _fixed_cases() -> None:
    """Cases a random draw may miss: the latest excludes the release and two older versions
    equal in conda's order admit it (the first read wins, by subdir then id); only unreadable
    older versions admit it (the first read wins)."""
    ties = factories.PackageFactory(name="ties", latest_version="3.0")
    unreadable = factories.PackageFactory(name="unreadable", latest_version="3.0")
    for package, version, subdir, depends in [
        (ties, "3.0", "linux-64", ["pytorch <2"]),
        (ties, "1.0", "noarch", ["pytorch >=2.4,<2.7"]),
        (ties, "1.0.0", "linux-64", ["pytorch >=2.0,<2.8", "numpy"]),
        (ties, "0.5", "linux-64", ["pytorch >=2.4,<2.7"]),
        (unreadable, "3.0", "linux-64", ["pytorch <2"]),
        (unreadable, "bad ver", "noarch", ["pytorch >=2.4,<2.7"]),
        (unreadable, "1..2", "linux-64", ["pytorch >=2.0,<2.8"]),
    ]:
        factories.BuildFactory(
            name=package.name, package=package, version=version, subdir=subdir, depends=depends
        )


def _generate_catalog(rng: random.Random, axes) -> None:
    variants, platforms, release = axes
    _fixed_cases()
    for p in range(30):
        versions = rng.sample(VERSIONS, rng.randint(1, 6))
        latest = rng.choice(versions + ["", "9.9"])  # no build, or none of its version
        status = rng.choice([Package.Status.ACTIVE] * 4 + list(Package.Status.values))
        package = factories.PackageFactory(name=f"gen{p}", latest_version=latest, status=status)
        for version in versions:
            for b in range(rng.randint(1, 3)):
                build = factories.BuildFactory(
                    name=package.name,
                    package=package,
                    version=version,
                    build_string=f"b{b}_{rng.randint(0, 10**6)}",
                    subdir=rng.choice(["linux-64", "noarch", "osx-arm64"]),
                    depends=rng.choice(DEPENDS),
                    constrains=rng.choice(CONSTRAINS),
                    state=rng.choice(["staged", "promoted", "promoted", "withdrawn"]),
                )
                for variant in variants:
                    for platform in platforms:
                        if rng.random() < 0.5:
                            factories.CellResultFactory(
                                build=build,
                                package=package,
                                torch_release=release,
                                variant=variant,
                                platform=platform,
                                verdict=rng.choice(VERDICTS),
                            )


@pytest.mark.parametrize("seed", range(4))
def test_release_page_equals_the_previous_computation_on_generated_catalogs(db, seed):
    rng = random.Random(seed)
    variants = [factories.VariantFactory(name=n) for n in ("cpu", "cuda12.4")]
    platforms = [factories.PlatformFactory(subdir=s) for s in ("linux-64", "osx-arm64")]
    wave_release = factories.TorchReleaseFactory(version="2.6.0")
    _generate_catalog(rng, (variants, platforms, wave_release))
    releases = [wave_release] + [
        factories.TorchReleaseFactory(version=v, kind=kind)
        for v, kind in [("2.5.1", "final"), ("2.7.0rc1", "rc"), ("1.9.0", "final")]
    ]
    for release in releases:
        expected = _reference_follow(release)
        impacts = get_release_impact(release)
        assert {
            i.package.name: (i.category, i.version, i.specs, i.latest_excludes) for i in impacts
        } == {name: row[0] for name, row in expected.items()}
        follow = get_release_follow(release)
        got = {
            r.impact.package.name: (
                (r.impact.category, r.impact.version, r.impact.specs, r.impact.latest_excludes),
                r.state,
                r.cell_counts,
                r.worst,
            )
            for r in follow.rows
        }
        assert got == expected
        # The generated worlds exercise what they are meant to.
        assert follow.rows
    expected = _reference_follow(wave_release)
    assert len({row[1] for row in expected.values()}) >= 3
    assert expected["ties"][0][1:4:2] == ("1.0.0", "3.0")
    assert expected["unreadable"][0][1:4:2] == ("1..2", "3.0")
