"""Pinned re-tests of dependents: which dependents a new upstream build is re-tested with, and
against which PyTorch releases. Pure, like the planner it feeds (planner.Planner.expand).

Every new upstream build is gated on its dependents, PyTorch's own builds included: the latest
builds of each registered dependent are re-tested with the new build pinned. A PyTorch build is
re-tested only in the cells of the release it is (a job installs `pytorch ==<release>`, so a
pinned pytorch 2.6.0 fits the 2.6.0 cells and no other); with no such release registered its
dependents cannot be re-tested, and the plan says so. Builds staged together (a coordinated
set: pytorch with torchvision and torchaudio) are re-tested with each other too, so that the
set's own members are never the re-tests the gate waits for.
"""

from collections.abc import Sequence

from rattler import Version
from rattler.exceptions import InvalidVersionError

from testing_app.planner.evidence import PYTORCH_NAMES
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.types import Catalog
from testing_app.planner.types import PlanOptions
from testing_app.planner.types import ReleaseAxes
from testing_app.planner.types import Target


def release_of(upstream: CatalogRecord, releases: Sequence[ReleaseAxes]) -> tuple[int, ...]:
    """The releases whose version is this PyTorch build's version."""
    try:
        version = Version(upstream.version)
        return tuple(r.id for r in releases if Version(r.version) == version)
    except InvalidVersionError:
        return ()


def pinned_dependent_targets(
    catalog: Catalog,
    options: PlanOptions,
    builds: Sequence[CatalogRecord],
    releases: Sequence[ReleaseAxes],
    reverse_closure,
) -> tuple[list[Target], list[tuple[int, str]]]:
    """(targets, unplannable): each dependent's latest builds with each new build pinned."""
    targets: list[Target] = []
    unplannable: list[tuple[int, str]] = []
    for upstream in builds:
        release_ids: tuple[int, ...] = ()
        if upstream.name in PYTORCH_NAMES:
            release_ids = release_of(upstream, releases)
            depth = 1  # every package depends on PyTorch: its direct dependents only
        elif upstream.name in catalog.abi_coupled:
            depth = options.abi_revdep_depth
        else:
            depth = options.revdep_depth
        closure = reverse_closure(catalog.dependents, upstream.name, depth=depth)
        dependents = [
            build
            for name in sorted(closure)
            for build in catalog.latest_builds.get(name, ())
            if build.id != upstream.id
        ]
        if upstream.name in PYTORCH_NAMES and dependents and not release_ids:
            unplannable.append(
                (
                    upstream.id,
                    f"no PyTorch release {upstream.version} is registered: its dependents "
                    "cannot be re-tested with it until it is",
                )
            )
            continue
        targets += [Target(build, pinned=upstream, release_ids=release_ids) for build in dependents]
    return targets, unplannable
