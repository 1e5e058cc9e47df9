"""Reads for the planner: the catalog snapshot it plans over, in a fixed number of queries.

`load_catalog` returns planner/types.py's Catalog (plain values, no model instances), so that the
planner stays a pure function and its benchmark can feed it generated data the same way.
"""

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import F

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import TorchRelease
from packages_app.selectors.channel_stack import distribution_stack
from testing_app.models import CellResult
from testing_app.models import PinnedCellResult
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.planner.evidence import PYTORCH
from testing_app.planner.evidence import PYTORCH_NAMES
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.evidence import Evidence
from testing_app.planner.evidence import UnreadableSpec
from testing_app.planner.evidence import group_specs
from testing_app.planner.types import Catalog
from testing_app.planner.types import ExistingCell
from testing_app.planner.types import ReleaseAxes
from testing_app.planner.types import VariantAxes

# Packages whose latest builds are tested by release waves and full runs.
TESTED_STATUSES = (Package.Status.ACTIVE, Package.Status.AT_RISK)
# A build listed in several channels is tested once, from the first of these roles.
ROLE_ORDER = (Channel.Role.STAGING, Channel.Role.TARGET, Channel.Role.UPSTREAM)
RECORD_FIELDS = (
    "pk",
    "name",
    "version",
    "build_string",
    "subdir",
    "channel_id",
    "depends",
    "constrains",
    "noarch",
    "package_id",
)


def catalog_record(values: tuple) -> CatalogRecord:
    pk, name, version, build, subdir, channel_id, depends, constrains, noarch, package_id = values
    return CatalogRecord(
        id=pk,
        name=name,
        version=version,
        build_string=build,
        subdir=subdir,
        channel_id=channel_id,
        depends=tuple(depends or ()),
        constrains=tuple(constrains or ()),
        noarch=noarch or "",
        package_id=package_id,
    )


def records_of(builds) -> list[CatalogRecord]:
    """Planner records of Build rows (a queryset, or instances)."""
    if hasattr(builds, "values_list"):
        return [catalog_record(v) for v in builds.values_list(*RECORD_FIELDS)]
    return [catalog_record(tuple(getattr(b, f) for f in RECORD_FIELDS)) for b in builds]


def release_axes(*, include: Iterable[TorchRelease] = ()) -> list[ReleaseAxes]:
    """Supported releases (plus `include`, e.g. the rc of a release wave), newest first."""
    extra = [r.pk for r in include]
    releases = (
        TorchRelease.objects.filter(supported=True) | TorchRelease.objects.filter(pk__in=extra)
    ).prefetch_related("variants", "platforms")
    return [
        ReleaseAxes(
            id=release.pk,
            version=release.version,
            variant_ids=tuple(v.pk for v in release.variants.all()),
            subdirs=tuple(p.subdir for p in release.platforms.all()),
            pythons=tuple(release.python_versions or ()),
        )
        for release in releases.order_by("-released_on", "-version")
    ]


def variant_axes() -> dict[int, VariantAxes]:
    return {
        variant.pk: VariantAxes(
            id=variant.pk,
            name=variant.name,
            kind=variant.kind,
            select_specs={k: tuple(v) for k, v in (variant.select_specs or {}).items()},
            version=variant.accelerator_version or "",
            driver=variant.min_driver_cuda or "",
        )
        for variant in Variant.objects.all()
    }


def channel_priority() -> tuple[tuple[int, ...], dict[int, str]]:
    """Channel ids in the one stack's order (selectors/channel_stack_types.py), and every
    channel's name."""
    stack = distribution_stack()
    return stack.ids(), {c.id: c.name for c in stack.channels}


def evidence_records(variants: dict[int, VariantAxes]) -> list[CatalogRecord]:
    """Live builds of PyTorch, of every package a variant's specs name, and of the packages
    PyTorch builds depend on differently (pytorch-mutex, ...): two queries."""
    live = Build.objects.exclude(state=Build.State.WITHDRAWN)
    pytorch = records_of(live.filter(name__in=PYTORCH_NAMES))
    names = set()
    for variant in variants.values():
        for specs in variant.select_specs.values():
            try:
                names |= set(group_specs(specs))
            except UnreadableSpec:
                continue  # a variant row with a broken spec selects nothing
    names |= Evidence([r for r in pytorch if r.name == PYTORCH]).distinguishing
    names -= PYTORCH_NAMES | {""}
    return pytorch + records_of(live.filter(name__in=names))


def dependents_graph() -> dict[str, frozenset[str]]:
    """dependency name -> names of the live builds that depend on it (one query)."""
    dependents: dict[str, set[str]] = defaultdict(set)
    rows = (
        Build.objects.exclude(state=Build.State.WITHDRAWN)
        .values_list("name", "depends_names")
        .distinct()
    )
    for dependent, depends_names in rows:
        for dependency in depends_names or ():
            if dependency != dependent:
                dependents[dependency].add(dependent)
    return {name: frozenset(names) for name, names in dependents.items()}


def latest_builds(*, names: Iterable[str] | None = None) -> dict[str, list[CatalogRecord]]:
    """Active packages -> the live builds of their latest version; a file listed in several
    channels counts once, from staging before target before upstream."""
    builds = (
        Build.objects.filter(package__status__in=TESTED_STATUSES)
        .filter(version=F("package__latest_version"))
        .exclude(state=Build.State.WITHDRAWN)
    )
    if names is not None:
        builds = builds.filter(name__in=set(names))
    roles = dict(Channel.objects.values_list("pk", "role"))
    rank = {role: index for index, role in enumerate(ROLE_ORDER)}
    chosen: dict[tuple, CatalogRecord] = {}
    for record in records_of(builds.order_by("name", "subdir", "pk")):
        key = (record.name, record.subdir, record.build_string, record.version)
        current = chosen.get(key)
        if current is None or rank.get(roles.get(record.channel_id), 9) < rank.get(
            roles.get(current.channel_id), 9
        ):
            chosen[key] = record
    grouped: dict[str, list[CatalogRecord]] = defaultdict(list)
    for record in chosen.values():
        grouped[record.name].append(record)
    return dict(grouped)


CELL_KEY_FIELDS = ("build_id", "torch_release_id", "variant_id", "platform_id", "python")


def existing_cells(*, build_ids: Iterable[int]) -> dict[tuple, ExistingCell]:
    """What the cells of these builds say now, keyed by PlannedCell.identity: their own cells
    (pinned build None) and their re-tests with an upstream build pinned (two queries)."""
    ids = set(build_ids)
    existing = {
        (*key, None): ExistingCell(verdict)
        for *key, verdict in CellResult.objects.filter(build_id__in=ids).values_list(
            *CELL_KEY_FIELDS, "verdict"
        )
    }
    pinned_rows = PinnedCellResult.objects.filter(build_id__in=ids).values_list(
        *CELL_KEY_FIELDS, "pinned_build_id", "verdict"
    )
    for *key, pinned, verdict in pinned_rows:
        existing[(*key, pinned)] = ExistingCell(verdict, pinned)
    return existing


def load_catalog(
    *,
    include_releases: Iterable[TorchRelease] = (),
    with_dependents: bool = False,
    latest_of: Iterable[str] | None = None,
) -> Catalog:
    """The catalog snapshot for one planning call. `latest_of`: the packages whose latest
    builds may be planned (None: every active package); `with_dependents` loads the reverse-
    dependency graph (new-build triggers), and the latest builds of every dependent. The cells
    already decided are read later, for the builds a trigger plans (existing_cells)."""
    variants = variant_axes()
    order, names = channel_priority()
    dependents = dependents_graph() if with_dependents else {}
    latest = latest_builds(names=None if with_dependents else latest_of)
    return Catalog(
        releases=release_axes(include=include_releases),
        variants=variants,
        platforms=dict(Platform.objects.values_list("subdir", "pk")),
        evidence=evidence_records(variants),
        channel_order=order,
        channel_names=names,
        dependents=dependents,
        latest_builds=latest,
        abi_coupled=frozenset(
            Package.objects.filter(abi_coupled=True).values_list("name", flat=True)
        ),
    )
