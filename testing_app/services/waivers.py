"""Waivers: a release manager accepts a failing cell, or a failing gate policy, of one build.

A waiver always has a reason, may expire, and is never deleted: revoking it records who and
when, so the Waiver table is the audit. A cell waiver is also shown on the cell itself: the
cell's verdict becomes `waived` (its failure kept as `previous_verdict`, "before: failed") until
the waiver is revoked or expires, when the failure comes back. The gate never trusts the
`waived` verdict alone; it reads the waivers (gate/policies.py).
"""

import logging
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models import Q
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import TorchRelease
from testing_app.gate.types import WAIVABLE_POLICIES
from testing_app.models import CellResult
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models import Waiver
from testing_app.models.verdicts import Verdict

logger = logging.getLogger(__name__)

# Cell verdicts a waiver may accept: the package's failures, infrastructure ones, no tests.
WAIVABLE_VERDICTS = (
    Verdict.FAILED,
    Verdict.UNINSTALLABLE,
    Verdict.TIMEOUT,
    Verdict.ERROR,
    Verdict.NO_TESTS,
)
WAIVE_PERMISSION = "testing_app.add_waiver"
REVOKE_PERMISSION = "testing_app.change_waiver"


def valid_waivers(*, now: datetime | None = None):
    now = now or timezone.now()
    return Waiver.objects.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def _cell_filter(waiver: Waiver) -> dict:
    return {
        "build_id": waiver.build_id,
        "torch_release_id": waiver.torch_release_id,
        "variant_id": waiver.variant_id,
        "platform_id": waiver.platform_id,
    }


@transaction.atomic
def grant_waiver(
    *,
    build: Build,
    created_by,
    reason: str,
    policy: str = "",
    torch_release: TorchRelease | None = None,
    variant: Variant | None = None,
    platform: Platform | None = None,
    expires_at: datetime | None = None,
) -> Waiver:
    """Waive one failing cell (torch_release + variant + platform) or one gate policy of
    `build`. Refused without a reason, for a policy nobody may waive, for a cell that is not
    failing, for an expiry in the past, and while the same thing is already waived."""
    if not created_by.has_perm(WAIVE_PERMISSION):
        raise PermissionDenied("Only release managers may waive.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this failure is acceptable."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    is_cell = any(x is not None for x in (torch_release, variant, platform))
    if is_cell == bool(policy):
        raise ValidationError("Waive either one cell or one policy.")
    if policy and policy not in WAIVABLE_POLICIES:
        raise ValidationError({"policy": f"The {policy!r} policy cannot be waived."})
    waiver = Waiver(
        build=Build.objects.select_for_update().get(pk=build.pk),
        policy=policy,
        torch_release=torch_release,
        variant=variant,
        platform=platform,
        reason=reason,
        created_by=created_by,
        expires_at=expires_at,
    )
    waiver.full_clean()
    if is_cell:
        _check_cell_fails(waiver)
    existing = valid_waivers().filter(
        build_id=build.pk,
        policy=policy,
        torch_release=torch_release,
        variant=variant,
        platform=platform,
    )
    if existing.exists():
        raise ValidationError(
            f"Already waived (waiver #{existing.first().pk}); revoke it first to change it."
        )
    waiver.save()
    if is_cell:
        CellResult.objects.filter(**_cell_filter(waiver), verdict__in=WAIVABLE_VERDICTS).update(
            previous_verdict=F("verdict"), verdict=Verdict.WAIVED, updated_at=timezone.now()
        )
    logger.info("waiver %s granted by %s on build %s", waiver.pk, created_by, build.pk)
    return waiver


def _check_cell_fails(waiver: Waiver) -> None:
    verdicts = set(
        CellResult.objects.filter(**_cell_filter(waiver)).values_list("verdict", flat=True)
    )
    if not verdicts:
        raise ValidationError("This build has no result on that cell to waive.")
    if not verdicts & set(WAIVABLE_VERDICTS):
        shown = ", ".join(sorted(verdicts))
        raise ValidationError(f"That cell is not failing ({shown}); only failures are waived.")


@transaction.atomic
def revoke_waiver(*, waiver: Waiver, revoked_by) -> Waiver:
    """End a waiver now. A cell it covered shows its failure again (unless another waiver on
    the same cell is still valid)."""
    if not revoked_by.has_perm(REVOKE_PERMISSION):
        raise PermissionDenied("Only release managers may revoke waivers.")
    now = timezone.now()
    updated = Waiver.objects.filter(pk=waiver.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=revoked_by
    )
    if not updated:
        raise ValidationError(f"Waiver #{waiver.pk} is already revoked.")
    waiver.refresh_from_db()
    if not waiver.policy:
        restore_unwaived_cells(build_ids=[waiver.build_id], now=now)
    logger.info("waiver %s revoked by %s", waiver.pk, revoked_by)
    return waiver


@transaction.atomic
def restore_unwaived_cells(*, build_ids=None, now: datetime | None = None) -> int:
    """Cells marked `waived` that no valid waiver covers any more (revoked, expired) show their
    failure again. Idempotent; the periodic sweep runs it for every build."""
    now = now or timezone.now()
    cells = CellResult.objects.select_for_update().filter(verdict=Verdict.WAIVED)
    if build_ids is not None:
        cells = cells.filter(build_id__in=build_ids)
    cells = list(cells)
    if not cells:
        return 0
    covered = set(
        valid_waivers(now=now)
        .filter(build_id__in={c.build_id for c in cells}, policy="")
        .values_list("build_id", "torch_release_id", "variant_id", "platform_id")
    )
    restored = 0
    for cell in cells:
        key = (cell.build_id, cell.torch_release_id, cell.variant_id, cell.platform_id)
        if key in covered:
            continue
        cell.verdict = cell.previous_verdict or Verdict.FAILED
        cell.previous_verdict = Verdict.WAIVED
        cell.save(update_fields=["verdict", "previous_verdict", "updated_at"])
        restored += 1
    return restored


@transaction.atomic
def reapply_cell_waivers(*, now: datetime | None = None) -> int:
    """Cells that failed again after their waiver was granted (a new job replaced the `waived`
    marking) show `waived` again while the waiver is valid."""
    now = now or timezone.now()
    marked = 0
    for waiver in valid_waivers(now=now).filter(policy=""):
        marked += CellResult.objects.filter(
            **_cell_filter(waiver), verdict__in=WAIVABLE_VERDICTS
        ).update(previous_verdict=F("verdict"), verdict=Verdict.WAIVED, updated_at=now)
    return marked


def expire_waivers() -> int:
    """The periodic sweep: expired cell waivers stop showing on their cells, and valid ones
    show again on cells a newer job failed. Returns how many cells changed."""
    restored = restore_unwaived_cells()
    reapplied = reapply_cell_waivers()
    if restored or reapplied:
        logger.info("waived cells: %d restored (expired), %d marked again", restored, reapplied)
    return restored + reapplied
