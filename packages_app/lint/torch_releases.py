"""Which registered PyTorch releases a build's own constraints allow: the one place that rule
lives (package pages, the installability plan and the promotion gate's cell policy use it).

Pure: a build and the releases come in (model instances the caller loaded); no query here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rattler import MatchSpec
from rattler import Version
from rattler import VersionSpec
from rattler.exceptions import InvalidMatchSpecError
from rattler.exceptions import InvalidVersionSpecError

from packages_app.lint.rules import PYTORCH_NAMES

if TYPE_CHECKING:
    from packages_app.models import Build
    from packages_app.models import TorchRelease


def readable_spec(spec: str) -> MatchSpec | None:
    """The spec as py-rattler reads it, or None when it cannot (real repodata holds such specs,
    `fsspec[http] >2021.06.0`): pages skip it, and the build's lint shows it as an error."""
    try:
        return MatchSpec(spec)
    except (InvalidMatchSpecError, InvalidVersionSpecError):
        return None


def _pytorch_version_specs(build: Build) -> list[VersionSpec]:
    """Version constraints a build puts on PyTorch, from its depends and constrains (specs
    py-rattler cannot read are left out: the lint reports them)."""
    specs = []
    for spec in [*build.depends, *build.constrains]:
        match_spec = readable_spec(spec)
        if match_spec is None or match_spec.name is None:
            continue
        if match_spec.name.normalized not in PYTORCH_NAMES:
            continue
        if match_spec.version is not None:
            specs.append(VersionSpec(str(match_spec.version)))
    return specs


def admitted_torch_releases(build: Build, releases: list[TorchRelease]) -> list[TorchRelease]:
    """The registered PyTorch releases that a build's own constraints allow (py-rattler specs).

    A build of PyTorch itself admits exactly its own version. A build with no constraint on
    PyTorch admits every release (it is then tested against all of them).
    """
    if build.name in PYTORCH_NAMES:
        own = Version(build.version)
        return [r for r in releases if Version(r.version) == own]
    specs = _pytorch_version_specs(build)
    return [r for r in releases if all(s.matches(Version(r.version)) for s in specs)]
