"""Counts kept beside the rows they count, so that pages read a few hundred rows, not millions.

- `PackageVerdictCount`: CellResult rows per (package, version, release, verdict). The matrix's
  "failing only" filter and "most problems first" order read it instead of grouping the cells
  of every package on each request.
- `JobDayCount`: finished jobs per (UTC day, host, kind, verdict). The hosts page's activity
  plots and the trends page's pass rate read it instead of grouping 30 days of jobs.

Both are kept by database triggers (PostgreSQL's, and SQLite's for the local demo; installed by
migration 0017_rollups), in
the transaction of the statement that changes the counted rows. Every path that writes cells
or jobs is covered that way, including those that never go through a model instance: the
planner's and the dispatcher's `INSERT ... ON CONFLICT` upserts, the COPY of new jobs,
`QuerySet.update()` (waivers), and cascade deletes. A Python hook in the services would have to
be repeated in each of them, and one forgotten path would leave the counts wrong for good.
"""

from django.db import models


class PackageVerdictCount(models.Model):
    """How many CellResult rows of one package version x PyTorch release hold one verdict.

    A row exists only while its count is above zero. Cells without a package are not counted
    (the matrix never shows them).
    """

    # No database constraint and no Django cascade: the rows follow the cells, whose own
    # deletion (before their package's) takes the counts to zero and removes the rows.
    package = models.ForeignKey(
        "packages_app.Package",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the unique constraint's index starts with it
        related_name="verdict_counts",
    )
    version = models.CharField(max_length=64)
    torch_release = models.ForeignKey(
        "packages_app.TorchRelease",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    verdict = models.CharField(max_length=16)
    cells = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["package", "version", "torch_release", "verdict"],
                name="packageverdictcount_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package_id} {self.version} x {self.torch_release_id}: {self.verdict}"


class JobDayCount(models.Model):
    """How many jobs finished on one UTC day, on one host (or none), of one kind and verdict."""

    day = models.DateField()
    host = models.ForeignKey(
        "testing_app.Host",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # read by day range, never by host alone
        related_name="+",
    )
    kind = models.CharField(max_length=16)
    verdict = models.CharField(max_length=16)
    jobs = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "host", "kind", "verdict"],
                name="jobdaycount_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} host {self.host_id} {self.kind}: {self.verdict} {self.jobs}"
