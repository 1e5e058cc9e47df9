"""Registering a PyTorch release: record its impact on every live package, tell the maintainers
whose bounds exclude it, and start the release wave."""

import importlib.util
import logging
from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rattler import Version
from rattler.exceptions import InvalidVersionError

from packages_app.models import TorchRelease
from testing_app.models import Platform
from testing_app.models import ReleaseImpact
from testing_app.models import Variant
from testing_app.selectors.releases import get_release_impact
from testing_app.services.notices import notify_bump_needed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseInput:
    """What a release manager states about a release (the registration form's fields)."""

    version: str
    kind: str
    released_on: date | None
    supported: bool
    variants: list[Variant]
    platforms: list[Platform]
    python_versions: list[str]


@transaction.atomic
def register_torch_release(*, data: ReleaseInput, registered_by=None) -> TorchRelease:
    """Create the release, record its impact, notify "bump needed", start its wave."""
    try:
        Version(data.version)
    except InvalidVersionError as exc:
        raise ValidationError({"version": f"Not a conda version: {exc}"}) from exc
    if TorchRelease.objects.filter(version=data.version).exists():
        raise ValidationError({"version": f"PyTorch {data.version} is already registered."})
    release = TorchRelease(
        version=data.version,
        kind=data.kind,
        released_on=data.released_on,
        supported=data.supported,
        python_versions=data.python_versions,
        source=f"registered by {getattr(registered_by, 'username', 'a service')}",
    )
    release.full_clean()
    release.save()
    release.variants.set(data.variants)
    release.platforms.set(data.platforms)
    record_release_impact(release=release)
    start_release_wave(release=release, requested_by=registered_by)
    logger.info("PyTorch %s registered", release.version)
    return release


@transaction.atomic
def record_release_impact(*, release: TorchRelease) -> list[ReleaseImpact]:
    """Store what the release means for each live package now (replacing an earlier record)
    and tell the maintainers of packages whose bounds exclude it, once per maintainer."""
    now = timezone.now()
    impacts = get_release_impact(release)
    rows = ReleaseImpact.objects.bulk_create(
        [
            ReleaseImpact(
                torch_release=release,
                package=impact.package,
                category=impact.category,
                version=impact.version[:64],
                specs=impact.specs,
                computed_at=now,
            )
            for impact in impacts
        ],
        update_conflicts=True,
        unique_fields=["torch_release", "package"],
        update_fields=["category", "version", "specs", "computed_at"],
    )
    by_package = {i.package.pk: i.package for i in impacts}
    for row in rows:
        row.package = by_package[row.package_id]  # with its prefetched maintainers
    notify_bump_needed(
        release=release, impacts=[r for r in rows if r.category == ReleaseImpact.Category.EXCLUDES]
    )
    return rows


def start_release_wave(*, release: TorchRelease, requested_by=None):
    """Plan every live package against the release: the planning service's release wave.

    The planner is built in parallel (issue 5); until its module exists the release is
    registered with its impact and the wave is started from the planner's own entry point.
    """
    if importlib.util.find_spec("testing_app.services.planning") is None:
        logger.warning("PyTorch %s: no planner installed, release wave not started", release)
        return None
    from testing_app.services import planning

    return planning.plan_release_wave(release=release, requested_by=requested_by)
