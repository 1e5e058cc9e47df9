"""Judging live packages' builds against one PyTorch version: which builds to read (the latest
versions', older ones only where they can serve the release), and each version's category,
each distinct depends/constrains pair decoded and judged once."""

import functools
import json
from dataclasses import dataclass

from django.db.models import F
from django.db.models import TextField
from django.db.models.functions import Cast
from rattler import Version
from rattler.exceptions import InvalidVersionError

from distro_site.sql_arrays import in_array
from packages_app.lint.rules import PYTORCH_NAMES
from packages_app.lint.rules import PytorchConstraint
from packages_app.lint.rules import pytorch_constraint
from packages_app.models import Build
from packages_app.models import Package
from testing_app.models import ReleaseImpact

Category = ReleaseImpact.Category
# Packages that take part in release waves: still in the channel, whatever their health.
LIVE_STATUSES = (Package.Status.ACTIVE, Package.Status.AT_RISK, Package.Status.DEPRECATED)

# package id -> version -> (the PyTorch constraint of each live build of it, None for a build
# without a PyTorch dependency; their ids), in (subdir, id) order; versions in the order first
# read.
VersionBuilds = tuple[list[PytorchConstraint | None], list[int]]
BuildsByVersion = dict[int, dict[str, VersionBuilds]]


def read_live_builds(builds=None) -> BuildsByVersion:
    """The live builds (default: every one of the live packages; one query), grouped by
    version.

    `depends`/`constrains` come as JSON text: most builds of a catalog share their lists, so
    each distinct pair is decoded and judged once (the per-row JSON decoding and spec parsing
    were most of the release page's time).
    """
    if builds is None:
        builds = Build.objects.filter(package__in=_live_packages())
    rows = (
        builds.exclude(state=Build.State.WITHDRAWN)
        .order_by("package_id", "subdir", "pk")
        .values_list("package_id", "version", "pk", *_SPECS_AS_TEXT)
    )
    grouped: BuildsByVersion = {}
    for package_id, version, pk, depends, constrains in rows:
        versions = grouped.setdefault(package_id, {})
        builds_of_version = versions.get(version)
        if builds_of_version is None:
            builds_of_version = versions[version] = ([], [])
        builds_of_version[0].append(_constraint_of(depends, constrains))
        builds_of_version[1].append(pk)
    return grouped


_SPECS_AS_TEXT = (Cast("depends", TextField()), Cast("constrains", TextField()))


@functools.lru_cache(maxsize=4096)
def _constraint_of(depends: str | None, constrains: str | None) -> PytorchConstraint | None:
    """The PyTorch constraint of a build's depends/constrains, as JSON text."""
    return pytorch_constraint(depends=_json_list(depends), constrains=_json_list(constrains))


def read_release_builds(packages: list[Package], judge: "ReleaseJudge") -> BuildsByVersion:
    """The live builds the release's judgement needs: every package's latest version, and
    the older versions of the packages whose latest excludes the release and that have an
    older build admitting it with an upper bound (only such a version can serve it); each
    package's builds come whole or not at all, so it is judged as with every build. Three
    queries, the last two only when a latest version excludes the release."""
    live = _live_packages()
    builds = read_live_builds(
        Build.objects.filter(package__in=live, version=F("package__latest_version"))
    )
    excluding = []
    for package in packages:
        latest = builds.get(package.pk, {}).get(package.latest_version, NO_BUILDS)
        if judge.classify(latest)[0] == Category.EXCLUDES:
            excluding.append(package.pk)
    if not excluding:
        return builds
    keys = (
        Build.objects.filter(package_id__in=in_array(excluding), package__in=live)
        .exclude(version=F("package__latest_version"))
        .exclude(state=Build.State.WITHDRAWN)
        .order_by()
        .values_list("package_id", *_SPECS_AS_TEXT)
        .distinct()
    )
    served = {
        package_id
        for package_id, depends, constrains in keys
        if judge.admits_with_bound(_constraint_of(depends, constrains))
    }
    if served:
        builds.update(read_live_builds(Build.objects.filter(package_id__in=in_array(served))))
    return builds


def _json_list(text: str | None) -> list[str]:
    return (json.loads(text) if text is not None else None) or []


class ReleaseJudge:
    """Judges versions' builds against one PyTorch version, remembering what it judged: the
    builds of a catalog share a few constraints, so each one is matched once."""

    def __init__(self, version: Version):
        self.version = version
        self._admits: dict[PytorchConstraint, bool] = {}
        self._classified: dict[tuple, tuple[str, str]] = {}

    def admits(self, constraint: PytorchConstraint) -> bool:
        if constraint not in self._admits:
            self._admits[constraint] = constraint.admits(self.version)
        return self._admits[constraint]

    def admits_with_bound(self, constraint: PytorchConstraint | None) -> bool:
        """Whether a version with a build of this constraint admits the release (ADMITS)."""
        return constraint is not None and not constraint.unbounded and self.admits(constraint)

    def classify(self, builds: VersionBuilds) -> tuple[str, str]:
        """(category, PyTorch specs as written) of one version's builds."""
        key = tuple(builds[0])
        if key not in self._classified:
            self._classified[key] = self._classify(key)
        return self._classified[key]

    def _classify(self, pytorch: tuple[PytorchConstraint | None, ...]) -> tuple[str, str]:
        if not pytorch:
            return Category.NO_BUILD, ""
        constraints = [c for c in pytorch if c]
        if not constraints:
            return Category.NO_DEPENDENCY, ""
        specs = "; ".join(dict.fromkeys(" and ".join(c.specs) for c in constraints))[:500]
        admitting = [c for c in constraints if self.admits(c)]
        if any(not c.unbounded for c in admitting):
            return Category.ADMITS, specs
        if admitting:
            return Category.UNBOUNDED, specs
        return Category.EXCLUDES, specs


@dataclass(frozen=True)
class Judged:
    category: str
    version: str
    specs: str
    build_ids: list[int]
    latest_excludes: str = ""


NO_BUILDS: VersionBuilds = ([], [])


def judge_package(
    package: Package, by_version: dict[str, VersionBuilds], judge: ReleaseJudge
) -> Judged:
    """The package against one PyTorch version: its latest version when that admits it (or
    decides nothing); when the latest excludes it, the newest older version (conda's order;
    versions conda cannot read come after every readable one) whose bounds admit it (a release
    the package moved past is served by that version: no bump needed). An older version
    without bounds admits everything on paper and says nothing about a release that came
    after it: the latest still needs a bump then."""
    latest = package.latest_version
    builds = by_version.get(latest, NO_BUILDS)
    category, specs = judge.classify(builds)
    if category != Category.EXCLUDES:
        return Judged(category, latest, specs, builds[1])
    newest = _newest_admitting(
        [
            v
            for v, vb in by_version.items()
            if v != latest and judge.classify(vb)[0] == Category.ADMITS
        ]
    )
    if newest is not None:
        older_builds = by_version[newest]
        return Judged(
            Category.ADMITS,
            newest,
            judge.classify(older_builds)[1],
            older_builds[1],
            latest_excludes=latest,
        )
    return Judged(category, latest, specs, builds[1])


def _newest_admitting(versions: list[str]) -> str | None:
    """The newest of `versions` in conda's order (the first read among equal ones); the first
    unreadable one when none is readable. Only the admitting versions are parsed."""
    newest, newest_version, first_unreadable = None, None, None
    for version in versions:
        try:
            parsed = Version(version)
        except InvalidVersionError:
            if first_unreadable is None:
                first_unreadable = version
            continue
        if newest_version is None or parsed > newest_version:
            newest, newest_version = version, parsed
    return newest if newest is not None else first_unreadable


def _live_packages():
    return Package.objects.filter(status__in=LIVE_STATUSES).exclude(name__in=PYTORCH_NAMES)


def list_live_packages() -> list[Package]:
    return list(_live_packages().only("pk", "name", "status", "latest_version").order_by("name"))
