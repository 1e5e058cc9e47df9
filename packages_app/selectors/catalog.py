"""Catalog reads: counts, package lists, package detail, reverse dependencies, admitted releases.

Every selector runs a fixed number of queries whatever the catalog size.
"""

import hashlib
from collections import defaultdict
from collections import deque
from dataclasses import dataclass
from dataclasses import field
from functools import partial

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.db.models import Prefetch
from django.db.models import Q
from django.db.models import QuerySet
from rattler import Version

from packages_app.lint.torch_releases import admitted_torch_releases
from packages_app.lint.torch_releases import readable_spec
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import SubdirRevision
from packages_app.models import TorchRelease
from testing_app.models import Host

# The names under which PyTorch itself appears in conda channels.
PYTORCH_NAMES = frozenset({"pytorch", "pytorch-cpu", "pytorch-gpu", "libtorch"})
DEPENDENTS_GRAPH_CACHE_S = 3600


@dataclass(frozen=True)
class CatalogCounts:
    packages: int
    active_packages: int
    builds: int
    channels: int
    torch_releases: int
    supported_torch_releases: int
    hosts: int


def get_catalog_counts() -> CatalogCounts:
    """The headline numbers of the home page (one aggregate query per table)."""
    packages = Package.objects.aggregate(
        total=Count("pk"), active=Count("pk", filter=Q(status=Package.Status.ACTIVE))
    )
    releases = TorchRelease.objects.aggregate(
        total=Count("pk"), supported=Count("pk", filter=Q(supported=True))
    )
    return CatalogCounts(
        packages=packages["total"],
        active_packages=packages["active"],
        builds=Build.objects.exclude(state=Build.State.WITHDRAWN).count(),
        channels=Channel.objects.count(),
        torch_releases=releases["total"],
        supported_torch_releases=releases["supported"],
        hosts=Host.objects.count(),
    )


def list_packages(*, search: str = "", status: str = "") -> QuerySet[Package]:
    """Registered packages, filtered, with build counts and maintainers prefetched."""
    packages = Package.objects.all()
    if search:
        packages = packages.filter(Q(name__icontains=search) | Q(summary__icontains=search))
    if status:
        packages = packages.filter(status=status)
    return (
        packages.annotate(
            build_count=Count("builds", filter=~Q(builds__state=Build.State.WITHDRAWN))
        )
        .prefetch_related(Prefetch("maintainers", queryset=Maintainer.objects.order_by("name")))
        .order_by("name")
    )


def _dependents_graph() -> dict[str, frozenset[str]]:
    """dependency name -> names of live builds that depend on it, cached per catalog state.

    Reading every build's dependency names costs ~0.1 s at design scale (40,000 builds), so the
    graph is cached under a key that changes whenever a build is added, changed or withdrawn:
    the subdirs' revisions (SubdirRevision, moved by the database on every such write), one
    read of a table with a row per channel subdir. An aggregate over the builds themselves
    (their count and newest change) was the key before; it grows with the catalog, and a
    conda-forge-sized upstream channel makes it a scan of millions of rows on every page.
    """
    revisions = SubdirRevision.objects.order_by("channel_id", "subdir").values_list(
        "channel_id", "subdir", "revision"
    )
    state = hashlib.blake2b(repr(list(revisions)).encode(), digest_size=16).hexdigest()
    key = f"catalog:dependents-graph:{state}"
    graph = cache.get(key)
    if graph is not None:
        return graph
    dependents_of: dict[str, set[str]] = defaultdict(set)
    rows = (
        Build.objects.exclude(state=Build.State.WITHDRAWN)
        .values_list("name", "depends_names")
        .distinct()
    )
    for dependent, depends_names in rows:
        for dependency in depends_names:
            if dependency != dependent:
                dependents_of[dependency].add(dependent)
    graph = {name: frozenset(names) for name, names in dependents_of.items()}
    # Stored once the reading transaction commits: a transaction that wrote builds (a sync
    # that plans) sees its own uncommitted revisions, and were it rolled back, later commits
    # would reach the same revisions with other builds.
    transaction.on_commit(partial(cache.set, key, graph, timeout=DEPENDENTS_GRAPH_CACHE_S))
    return graph


def get_reverse_dependencies(
    *, name: str, transitive: bool = False, max_depth: int | None = None
) -> dict[str, int]:
    """Names of catalog packages that depend on `name`, mapped to their distance from it.

    Direct dependents have depth 1. With `transitive`, dependents of dependents follow, up to
    `max_depth` (unlimited when None). Two queries at most, whatever the catalog size.
    """
    dependents_of = _dependents_graph()
    limit = max_depth if transitive else 1
    depths: dict[str, int] = {}
    queue = deque([(name, 0)])
    while queue:
        current, depth = queue.popleft()
        if limit is not None and depth >= limit:
            continue
        for dependent in sorted(dependents_of.get(current, ())):
            if dependent != name and dependent not in depths:
                depths[dependent] = depth + 1
                queue.append((dependent, depth + 1))
    return depths


def depends_on_pytorch(build: Build) -> bool:
    return any(
        (ms := readable_spec(spec)) is not None
        and ms.name is not None
        and ms.name.normalized in PYTORCH_NAMES
        for spec in build.depends
    )


@dataclass
class BuildView:
    build: Build
    admitted: list[TorchRelease]
    admitted_supported: list[TorchRelease]
    pytorch_dependency: bool


@dataclass
class VersionGroup:
    """One version of a package: its builds per subdir."""

    version: str
    subdirs: list[tuple[str, list[BuildView]]] = field(default_factory=list)

    @property
    def build_count(self) -> int:
        return sum(len(views) for _, views in self.subdirs)


def list_versions(*, name: str) -> list[str]:
    """Versions of a name's live builds, newest first in conda ordering."""
    versions = (
        Build.objects.filter(name=name)
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("version", flat=True)
        .distinct()
    )
    return sorted(set(versions), key=Version, reverse=True)


@dataclass(frozen=True)
class PackageBuilds:
    """A page of a package's builds and the number of registered releases they were checked on."""

    groups: list[VersionGroup]
    release_count: int


def get_package_builds(*, name: str, versions: list[str]) -> PackageBuilds:
    """Builds of the given versions grouped by version then subdir, with admitted releases."""
    releases = sorted(TorchRelease.objects.all(), key=lambda r: Version(r.version), reverse=True)
    builds = (
        Build.objects.filter(name=name, version__in=versions)
        .exclude(state=Build.State.WITHDRAWN)
        .select_related("channel")
        .order_by("subdir", "-build_number", "build_string")
    )
    grouped: dict[str, dict[str, list[BuildView]]] = {v: defaultdict(list) for v in versions}
    for build in builds:
        admitted = admitted_torch_releases(build, releases)
        grouped[build.version][build.subdir].append(
            BuildView(
                build=build,
                admitted=admitted,
                admitted_supported=[r for r in admitted if r.supported],
                pytorch_dependency=build.name in PYTORCH_NAMES or depends_on_pytorch(build),
            )
        )
    return PackageBuilds(
        groups=[VersionGroup(version=v, subdirs=sorted(grouped[v].items())) for v in versions],
        release_count=len(releases),
    )


@dataclass(frozen=True)
class InstallCommand:
    """How users install a package: the target channel first, then the channels its
    dependencies come from, highest priority first (conda reads `-c` in that order)."""

    channels: list[str]
    command: str
    config_commands: list[str]


def get_install_command(*, name: str) -> InstallCommand | None:
    """None until the distribution has a target channel."""
    stack = list(
        Channel.objects.filter(role__in=[Channel.Role.TARGET, Channel.Role.UPSTREAM]).order_by("pk")
    )
    target = next((c for c in stack if c.role == Channel.Role.TARGET), None)
    if target is None:
        return None
    channels = [target.base_url]
    for channel in stack:
        if channel.base_url not in channels:
            channels.append(channel.base_url)
    command = " ".join(["conda install", *(f"-c {url}" for url in channels), name])
    # `conda config --add` prepends: add the lowest priority first so the target ends on top.
    config = [f"conda config --env --add channels {url}" for url in reversed(channels)]
    return InstallCommand(channels=channels, command=command, config_commands=config)
