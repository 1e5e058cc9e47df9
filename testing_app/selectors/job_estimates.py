"""How long a job will take, from what its cell's package took before.

A release wave's makespan depends on starting the longest jobs first (a long test started last
finishes last), so every job carries an estimate (Job.expected_s) when it is queued. A test's
duration is mostly its package's test suite on that kind of machine, so the estimate is the
median duration of the package's recent finished jobs of the same kind on the same variant and
platform; failing that, of the same kind on any cell of the package; failing that, the
setting's default for the kind (EXPECTED_TEST_S, EXPECTED_INSTALL_CHECK_S).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from packages_app.models import Build
from testing_app.models import Job

# package, variant, platform (None in the package-wide figure)
EstimateKey = tuple[int, int | None, int | None]

_MEDIANS = """
SELECT b.package_id, j.variant_id, j.platform_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY j.duration_s)
FROM {job} j JOIN {build} b ON b.id = j.build_id
WHERE j.kind = %(kind)s AND j.status = 'finished' AND j.duration_s IS NOT NULL
  AND j.finished_at >= %(since)s AND b.package_id = ANY(%(packages)s)
GROUP BY GROUPING SETS ((b.package_id, j.variant_id, j.platform_id), (b.package_id))
"""


@dataclass(frozen=True)
class DurationHistory:
    """Median past durations of one job kind, per (package, variant, platform) and per package."""

    kind: str
    medians: dict[EstimateKey, float]

    def expected_s(self, *, package_id: int | None, variant_id: int, platform_id: int) -> float:
        for key in ((package_id, variant_id, platform_id), (package_id, None, None)):
            if key in self.medians:
                return self.medians[key]
        return default_expected_s(self.kind)


def default_expected_s(kind: str) -> float:
    if kind == Job.Kind.INSTALL_CHECK:
        return float(settings.EXPECTED_INSTALL_CHECK_S)
    return float(settings.EXPECTED_TEST_S)


def duration_history(*, kind: str, package_ids: Iterable[int]) -> DurationHistory:
    """The medians of `kind` jobs of these packages that finished within
    EXPECTED_DURATION_WINDOW_DAYS (one query, both groupings)."""
    packages = sorted({p for p in package_ids if p is not None})
    if not packages:
        return DurationHistory(kind, {})
    if connection.vendor != "postgresql":
        return _duration_history_orm(kind, packages)
    statement = _MEDIANS.format(
        job=connection.ops.quote_name(Job._meta.db_table),
        build=connection.ops.quote_name(Build._meta.db_table),
    )
    since = timezone.now() - timedelta(days=settings.EXPECTED_DURATION_WINDOW_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(statement, {"kind": kind, "since": since, "packages": packages})
        medians = {(p, v, f): float(m) for p, v, f, m in cursor.fetchall() if m is not None}
    return DurationHistory(kind, medians)


def _duration_history_orm(kind: str, packages: list[int]) -> DurationHistory:
    """The same on other databases (the SQLite demo), medians computed here."""
    since = timezone.now() - timedelta(days=settings.EXPECTED_DURATION_WINDOW_DAYS)
    rows = Job.objects.filter(
        kind=kind,
        status=Job.Status.FINISHED,
        duration_s__isnull=False,
        finished_at__gte=since,
        build__package_id__in=packages,
    ).values_list("build__package_id", "variant_id", "platform_id", "duration_s")
    samples: dict[EstimateKey, list[float]] = {}
    for package, variant, platform, seconds in rows:
        samples.setdefault((package, variant, platform), []).append(seconds)
        samples.setdefault((package, None, None), []).append(seconds)
    return DurationHistory(kind, {key: _median(values) for key, values in samples.items()})


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
