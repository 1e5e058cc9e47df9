"""Registering a PyTorch release: record its impact on every live package, tell the maintainers
whose bounds exclude it, and start the release wave."""

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
from testing_app.selectors.releases import attach_maintainers
from testing_app.selectors.releases import get_release_impact
from testing_app.services.notices import notify_bump_needed
from testing_app.services.planning import PlanningReport
from testing_app.services.planning import plan_release_wave

logger = logging.getLogger(__name__)
Category = ReleaseImpact.Category


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


@dataclass(frozen=True)
class Registration:
    release: TorchRelease
    impacts: list[ReleaseImpact]
    # The planner's release wave: its run and what it queued.
    wave: PlanningReport


@transaction.atomic
def register_torch_release(*, data: ReleaseInput, registered_by=None) -> Registration:
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
    impacts = record_release_impact(release=release)
    wave = start_release_wave(release=release, requested_by=registered_by)
    logger.info("PyTorch %s registered", release.version)
    return Registration(release=release, impacts=impacts, wave=wave)


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
    excluded = attach_maintainers([i for i in impacts if i.category == Category.EXCLUDES])
    notify_bump_needed(release=release, impacts=excluded)
    return rows


def start_release_wave(*, release: TorchRelease, requested_by=None) -> PlanningReport:
    """Plan every live package against the release: the planner's release wave (cells its
    constraints exclude are written not_applicable; install checks are queued after commit)."""
    return plan_release_wave(release=release, requested_by=requested_by)
