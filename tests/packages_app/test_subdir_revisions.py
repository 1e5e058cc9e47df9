"""The subdir revision that tells a channel sync whether its record index still describes the
catalog: moved by the database on every write to a subdir's builds, whoever writes, and by
nothing else."""

import importlib
import sqlite3

import pytest

from packages_app.models import Build
from packages_app.models import Package
from packages_app.models import SubdirRevision
from packages_app.services.catalog import link_builds_to_package
from packages_app.services.catalog import withdraw_files
from tests.factories import BuildFactory
from tests.factories import ChannelFactory
from tests.factories import PackageFactory

pytestmark = pytest.mark.django_db
migration = importlib.import_module("packages_app.migrations.0007_subdir_revisions")


def revisions() -> dict[tuple[int, str], int]:
    return {
        (r.channel_id, r.subdir): r.revision
        for r in SubdirRevision.objects.all()
        if r.revision  # a row the sync created before any write reads as none
    }


def test_every_kind_of_write_moves_its_subdir_and_no_other():
    channel, other = ChannelFactory(), ChannelFactory()
    build = BuildFactory(channel=channel)
    BuildFactory(channel=other, subdir="noarch")
    assert revisions() == {(channel.pk, "linux-64"): 1, (other.pk, "noarch"): 1}

    # A statement is one step, whatever the number of rows it writes.
    BuildFactory.create_batch(2, channel=channel)
    Build.objects.filter(channel=channel).update(license="MIT")
    assert revisions()[(channel.pk, "linux-64")] == 4  # 2 creates, 1 update

    withdraw_files(channel=channel, subdir="linux-64", filenames=[build.filename])
    Build.objects.filter(pk=build.pk).update(state=Build.State.PROMOTED)  # promotion's write
    build.refresh_from_db()
    build.depends = ["zlib"]
    build.save()  # the admin's
    Build.objects.filter(pk=build.pk).delete()
    assert revisions() == {(channel.pk, "linux-64"): 8, (other.pk, "noarch"): 1}


def test_a_build_moved_to_another_subdir_moves_both():
    channel = ChannelFactory()
    build = BuildFactory(channel=channel)
    Build.objects.filter(pk=build.pk).update(subdir="noarch")
    assert revisions() == {(channel.pk, "linux-64"): 2, (channel.pk, "noarch"): 1}


def test_writes_the_index_does_not_vouch_for_move_nothing():
    channel = ChannelFactory()
    build = BuildFactory(channel=channel, name="kornia")
    # A package registered (its builds linked in every channel) and deleted (unlinked).
    link_builds_to_package(package=PackageFactory(name="kornia"))
    assert Build.objects.get(pk=build.pk).package is not None
    Package.objects.filter(name="kornia").delete()
    # save() of an unchanged build moves only updated_at; an update that sets a column to
    # its own value changes nothing.
    Build.objects.get(pk=build.pk).save()
    Build.objects.filter(pk=build.pk).update(license=build.license)
    assert revisions() == {(channel.pk, "linux-64"): 1}


def test_sqlite_triggers_count_the_same_writes():
    """The demo's SQLite: the same SQL the migration runs, on the same columns."""
    columns = [field.column for field in Build._meta.concrete_fields]
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE packages_app_build ({', '.join(columns)})")
    db.execute(
        "CREATE TABLE packages_app_subdirrevision (id INTEGER PRIMARY KEY, channel_id, subdir, "
        "revision, UNIQUE (channel_id, subdir))"
    )
    for statement in migration.sqlite_install_sql(columns):
        db.execute(statement)

    def rows():
        query = "SELECT channel_id, subdir, revision FROM packages_app_subdirrevision"
        return {(c, s): r for c, s, r in db.execute(query)}

    db.execute(
        "INSERT INTO packages_app_build (id, channel_id, subdir, filename, license) "
        "VALUES (1, 7, 'linux-64', 'a.conda', ''), (2, 7, 'linux-64', 'b.conda', '')"
    )
    assert rows() == {(7, "linux-64"): 2}  # row-level there: one step per row
    db.execute("UPDATE packages_app_build SET package_id = 3, updated_at = 'now'")
    db.execute("UPDATE packages_app_build SET license = ''")
    assert rows() == {(7, "linux-64"): 2}
    db.execute("UPDATE packages_app_build SET license = 'MIT' WHERE id = 1")
    db.execute("UPDATE packages_app_build SET subdir = 'noarch' WHERE id = 2")
    db.execute("DELETE FROM packages_app_build WHERE id = 1")
    assert rows() == {(7, "linux-64"): 5, (7, "noarch"): 1}
    for statement in migration.sqlite_uninstall_sql():
        db.execute(statement)
    db.execute("DELETE FROM packages_app_build")
    assert rows() == {(7, "linux-64"): 5, (7, "noarch"): 1}
