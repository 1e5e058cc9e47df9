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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import parse_repodata_file
from packages_app.adapters.repodata_fetch import MISSING
from packages_app.adapters.repodata_fetch import NOT_MODIFIED
from packages_app.adapters.repodata_fetch import Fetched
from packages_app.adapters.repodata_fetch import RepodataFetchError
from packages_app.adapters.repodata_fetch import cache_folder
from packages_app.adapters.repodata_fetch import fetch_repodata
from packages_app.adapters.repodata_fetch import repodata_url
from packages_app.adapters.repodata_index import RawRepodata
from packages_app.adapters.repodata_index import RecordIndex
from packages_app.adapters.repodata_index import write_records
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import SubdirRevision
from packages_app.services.catalog import import_parsed_repodata
from packages_app.services.catalog import withdraw_files
from packages_app.services.catalog import withdraw_unlisted

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
    # Records the file lists, and those parsed: all of them when the record index was missing
    # or out of date, else only the changed ones.
    listed: int = 0
    parsed: int = 0

    def line(self) -> str:
        if self.status == "imported":
            text = (
                f"{self.subdir}: {self.created} new, {self.updated} changed, "
                f"{self.withdrawn} withdrawn ({self.parsed} of {self.listed} records parsed)"
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
    *, channels: Iterable[Channel] | None = None, plan: bool = True
) -> list[ChannelSync]:
    """Sync every configured channel (or the given ones); one channel's failure stops none of
    the others."""
    if channels is None:
        channels = Channel.objects.order_by("pk")
    return [sync_channel(channel=c, plan=plan) for c in channels]


def sync_channel(*, channel: Channel, plan: bool = True) -> ChannelSync:
    """Sync one channel's subdirs (the configured ones, else SYNC_SUBDIRS where they exist)."""
    channel.refresh_from_db()  # the validators of the last sync, not of when it was loaded
    result = ChannelSync(channel=str(channel))
    explicit = bool(channel.subdirs)
    subdirs = list(channel.subdirs or settings.SYNC_SUBDIRS)
    # The next subdir downloads while this one is read and imported: rattler's download and
    # decompression run outside the GIL, on the other core, and a conda-forge-sized channel's
    # noarch takes seconds to fetch. One subdir ahead only, so at most two files are fresh at
    # once. The fetch touches no database.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="repodata-fetch") as pool:
        ahead = pool.submit(_fetch_subdir, channel, subdirs[0]) if subdirs else None
        for position, subdir in enumerate(subdirs):
            fetched = ahead.result()
            following = subdirs[position + 1] if position + 1 < len(subdirs) else None
            ahead = pool.submit(_fetch_subdir, channel, following) if following else None
            outcome = _sync_subdir(channel, subdir, fetched, plan=plan)
            if outcome.status == "missing" and explicit:
                outcome.status, outcome.message = "error", "no repodata.json for this subdir"
            result.subdirs.append(outcome)
    _record_channel_state(channel, result)
    for line in (s.line() for s in result.subdirs if s.status != "missing"):
        logger.info("sync %s: %s", channel, line)
    return result


def _fetch_subdir(channel: Channel, subdir: str) -> Fetched | RepodataFetchError:
    """The subdir's repodata (conditional on the last sync's validators), or why not."""
    try:
        return fetch_repodata(
            channel.base_url,
            subdir,
            validators=_previous_validators(channel, subdir),
            cache_root=Path(settings.REPODATA_CACHE_DIR),
            timeout_s=settings.HTTP_TIMEOUT_S,
            max_bytes=settings.REPODATA_MAX_BYTES,
        )
    except RepodataFetchError as exc:
        return exc


def _previous_validators(channel: Channel, subdir: str) -> dict:
    return dict((channel.sync_state or {}).get(subdir) or {})


def _sync_subdir(
    channel, subdir, fetched: Fetched | RepodataFetchError, *, plan: bool
) -> SubdirSync:
    if isinstance(fetched, RepodataFetchError):
        return SubdirSync(subdir, "error", str(fetched))
    previous = _previous_validators(channel, subdir)
    url = repodata_url(channel.base_url, subdir)
    cache_root = Path(settings.REPODATA_CACHE_DIR)
    if fetched.status == MISSING:
        return SubdirSync(subdir, "missing")
    if fetched.status == NOT_MODIFIED or (
        previous.get("blake2") and previous["blake2"] == fetched.validators.get("blake2")
    ):
        return SubdirSync(subdir, "unchanged")
    folder = cache_folder(cache_root, channel.base_url, subdir)
    try:
        with RawRepodata(fetched.path, label=url, expected_subdir=subdir) as raw:
            if raw.subdir != subdir:
                raise RepodataError(f"{url}: says it is subdir {raw.subdir!r}")
            hashes = raw.hashes()
            seen = _revision(channel, subdir)
            index = RecordIndex.load(folder, fingerprint=_fingerprint(channel, subdir, seen))
            delta = raw.delta(index, hashes) if index is not None else None
            del index  # before the snapshot: the two indexes' names never sit in memory at once
            snapshot = raw.snapshot(hashes)
            outcome, revision = _import_and_plan(
                channel, subdir, raw, delta, seen, fetched.validators, label=url, plan=plan
            )
    except (RepodataError, ValidationError) as exc:
        return SubdirSync(subdir, "error", "; ".join(getattr(exc, "messages", [str(exc)])))
    # The revision the import committed: the index describes what the catalog now holds.
    snapshot.fingerprint = _fingerprint(channel, subdir, revision)
    snapshot.save(folder)
    return outcome


def _fingerprint(channel: Channel, subdir: str, revision: int | None = None) -> dict:
    """What the record index must still describe: the subdir's builds at this revision (the
    current one when not given). The database moves the revision on every write to them
    (SubdirRevision), so reading it costs one indexed row however large the subdir."""
    if revision is None:
        revision = _revision(channel, subdir)
    return {"channel": channel.pk, "subdir": subdir, "revision": revision}


def _revision(channel: Channel, subdir: str) -> int:
    found = SubdirRevision.objects.filter(channel=channel, subdir=subdir)
    return found.values_list("revision", flat=True).first() or 0


def _lock_revision(channel: Channel, subdir: str) -> int:
    """The subdir's revision, locked until the transaction ends: any other writer of its
    builds waits in its trigger, so between here and the commit only this transaction changes
    them, and the revision read before the commit is the one the commit leaves."""
    SubdirRevision.objects.bulk_create(
        [SubdirRevision(channel=channel, subdir=subdir)], ignore_conflicts=True
    )
    locked = SubdirRevision.objects.select_for_update().filter(channel=channel, subdir=subdir)
    return locked.values_list("revision", flat=True).get()


@transaction.atomic
def _import_and_plan(
    channel, subdir, raw, delta, seen, validators, *, label, plan
) -> tuple[SubdirSync, int]:
    """Import what changed (the record index's delta) or, without a usable index (`delta` is
    None), every record in chunks; one transaction either way, so a bad record leaves the
    catalog as it was. Returns the outcome and the subdir's revision at the commit."""
    if _lock_revision(channel, subdir) != seen:
        # Another writer changed the subdir's builds since the index was checked: the delta
        # may miss what it did, so every record is compared instead.
        delta = None
    outcome = SubdirSync(subdir, "imported", listed=raw.record_count)
    changed_files: list[str] = []
    if delta is not None:
        batches = [delta.changed] if delta.changed_count else []
    else:
        batches = raw.chunks(settings.SYNC_CHUNK_RECORDS)
    with tempfile.TemporaryDirectory(prefix="sync-") as tmp:
        for groups in batches:
            path = Path(tmp) / "repodata.json"
            write_records(path, subdir, groups)
            parsed = parse_repodata_file(path, source=label, lenient_specs=True)
            report = import_parsed_repodata(channel=channel, parsed=parsed)
            outcome.created += report.created
            outcome.updated += report.updated
            outcome.parsed += len(parsed.records)
            changed_files.extend(report.changed_files)
            _warn_unreadable(channel, subdir, parsed.records)
    if delta is not None:
        outcome.withdrawn = withdraw_files(channel=channel, subdir=subdir, filenames=delta.removed)
    else:
        outcome.withdrawn = withdraw_unlisted(
            channel=channel, subdir=subdir, is_listed=raw.is_listed
        )
    if plan and channel.role == Channel.Role.STAGING and changed_files:
        _plan_changed(channel, subdir, changed_files, outcome)
    Channel.objects.filter(pk=channel.pk).update(
        sync_state={**(Channel.objects.get(pk=channel.pk).sync_state or {}), subdir: validators}
    )
    return outcome, _revision(channel, subdir)


def _warn_unreadable(channel, subdir, records) -> None:
    for record in records:
        if record.unreadable_specs:
            logger.warning(
                "%s/%s: %s has unreadable specs %s (a lint error; it is not planned)",
                channel,
                subdir,
                record.filename,
                list(record.unreadable_specs),
            )


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
