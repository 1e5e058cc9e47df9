"""Reads for a build's excuses page: its waivers (the audit) and its installability checks."""

from django.utils import timezone

from packages_app.models import Build
from testing_app.models import InstallabilityCheck
from testing_app.models import Waiver

MAX_CHECKS = 60


def list_build_waivers(build: Build) -> list[Waiver]:
    """Every waiver of the build, newest first, valid or not: nothing is ever deleted."""
    now = timezone.now()
    waivers = list(
        Waiver.objects.filter(build=build).select_related(
            "torch_release", "variant", "platform", "created_by", "revoked_by"
        )
    )
    for waiver in waivers:
        waiver.is_valid = waiver.revoked_at is None and (
            waiver.expires_at is None or waiver.expires_at > now
        )
    return waivers


def get_build_checks(build: Build) -> list[InstallabilityCheck]:
    """The build's own installability checks, newest first (solver output included)."""
    return list(
        InstallabilityCheck.objects.filter(subject_key=f"build:{build.pk}")
        .select_related("requested_by")
        .order_by("-id")[:MAX_CHECKS]
    )
