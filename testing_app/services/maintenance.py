"""The maintenance policy (DESIGN.md section 5, item 8): packages that keep up stay active.

A package with no passing build for the newest supported PyTorch release becomes `at_risk`
MAINTENANCE_GRACE_DAYS after that release, then `deprecated` (no further promotions)
MAINTENANCE_DEPRECATE_AFTER_DAYS later; a release manager then removes it from the target
channel. Every step is a PackageStatusEvent and a notice to the maintainers, and at_risk and
deprecated are undone as soon as a passing build appears (the periodic job, or the finishing
job that passed); a removed package is reinstated by a release manager once one passes.
"""

import logging
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from functools import partial

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from packages_app.lint.rules import PYTORCH_NAMES
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from testing_app.adapters.anaconda import AnacondaClient
from testing_app.adapters.anaconda import AnacondaError
from testing_app.adapters.anaconda import FileSpec
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.local_channel import channel_lock
from testing_app.adapters.local_channel import channel_root
from testing_app.adapters.local_channel import reindex
from testing_app.models import Notification
from testing_app.models import PackageStatusEvent
from testing_app.selectors.maintenance import PASSING
from testing_app.selectors.maintenance import deadline_for
from testing_app.selectors.maintenance import newest_supported_release
from testing_app.selectors.maintenance import packages_depending_on_pytorch
from testing_app.selectors.maintenance import packages_with_passing_build
from testing_app.services.notices import notify_lifecycle
from testing_app.services.promotion_backends import ANACONDA
from testing_app.services.promotion_backends import anaconda_client
from testing_app.services.promotion_backends import anaconda_owner
from testing_app.services.promotion_backends import backend_name

logger = logging.getLogger(__name__)

Status = Package.Status
Kind = Notification.Kind
RESTORABLE = (Status.AT_RISK, Status.DEPRECATED)
REMOVAL_QUEUE = "promote"
# RQ entry points are enqueued by dotted name: jobs.py imports the services, never the reverse.
REMOVAL_FUNCTION = "testing_app.jobs.rq_remove_from_target"


@dataclass
class MaintenanceReport:
    release: str = ""
    at_risk: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    reinstated: list[str] = field(default_factory=list)


@transaction.atomic
def apply_maintenance_policy() -> MaintenanceReport:
    """One pass of the policy over every package; idempotent (the periodic job runs it)."""
    report = MaintenanceReport()
    release = newest_supported_release()
    if release is None:
        return report
    report.release = release.version
    now = timezone.now()
    candidates = list(
        Package.objects.select_for_update()
        .filter(status__in=[Status.ACTIVE, *RESTORABLE])
        .exclude(name__in=PYTORCH_NAMES)
        .order_by("name")
    )
    passing = packages_with_passing_build(release, [p.pk for p in candidates])
    measured = packages_depending_on_pytorch([p.pk for p in candidates])
    grace_over = now.date() >= release.released_on + timedelta(days=settings.MAINTENANCE_GRACE_DAYS)
    deprecate_after = timedelta(days=settings.MAINTENANCE_DEPRECATE_AFTER_DAYS)
    for package in candidates:
        if package.pk in passing:
            if package.status in RESTORABLE:
                _reinstate(package, release=release, now=now)
                report.reinstated.append(package.name)
        elif package.pk not in measured:
            continue  # no PyTorch dependency: no PyTorch result to lack (rule 0 on the page)
        elif package.status == Status.ACTIVE and grace_over:
            _mark_at_risk(package, release=release, now=now)
            report.at_risk.append(package.name)
        elif package.status == Status.AT_RISK and _since(package, now) >= deprecate_after:
            _deprecate(package, release=release, now=now)
            report.deprecated.append(package.name)
    return report


def _since(package: Package, now) -> timedelta:
    return now - (package.status_changed_at or now)


def _move(package, *, to, reason, release=None, by=None, now=None) -> PackageStatusEvent:
    now = now or timezone.now()
    event = PackageStatusEvent.objects.create(
        package=package,
        from_status=package.status,
        to_status=to,
        reason=reason,
        torch_release=release,
        by=by,
        created_at=now,
    )
    package.status, package.status_changed_at = to, now
    package.save(update_fields=["status", "status_changed_at", "updated_at"])
    return event


def _mark_at_risk(package, *, release, now):
    event = _move(
        package,
        to=Status.AT_RISK,
        reason=f"No passing build for PyTorch {release.version} "
        f"{settings.MAINTENANCE_GRACE_DAYS} days after its release ({release.released_on}).",
        release=release,
        now=now,
    )
    notify_lifecycle(
        event=event,
        package=package,
        kind=Kind.AT_RISK,
        detail=deadline_for(package) + " Publish a build that passes with PyTorch "
        f"{release.version} and it becomes active again by itself.",
    )


def _deprecate(package, *, release, now):
    days = settings.MAINTENANCE_DEPRECATE_AFTER_DAYS
    event = _move(
        package,
        to=Status.DEPRECATED,
        reason=f"Still no passing build for PyTorch {release.version} after {days} days at risk.",
        release=release,
        now=now,
    )
    notify_lifecycle(
        event=event,
        package=package,
        kind=Kind.DEPRECATED,
        detail="Its builds are no longer promoted. " + deadline_for(package) + " A passing "
        "build still makes it active again by itself.",
    )


def _reinstate(package, *, release, now=None, by=None):
    event = _move(
        package,
        to=Status.ACTIVE,
        reason=f"A build passes with PyTorch {release.version}.",
        release=release,
        by=by,
        now=now,
    )
    notify_lifecycle(
        event=event, package=package, kind=Kind.REINSTATED, detail="Thank you for keeping it up."
    )
    return event


def reinstate_if_passing(*, job) -> bool:
    """Called when a job finished: if it passed, an at-risk or deprecated package with a passing
    build for the newest supported release is active again at once (not at the next periodic
    run). The cheap checks come first; most finished jobs cost one query here."""
    if job.verdict not in PASSING:
        return False
    package = (
        Package.objects.select_for_update()
        .filter(builds__pk=job.build_id, status__in=RESTORABLE)
        .first()
    )
    release = newest_supported_release() if package else None
    if package is None or release is None:
        return False
    if package.pk not in packages_with_passing_build(release, [package.pk]):
        return False
    _reinstate(package, release=release)
    return True


@transaction.atomic
def remove_package(*, package: Package, by, reason: str) -> Package:
    """A release manager removes a deprecated package; a `promote` job then takes its files out
    of the target channel (remove_from_target) and records the outcome on the event."""
    package = Package.objects.select_for_update().get(pk=package.pk)
    if package.status != Status.DEPRECATED:
        raise ValidationError(
            f"{package.name} is {package.get_status_display().lower()}; only a deprecated "
            "package can be removed."
        )
    if not reason.strip():
        raise ValidationError({"reason": "Say why, for the maintainers and the audit."})
    event = _move(package, to=Status.REMOVED, reason=reason.strip(), by=by)
    notify_lifecycle(
        event=event,
        package=package,
        kind=Kind.REMOVAL,
        detail="Its builds are taken out of the target channel. Once a build passes with the "
        "newest supported PyTorch, ask a release manager to reinstate it.",
    )
    transaction.on_commit(partial(enqueue_removal, event.pk))
    return package


def enqueue_removal(event_id: int) -> None:
    # The promote queue: re-indexing runs rattler, which must not run in the web process.
    django_rq.get_queue(REMOVAL_QUEUE).enqueue(
        REMOVAL_FUNCTION, event_id, result_ttl=3600, failure_ttl=7 * 24 * 3600
    )


def remove_from_target(*, event_id: int, client: AnacondaClient | None = None) -> int:
    """Take a removed package's promoted files out of the target channel; the builds become
    `withdrawn` and the outcome is appended to the removal event. Idempotent.

    The backend is chosen as promotions choose theirs (PROMOTION_BACKEND, or the target's URL):
    a file:// target is changed in place under the local channel's lock and re-indexed; on
    anaconda.org each file is taken off the target label (a file already off it counts as
    done). A failure is recorded on the event and raised, so the job shows it too.
    """
    event = PackageStatusEvent.objects.select_related("package").get(pk=event_id)
    builds = list(
        Build.objects.filter(
            package=event.package,
            channel__role=Channel.Role.TARGET,
            state=Build.State.PROMOTED,
        ).select_related("channel")
    )
    details: list[str] = []
    try:
        for channel, files in _files_by_channel(builds).items():
            if backend_name(channel) == ANACONDA:
                _remove_from_label(channel, files, client=client, done=details)
            else:
                _delete_and_reindex(channel, files)
    except (LocalChannelError, AnacondaError, ValidationError) as exc:
        reason = f"{exc.kind}: {exc}" if isinstance(exc, AnacondaError) else _message(exc)
        # What was done before the failure is said too: a re-run finds those files gone (done).
        text = "\n".join([f"Removal from the target channel failed: {reason}", *details])
        _append_to_event(event_id, text)
        raise
    Build.objects.filter(pk__in=[b.pk for b in builds]).update(
        state=Build.State.WITHDRAWN, withdrawn_at=timezone.now()
    )
    summary = f"{len(builds)} file(s) removed from the target channel."
    _append_to_event(event_id, "\n".join([summary, *details]))
    return len(builds)


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def _files_by_channel(builds: list[Build]) -> dict:
    by_channel: dict = {}
    for build in builds:
        by_channel.setdefault(build.channel, []).append(build)
    return by_channel


def _remove_from_label(
    channel: Channel, builds: list[Build], *, client: AnacondaClient | None, done: list[str]
) -> None:
    owner, label = anaconda_owner(channel), channel.label or "main"
    client = client or anaconda_client()
    for build in builds:
        spec = FileSpec(owner, build.name, build.version, f"{build.subdir}/{build.filename}")
        done.append(client.remove_label(spec=spec, label=label).detail)


def _delete_and_reindex(channel: Channel, builds: list[Build]) -> None:
    root = channel_root(channel.base_url)
    with channel_lock(root):
        for build in builds:
            (root / build.subdir / build.filename).unlink(missing_ok=True)
    # Re-indexed right after (under the same lock, taken again): readers may see the old index
    # name a file for that moment; conda then reports it missing rather than installing it.
    reindex(root, subdirs={b.subdir for b in builds})


def _append_to_event(event_id: int, text: str) -> None:
    event = PackageStatusEvent.objects.get(pk=event_id)
    if text not in event.reason:
        PackageStatusEvent.objects.filter(pk=event_id).update(reason=f"{event.reason}\n{text}")


@transaction.atomic
def reinstate_package(*, package: Package, by) -> Package:
    """A release manager brings back a removed (or deprecated) package that passes again."""
    package = Package.objects.select_for_update().get(pk=package.pk)
    if package.status not in (Status.REMOVED, *RESTORABLE):
        raise ValidationError(f"{package.name} is {package.get_status_display().lower()}.")
    release = newest_supported_release()
    if release is None or package.pk not in packages_with_passing_build(release, [package.pk]):
        version = release.version if release else "the newest supported release"
        raise ValidationError(
            f"{package.name} has no passing build for PyTorch {version} yet; reinstating needs one."
        )
    _reinstate(package, release=release, by=by)
    return package
