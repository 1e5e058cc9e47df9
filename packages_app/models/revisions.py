"""A change counter per channel subdir, moved by the database itself on every write to that
subdir's builds, so a channel sync can tell in one indexed read whether its record index still
describes the catalog."""

from django.db import models


class SubdirRevision(models.Model):
    """How many statements have changed the builds of one (channel, subdir) (revision 0: none
    since this table exists, or no row yet).

    Kept by triggers on the builds table (migration 0007_subdir_revisions, PostgreSQL's and
    SQLite's), in the transaction of the write, whatever wrote: a sync's import and withdrawal,
    promotion, removal from a target channel, the admin, a shell. A Python hook would have to
    be repeated in each of them, and one forgotten path would let a sync trust an index that no
    longer matches the catalog. Writes that the record index does not vouch for (a build linked
    to its package, or unlinked by the package's deletion; the bookkeeping timestamps) do not
    count, so registering a package does not cost a conda-forge-sized subdir a whole re-import.
    """

    channel = models.ForeignKey(
        "packages_app.Channel",
        on_delete=models.CASCADE,
        db_index=False,  # the unique constraint's index starts with it
        related_name="+",
    )
    subdir = models.CharField(max_length=32)
    revision = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "subdir"], name="subdirrevision_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.subdir}: revision {self.revision}"
