"""After every item of a promotion landed: re-sync the target channel, tell the maintainers,
and check that what users install together still installs from the target.

anaconda.org indexes a copied file asynchronously: its label's repodata lists the file some
time after the copy was answered. An anaconda.org promotion therefore first polls the target
label's repodata (bounded) until every promoted file is listed; reading it earlier would miss
the new files and mark builds withdrawn, and solve the install sets without them. When the
wait times out, the re-sync and the install-set checks are skipped and say so.

Each step records {"step", "ok", "detail"} on the promotion; a step that fails is recorded and
does not undo the promotion (the files are in the target either way).
"""

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.utils import timezone

from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import read_repodata
from packages_app.models import Build
from packages_app.models import TorchRelease
from packages_app.services.catalog import import_repodata
from testing_app.gate.types import plural
from testing_app.models import InstallabilityCheck
from testing_app.models import Notification
from testing_app.models import Promotion
from testing_app.selectors.installability_plan import install_sets
from testing_app.selectors.installability_plan import missing_release_build
from testing_app.selectors.installability_plan import pytorch_versions_by_subdir
from testing_app.selectors.installability_plan import release_set_specs
from testing_app.selectors.installability_plan import set_label
from testing_app.services.installability import new_check
from testing_app.services.installability import solve_check
from testing_app.services.installability import solver_channels
from testing_app.services.notifications import Notice
from testing_app.services.notifications import notify

logger = logging.getLogger(__name__)


INDEX_STEP = "wait for the target's index"
RESYNC_STEP = "re-sync the target channel"
INSTALL_SETS_STEP = "check install sets"


def run_followups(
    *, promotion: Promotion, solver: Callable, sleep: Callable[[float], None] = time.sleep
) -> list[dict]:
    items = list(promotion.items.select_related("build__package").order_by("pk"))
    builds = [item.build for item in items]
    steps = []
    indexed = True
    if promotion.backend == Promotion.Backend.ANACONDA:
        steps.append(_step(INDEX_STEP, lambda: wait_for_index(promotion, builds, sleep=sleep)))
        indexed = steps[-1]["ok"]
    skipped = {
        "ok": False,
        "detail": "skipped: the target's index does not list the promoted files yet; "
        "re-sync the target channel once it does",
    }
    if indexed:
        steps.append(_step(RESYNC_STEP, lambda: resync_target(promotion, builds)))
    else:
        steps.append({"step": RESYNC_STEP, **skipped})
    steps.append(_step("notify maintainers", lambda: notify_maintainers(promotion, builds)))
    if indexed:
        steps.append(_step(INSTALL_SETS_STEP, lambda: check_install_sets(promotion, solver)))
    else:
        steps.append({"step": INSTALL_SETS_STEP, **skipped})
    Promotion.objects.filter(pk=promotion.pk).update(followups=steps)
    return steps


def wait_for_index(
    promotion: Promotion, builds: list[Build], *, sleep: Callable[[float], None]
) -> tuple[bool, str]:
    """Read the target's repodata of each subdir written to, every PROMOTION_INDEX_POLL_S,
    until it lists every promoted file; at most PROMOTION_INDEX_WAIT_S (counted in polls, so
    a slow download does not stretch it beyond one more poll)."""
    target = promotion.target_channel
    wanted: dict[str, set[str]] = defaultdict(set)
    for build in builds:
        wanted[build.subdir].add(build.filename)
    poll_s, wait_s = settings.PROMOTION_INDEX_POLL_S, settings.PROMOTION_INDEX_WAIT_S
    waits = math.ceil(wait_s / poll_s) if poll_s > 0 else 0
    missing, last_error = [], ""
    for waited in range(waits + 1):
        missing, last_error = _not_yet_indexed(target, wanted)
        if not missing:
            return True, (
                f"{plural(len(builds), 'promoted file')} listed by {target} "
                f"after {plural(waited, 'wait')} of {poll_s:g} s"
            )
        if waited < waits:
            sleep(poll_s)
    more = f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""
    detail = (
        f"timed out: after {wait_s:g} s the repodata of {target} still does not list "
        f"{', '.join(missing[:10])}{more}"
    )
    return False, detail + (f"; last read failed: {last_error}" if last_error else "")


def _not_yet_indexed(target, wanted: dict[str, set[str]]) -> tuple[list[str], str]:
    missing, error = [], ""
    for subdir, filenames in sorted(wanted.items()):
        try:
            parsed = read_repodata(
                f"{target.base_url}/{subdir}/repodata.json",
                timeout_s=settings.HTTP_TIMEOUT_S,
                max_bytes=settings.REPODATA_PARSE_MAX_BYTES,
                lenient_specs=True,
            )
            listed = {record.filename for record in parsed.records}
        except RepodataError as exc:
            listed, error = set(), str(exc)
        missing += [f"{subdir}/{name}" for name in sorted(filenames - listed)]
    return missing, error


def _step(name: str, action: Callable[[], tuple]) -> dict:
    """Run one step; an action may return (ok, detail) or (ok, detail, extra fields)."""
    extra: dict = {}
    try:
        ok, detail, *rest = action()
        extra = rest[0] if rest else {}
    except (RepodataError, requests.RequestException, OSError, ValidationError) as exc:
        ok, detail = False, str(exc)
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the promotion, the copy stands
        logger.exception("promotion follow-up %r crashed", name)
        ok, detail = False, f"crashed: {exc!r}"
    return {"step": name, "ok": ok, "detail": detail[:2000], **extra}


def resync_target(promotion: Promotion, builds: list[Build]) -> tuple[bool, str]:
    """Read the target's repodata of every subdir the promotion wrote to, so the catalog shows
    the promoted builds in the target; they are marked promoted there."""
    target = promotion.target_channel
    subdirs = sorted({b.subdir for b in builds} | {"noarch"})
    created = 0
    for subdir in subdirs:
        report = import_repodata(
            channel=target,
            source=f"{target.base_url}/{subdir}/repodata.json",
            withdraw_missing=True,
        )
        created += report.created
    Build.objects.filter(channel=target, subdir__in=subdirs, state=Build.State.STAGED).update(
        state=Build.State.PROMOTED, updated_at=timezone.now()
    )
    now = timezone.now()
    type(target).objects.filter(pk=target.pk).update(last_synced_at=now, last_sync_error="")
    return True, f"{', '.join(subdirs)} re-read, {plural(created, 'new build')} in {target}"


def notify_maintainers(promotion: Promotion, builds: list[Build]) -> tuple[bool, str]:
    """One notice per maintainer for this promotion, listing their promoted builds."""
    by_package = defaultdict(list)
    for build in builds:
        if build.package_id:
            by_package[build.package].append(build)
    told = 0
    for package, promoted in by_package.items():
        names = ", ".join(f"{b.name} {b.version}" for b in promoted)
        notice = Notice(
            kind=Notification.Kind.PROMOTION_DONE,
            root_cause_key=f"promotion:{promotion.pk}",
            subject=f"Promoted into {promotion.target_channel}: {names}",
            body=(
                f"These builds of {package.name} are now in the target channel "
                f"{promotion.target_channel} (promotion #{promotion.pk}):"
            ),
            details=tuple(f"{b.subdir}/{b.filename}" for b in promoted),
            link=promotion.get_absolute_url(),
            package=package,
            build=promoted[0],
        )
        told += len(notify(maintainers=list(package.maintainers.all()), notice=notice))
    return True, f"{plural(told, 'maintainer notice')} queued"


def check_install_sets(promotion: Promotion, solver: Callable) -> tuple[bool, str, dict]:
    """Solve every configured install set, pinned to each supported PyTorch release, on each
    platform that release ships, from the target channel as it is now; recorded as checks.
    A release whose PyTorch has no build for a platform in the channel stack cannot install
    there whatever was promoted: those sets are skipped, neutral, each with its reason."""
    target = promotion.target_channel
    channels = solver_channels(target)
    sets = install_sets()
    if not sets:
        return True, "no install set configured (INSTALL_SETS)", {}
    known = pytorch_versions_by_subdir(channels)
    checks, skipped = [], []
    for release in TorchRelease.objects.filter(supported=True).prefetch_related("platforms"):
        for platform in release.platforms.all():
            missing = missing_release_build(release.version, platform.subdir, known)
            for names in sets:
                label = f"{set_label(names)} @ pytorch {release.version}"
                if missing:
                    skipped.append({"label": label, "subdir": platform.subdir, "reason": missing})
                    continue
                check = new_check(
                    kind=InstallabilityCheck.Kind.POST,
                    key=f"promotion:{promotion.pk}",
                    builds=[],
                    target=target,
                    subdir=platform.subdir,
                    label=label,
                    specs=release_set_specs(names, release),
                    channels=channels,
                    promotion=promotion,
                    torch_release=release,
                    state=InstallabilityCheck.State.RUNNING,
                    started_at=timezone.now(),
                )
                check.save()
                solve_check(check, [], solver=solver)
                checks.append(check)
    solved = sum(1 for c in checks if c.ok)
    errors = sum(1 for c in checks if c.state == InstallabilityCheck.State.ERROR)
    detail = f"{solved} of {plural(len(checks), 'install set')} solved from {target}"
    detail += f", {errors} could not run" if errors else ""
    if skipped:
        detail += (
            f"; {plural(len(skipped), 'install set')} skipped: their PyTorch release has "
            "no build for the platform in the channel stack"
        )
    return solved == len(checks), detail, {"skipped": skipped}
