"""Catalog writes: import repodata into Builds, keep package links and latest versions current."""

import logging
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace

from django.conf import settings
from django.db import transaction
from django.db.models import CharField
from django.utils import timezone
from rattler import Version

from packages_app.adapters.repodata import ParsedRepodata
from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import RepodataRecord
from packages_app.adapters.repodata import read_repodata
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
LOOKUP_BATCH = 5000
# Fields a re-import may change (channels patch records after upload: depends, license...).
RECORD_FIELDS = (
    "name",
    "version",
    "build_string",
    "build_number",
    "depends",
    "constrains",
    "depends_names",
    "track_features",
    "noarch",
    "license",
    "license_family",
    "md5",
    "sha256",
    "size",
    "timestamp",
)


@dataclass(frozen=True)
class ImportReport:
    """What one repodata import changed."""

    channel: str
    subdir: str
    records: int
    created: int
    updated: int
    unchanged: int
    withdrawn: int
    # File names of the builds this import created or changed (a channel sync plans them).
    changed_files: tuple[str, ...] = ()
    # (file name, specs py-rattler cannot read) of builds imported as they are but unplannable:
    # the planner skips them with that reason and their lint shows it as an error.
    unplannable: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def wrote_anything(self) -> bool:
        return bool(self.created or self.updated or self.withdrawn)


def import_repodata(
    *,
    channel: Channel,
    source: str,
    withdraw_missing: bool = False,
    progress: Callable[[int, int], None] | None = None,
    lenient_specs: bool = False,
) -> ImportReport:
    """Upsert the Builds of one repodata.json into `channel`, in bulk and idempotently.

    A spec py-rattler cannot read (real conda-forge noarch: `fsspec[http] >2021.06.0`) refuses
    the whole file, unless `lenient_specs`: then every record is imported, and the builds with
    such specs are listed in the report's `unplannable` (the planner skips them, saying why).

    The file is read and validated completely before anything is written, and the writes run in
    one transaction, so a bad file leaves the catalog as it was. Records whose digest did not
    change are not written at all. With `withdraw_missing`, builds of this channel and subdir
    that the file no longer lists are marked withdrawn (what a channel sync wants).
    `progress(advanced, total)` is called as records are handled.
    """
    parsed = read_repodata(
        source,
        timeout_s=settings.HTTP_TIMEOUT_S,
        max_bytes=settings.REPODATA_PARSE_MAX_BYTES,
        lenient_specs=lenient_specs,
    )
    return import_parsed_repodata(
        channel=channel, parsed=parsed, withdraw_missing=withdraw_missing, progress=progress
    )


def import_parsed_repodata(
    *,
    channel: Channel,
    parsed: ParsedRepodata,
    withdraw_missing: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """import_repodata for a file that is already read and validated (channel sync)."""
    _check_column_lengths(parsed.records, source=parsed.source)
    with transaction.atomic():
        report = _upsert_records(
            channel=channel,
            subdir=parsed.subdir,
            records=parsed.records,
            withdraw_missing=withdraw_missing,
            progress=progress,
        )
    logger.info(
        "imported %s into %s/%s: %d created, %d updated, %d unchanged, %d withdrawn",
        parsed.source,
        channel,
        parsed.subdir,
        report.created,
        report.updated,
        report.unchanged,
        report.withdrawn,
    )
    unplannable = tuple(
        (record.filename, record.unreadable_specs)
        for record in parsed.records
        if record.unreadable_specs
    )
    for filename, specs in unplannable:
        logger.warning("%s: imported, not plannable: unreadable spec(s) %s", filename, specs)
    return replace(report, unplannable=unplannable)


def _upsert_records(
    *,
    channel: Channel,
    subdir: str,
    records: list[RepodataRecord],
    withdraw_missing: bool,
    progress: Callable[[int, int], None] | None,
) -> ImportReport:
    # Only the rows of these records: a chunk of a 10^6-record subdir reads its own rows, not
    # the whole subdir's.
    existing = {}
    for names in _batches(sorted({r.filename for r in records}), LOOKUP_BATCH):
        existing.update(
            (filename, (pk, digest, state))
            for pk, filename, digest, state in Build.objects.filter(
                channel=channel, subdir=subdir, filename__in=names
            ).values_list("pk", "filename", "record_digest", "state")
        )
    package_ids = dict(
        Package.objects.filter(name__in={r.name for r in records}).values_list("name", "pk")
    )
    to_create: list[Build] = []
    to_update: list[Build] = []
    for record in records:
        digest = record.digest
        current = existing.get(record.filename)
        if current is None:
            to_create.append(
                _build_from_record(
                    record, channel=channel, subdir=subdir, digest=digest, package_ids=package_ids
                )
            )
        elif current[1] != digest or current[2] == Build.State.WITHDRAWN:
            build = _build_from_record(
                record, channel=channel, subdir=subdir, digest=digest, package_ids=package_ids
            )
            build.pk = current[0]
            build.state = Build.State.STAGED if current[2] == Build.State.WITHDRAWN else current[2]
            to_update.append(build)
    now = timezone.now()
    for batch in _batches(to_create):
        Build.objects.bulk_create(batch)
        if progress:
            progress(len(batch), len(records))
    for batch in _batches(to_update):
        for build in batch:
            build.updated_at = now
            build.withdrawn_at = None
        Build.objects.bulk_update(
            batch,
            [*RECORD_FIELDS, "record_digest", "package", "state", "withdrawn_at", "updated_at"],
        )
        if progress:
            progress(len(batch), len(records))
    if progress:
        progress(len(records) - len(to_create) - len(to_update), len(records))

    withdrawn, withdrawn_names = 0, set()
    if withdraw_missing:
        listed = {r.filename for r in records}
        withdrawn, withdrawn_names = _withdraw_unlisted(channel, subdir, listed.__contains__, now)
    refresh_latest_versions(
        names={b.name for b in to_create} | {b.name for b in to_update} | withdrawn_names
    )
    return ImportReport(
        channel=str(channel),
        subdir=subdir,
        records=len(records),
        created=len(to_create),
        updated=len(to_update),
        unchanged=len(records) - len(to_create) - len(to_update),
        withdrawn=withdrawn,
        changed_files=tuple(b.filename for b in (*to_create, *to_update)),
    )


def withdraw_unlisted(*, channel: Channel, subdir: str, is_listed: Callable[[str], bool]) -> int:
    """Mark withdrawn the live builds of `channel`/`subdir` whose file `is_listed` says the
    channel no longer lists (a sync that read the whole file)."""
    withdrawn, names = _withdraw_unlisted(channel, subdir, is_listed, timezone.now())
    refresh_latest_versions(names=names)
    return withdrawn


def withdraw_files(*, channel: Channel, subdir: str, filenames: Iterable[str]) -> int:
    """Mark withdrawn the named live builds of `channel`/`subdir` (a sync's removed records)."""
    now, withdrawn, names = timezone.now(), 0, set()
    for batch in _batches(sorted(set(filenames)), LOOKUP_BATCH):
        live = Build.objects.filter(channel=channel, subdir=subdir, filename__in=batch).exclude(
            state=Build.State.WITHDRAWN
        )
        names |= set(live.values_list("name", flat=True))
        withdrawn += live.update(state=Build.State.WITHDRAWN, withdrawn_at=now, updated_at=now)
    refresh_latest_versions(names=names)
    return withdrawn


def _withdraw_unlisted(channel, subdir, is_listed, now) -> tuple[int, set[str]]:
    live = (
        Build.objects.filter(channel=channel, subdir=subdir)
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("pk", "filename", "name")
    )
    gone, names = [], set()
    for pk, filename, name in live.iterator(chunk_size=LOOKUP_BATCH):
        if not is_listed(filename):
            gone.append(pk)
            names.add(name)
    withdrawn = 0
    for batch in _batches(gone, LOOKUP_BATCH):
        withdrawn += Build.objects.filter(pk__in=batch).update(
            state=Build.State.WITHDRAWN, withdrawn_at=now, updated_at=now
        )
    return withdrawn, names


def _check_column_lengths(records: list[RepodataRecord], *, source: str) -> None:
    # py-rattler accepts any length; PostgreSQL would reject the batch with an error naming no
    # record, so refuse the file here, before the transaction, with the record named.
    limits = {
        field: Build._meta.get_field(field).max_length
        for field in ("filename", *RECORD_FIELDS)
        if isinstance(Build._meta.get_field(field), CharField)
    }
    for record in records:
        for field, limit in limits.items():
            if len(getattr(record, field)) > limit:
                raise RepodataError(
                    f"{source}: record {record.filename}: {field} is longer than {limit} characters"
                )


def _build_from_record(
    record: RepodataRecord,
    *,
    channel: Channel,
    subdir: str,
    digest: str,
    package_ids: dict[str, int],
) -> Build:
    return Build(
        channel=channel,
        package_id=package_ids.get(record.name),
        # The file's subdir, not the record's (which may be missing): it is the lookup key of
        # the next import, so a re-import finds the row instead of inserting it again.
        subdir=subdir,
        filename=record.filename,
        record_digest=digest,
        **{field: getattr(record, field) for field in RECORD_FIELDS},
    )


def _batches(items: list, size: int = BATCH_SIZE) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh_latest_versions(*, names: Iterable[str]) -> int:
    """Recompute Package.latest_version (conda ordering, via py-rattler) for the named packages."""
    names = set(names)
    if not names:
        return 0
    packages = list(Package.objects.filter(name__in=names).only("pk", "name", "latest_version"))
    if not packages:
        return 0
    versions: dict[str, set[str]] = {}
    for name, version in (
        Build.objects.filter(name__in=[p.name for p in packages])
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("name", "version")
        .distinct()
    ):
        versions.setdefault(name, set()).add(version)
    changed = []
    for package in packages:
        candidates = versions.get(package.name)
        latest = max(candidates, key=Version) if candidates else ""
        if latest != package.latest_version:
            package.latest_version = latest
            changed.append(package)
    Package.objects.bulk_update(changed, ["latest_version"])
    return len(changed)


def link_builds_to_package(*, package: Package) -> int:
    """Attach catalog builds of the package's name to it (after a package is registered)."""
    linked = Build.objects.filter(name=package.name, package__isnull=True).update(package=package)
    refresh_latest_versions(names=[package.name])
    return linked
