"""Channel sync: read each channel's repodata.json when it changed, import it, plan new builds.

For every configured channel (URL + label) and subdir: a conditional GET (ETag/Last-Modified;
file size and mtime for file:// channels), then the catalog import (packages_app.services.
catalog), with builds whose files disappeared marked withdrawn. New or changed builds of
registered packages in a staging channel are planned (testing_app.services.planning) in the
same transaction as the import and the new validators, so a failed plan is retried by the next
sync instead of being lost. Upstream and target channels are kept current for planning and
install checks; testing starts from what is staged (and from PyTorch release waves).

A channel that cannot be read (unreachable, timed out, corrupted repodata) keeps its previous
data; the error is recorded on the channel (last_sync_error) and the other channels go on.
"""

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import parse_repodata_file
from packages_app.adapters.repodata_fetch import MISSING
from packages_app.adapters.repodata_fetch import NOT_MODIFIED
from packages_app.adapters.repodata_fetch import RepodataFetchError
from packages_app.adapters.repodata_fetch import fetch_repodata
from packages_app.adapters.repodata_fetch import repodata_url
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.services.catalog import import_parsed_repodata

logger = logging.getLogger(__name__)

# Packages whose new staged builds are planned.
PLANNED_STATUSES = (Package.Status.ACTIVE, Package.Status.AT_RISK)


@dataclass
class SubdirSync:
    """What syncing one subdir did."""

    subdir: str
    status: str  # unchanged | imported | missing | error
    message: str = ""
    created: int = 0
    updated: int = 0
    withdrawn: int = 0
    planned_run_id: int | None = None
    planned_jobs: int = 0

    def line(self) -> str:
        if self.status == "imported":
            text = (
                f"{self.subdir}: {self.created} new, {self.updated} changed, "
                f"{self.withdrawn} withdrawn"
            )
            if self.planned_run_id:
                text += f"; run {self.planned_run_id} ({self.planned_jobs} install checks)"
            return text
        return f"{self.subdir}: {self.status}" + (f" ({self.message})" if self.message else "")


@dataclass
class ChannelSync:
    channel: str
    subdirs: list[SubdirSync] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{s.subdir}: {s.message}" for s in self.subdirs if s.status == "error"]


def sync_channels(
    *, channels: Iterable[Channel] | None = None, plan: bool = True, session=None
) -> list[ChannelSync]:
    """Sync every configured channel (or the given ones); one channel's failure stops none of
    the others."""
    if channels is None:
        channels = Channel.objects.order_by("pk")
    return [sync_channel(channel=c, plan=plan, session=session) for c in channels]


def sync_channel(*, channel: Channel, plan: bool = True, session=None) -> ChannelSync:
    """Sync one channel's subdirs (the configured ones, else SYNC_SUBDIRS where they exist)."""
    channel.refresh_from_db()  # the validators of the last sync, not of when it was loaded
    result = ChannelSync(channel=str(channel))
    explicit = bool(channel.subdirs)
    http = session or requests.Session()
    with tempfile.TemporaryDirectory(prefix="sync-") as tmp:
        for subdir in channel.subdirs or settings.SYNC_SUBDIRS:
            outcome = _sync_subdir(channel, subdir, Path(tmp), plan=plan, session=http)
            if outcome.status == "missing" and explicit:
                outcome.status, outcome.message = "error", "no repodata.json for this subdir"
            result.subdirs.append(outcome)
    _record_channel_state(channel, result)
    for line in (s.line() for s in result.subdirs if s.status != "missing"):
        logger.info("sync %s: %s", channel, line)
    return result


def _sync_subdir(channel, subdir, directory, *, plan: bool, session) -> SubdirSync:
    validators = dict((channel.sync_state or {}).get(subdir) or {})
    url = repodata_url(channel.base_url, subdir)
    try:
        fetched = fetch_repodata(
            url,
            validators=validators,
            directory=directory,
            timeout_s=settings.HTTP_TIMEOUT_S,
            max_bytes=settings.REPODATA_MAX_BYTES,
            session=session,
        )
    except RepodataFetchError as exc:
        return SubdirSync(subdir, "error", str(exc))
    if fetched.status == NOT_MODIFIED:
        return SubdirSync(subdir, "unchanged")
    if fetched.status == MISSING:
        return SubdirSync(subdir, "missing")
    try:
        parsed = parse_repodata_file(fetched.path, source=url, lenient_specs=True)
        return _import_and_plan(channel, subdir, parsed, fetched.validators, plan=plan)
    except (RepodataError, ValidationError) as exc:
        return SubdirSync(subdir, "error", "; ".join(getattr(exc, "messages", [str(exc)])))
    finally:
        if fetched.temporary and fetched.path is not None:
            fetched.path.unlink(missing_ok=True)


@transaction.atomic
def _import_and_plan(channel, subdir, parsed, validators, *, plan: bool) -> SubdirSync:
    if parsed.subdir != subdir:
        raise RepodataError(f"{parsed.source}: says it is subdir {parsed.subdir!r}")
    report = import_parsed_repodata(channel=channel, parsed=parsed, withdraw_missing=True)
    outcome = SubdirSync(
        subdir,
        "imported",
        created=report.created,
        updated=report.updated,
        withdrawn=report.withdrawn,
    )
    for record in parsed.records:
        if record.unreadable_specs:
            logger.warning(
                "%s/%s: %s has unreadable specs %s (a lint error; it is not planned)",
                channel,
                subdir,
                record.filename,
                list(record.unreadable_specs),
            )
    if plan and channel.role == Channel.Role.STAGING and report.changed_files:
        _plan_changed(channel, subdir, report.changed_files, outcome)
    Channel.objects.filter(pk=channel.pk).update(
        sync_state={**(Channel.objects.get(pk=channel.pk).sync_state or {}), subdir: validators}
    )
    return outcome


def _plan_changed(channel, subdir, filenames, outcome: SubdirSync) -> None:
    from testing_app.services.planning import plan_new_builds

    builds = list(
        Build.objects.filter(
            channel=channel,
            subdir=subdir,
            filename__in=filenames,
            package__status__in=PLANNED_STATUSES,
        ).order_by("name", "pk")
    )
    if not builds:
        return
    names = ", ".join(sorted({b.name for b in builds}))
    report = plan_new_builds(
        builds=builds,
        detail=f"sync of {channel}/{subdir}: {len(builds)} new or changed builds ({names})",
        # A changed record (a patched `depends`) is new input for cells already decided.
        force=outcome.updated > 0,
    )
    outcome.planned_run_id, outcome.planned_jobs = report.run.pk, report.jobs


def _record_channel_state(channel: Channel, result: ChannelSync) -> None:
    errors = "\n".join(result.errors)
    Channel.objects.filter(pk=channel.pk).update(
        last_synced_at=timezone.now(), last_sync_error=errors[:5000]
    )
    if errors:
        logger.error("sync of %s: %s", channel, errors)


@transaction.atomic
def register_channel(*, name: str, url: str, role: str, label: str = "") -> Channel:
    """Create or update a channel row (the demo's sample channel, operators' scripts)."""
    channel = Channel.objects.filter(name=name, label=label).first() or Channel(
        name=name, label=label
    )
    channel.url, channel.role = url, role
    channel.full_clean()
    channel.save()
    return channel
