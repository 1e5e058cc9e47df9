"""Channel sync through rattler's fetch_repo_data against a real HTTP server: the compressed file,
the record index that lets a sync parse only what changed, its fallback to a whole import when
the catalog moved under it, chunked whole imports, and names that must never become paths."""

import json
from pathlib import Path

import pytest

from packages_app.adapters.repodata_fetch import cache_folder
from packages_app.adapters.repodata_index import INDEX_NAME
from packages_app.adapters.repodata_index import RawRepodata
from packages_app.adapters.repodata_index import RecordIndex
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import SubdirRevision
from packages_app.services.catalog import link_builds_to_package
from packages_app.services.sync import sync_channel
from tests.factories import PackageFactory
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.sync_world import channel_server
from tests.testing_app.sync_world import served_sample_world

pytestmark = pytest.mark.django_db
PASSES = "sample-passes-1.0.0-sample_0.conda"
UNSATISFIABLE = "sample-unsatisfiable-1.0.0-sample_0.conda"


@pytest.fixture
def server(tmp_path):
    with channel_server(tmp_path / "served") as httpd:
        yield httpd


@pytest.fixture
def world(tmp_path, server):
    world = served_sample_world(tmp_path, server)
    # Written as _edit writes it, so that an edit changes the bytes of the edited records only
    # (a channel that re-serialises its whole file changes every record's bytes: all parsed).
    _edit(server, lambda data: None)
    return world


def _repodata(server) -> Path:
    return server.root / "samples" / SUBDIR / "repodata.json"


def _listed(server) -> int:
    """The records the served file lists (the sample channel grows as samples are added)."""
    data = json.loads(_repodata(server).read_text())
    return len(data["packages"]) + len(data["packages.conda"])


def _edit(server, change) -> None:
    path = _repodata(server)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _states(channel) -> dict[str, tuple]:
    return {
        b.filename: (b.state, b.sha256, tuple(b.depends))
        for b in Build.objects.filter(channel=channel, subdir=SUBDIR)
    }


def _add_and_patch(data):
    packages = data["packages.conda"]
    packages["sample-passes-1.1.0-sample_0.conda"] = dict(
        packages[PASSES], version="1.1.0", sha256="ab" * 32
    )
    packages[PASSES] = dict(packages[PASSES], depends=[*packages[PASSES]["depends"], "zlib"])
    del packages[UNSATISFIABLE]


def test_second_sync_parses_only_the_changed_records_and_matches_a_whole_import(
    world, server, settings
):
    listed = _listed(server)
    first = sync_channel(channel=world.channel, plan=False)
    assert (first.subdirs[0].parsed, first.subdirs[0].listed) == (listed, listed)
    folder = cache_folder(Path(settings.REPODATA_CACHE_DIR), world.channel.base_url, SUBDIR)
    assert (folder / INDEX_NAME).is_file()

    _edit(server, _add_and_patch)
    second = sync_channel(channel=world.channel, plan=False).subdirs[0]

    # One record added, one patched, one removed: only the first two were parsed.
    assert (second.created, second.updated, second.withdrawn) == (1, 1, 1)
    assert (second.parsed, second.listed) == (2, listed)
    incremental = _states(world.channel)
    assert incremental[UNSATISFIABLE][0] == Build.State.WITHDRAWN
    assert "zlib" in incremental[PASSES][2]
    # The oracle: the same file imported whole (no index of its own) into another channel row.
    oracle_channel = Channel.objects.create(
        name="oracle", url=world.channel.url, role="upstream", subdirs=[SUBDIR]
    )
    whole = sync_channel(channel=oracle_channel, plan=False).subdirs[0]
    assert whole.parsed == whole.listed == listed
    live = {name: value for name, value in incremental.items() if value[0] != "withdrawn"}
    assert live == _states(oracle_channel)


def test_catalog_changed_under_the_index_falls_back_to_a_whole_import(world, server):
    sync_channel(channel=world.channel, plan=False)
    # Something else withdrew a build the channel still lists: the index no longer describes
    # the catalog, so the next change is imported whole and the build comes back.
    Build.objects.filter(channel=world.channel, filename=PASSES).update(state="withdrawn")
    _edit(server, lambda d: d["packages.conda"][UNSATISFIABLE].update(license="MIT"))

    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert (result.parsed, result.listed) == (_listed(server), _listed(server))
    assert result.updated == 2  # the restored build and the patched license
    assert Build.objects.get(channel=world.channel, filename=PASSES).state == "staged"
    assert Build.objects.get(channel=world.channel, filename=UNSATISFIABLE).license == "MIT"


def test_a_write_between_the_index_check_and_the_import_makes_it_a_whole_import(
    world, server, monkeypatch
):
    sync_channel(channel=world.channel, plan=False)
    _edit(server, lambda d: d["packages.conda"][UNSATISFIABLE].update(license="MIT"))
    snapshot = RawRepodata.snapshot

    def withdrawn_meanwhile(raw, hashes):
        # Another writer commits after the index was found current, before the import's
        # transaction: the delta cannot know about it.
        Build.objects.filter(channel=world.channel, filename=PASSES).update(state="withdrawn")
        return snapshot(raw, hashes)

    monkeypatch.setattr(RawRepodata, "snapshot", withdrawn_meanwhile)
    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert (result.parsed, result.updated) == (_listed(server), 2)
    assert Build.objects.get(channel=world.channel, filename=PASSES).state == "staged"


def test_the_index_names_the_revision_its_import_committed(world, server, settings):
    sync_channel(channel=world.channel, plan=False)
    folder = cache_folder(Path(settings.REPODATA_CACHE_DIR), world.channel.base_url, SUBDIR)
    _edit(server, _add_and_patch)
    sync_channel(channel=world.channel, plan=False)

    revision = SubdirRevision.objects.get(channel=world.channel, subdir=SUBDIR).revision
    assert revision > 1  # the first import and the second's writes each moved it
    fingerprint = {"channel": world.channel.pk, "subdir": SUBDIR, "revision": revision}
    assert RecordIndex.load(folder, fingerprint=fingerprint) is not None


def test_a_package_registered_meanwhile_keeps_the_index(world, server):
    sync_channel(channel=world.channel, plan=False)
    # Registration links the catalog's builds of its name in every channel (and a package's
    # deletion unlinks them): not a change of what the index describes, so the next sync
    # still parses only what changed.
    Build.objects.filter(channel=world.channel).update(package=None)
    package = Package.objects.filter(name="sample-passes").first()
    link_builds_to_package(package=package or PackageFactory(name="sample-passes"))
    assert Build.objects.get(channel=world.channel, filename=PASSES).package is not None
    _edit(server, lambda d: d["packages.conda"][UNSATISFIABLE].update(license="MIT"))

    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert (result.parsed, result.updated) == (1, 1)


def test_unchanged_file_with_a_new_etag_is_not_parsed(world, server):
    sync_channel(channel=world.channel, plan=False)
    server.zst = False  # the channel stops offering .zst: rattler falls back to plain JSON
    rewritten = json.dumps(json.loads(_repodata(server).read_text()))
    _repodata(server).write_text(rewritten)

    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    gets = [p for method, p, _ in server.requests if method == "GET" and f"/{SUBDIR}/" in p]
    assert gets[-1].endswith(f"{SUBDIR}/repodata.json")
    # Same bytes as the cached copy: same BLAKE2 hash, nothing read.
    assert result.status == "unchanged"


def test_whole_import_runs_in_chunks_and_a_bad_record_in_the_last_chunk_writes_nothing(
    world, server, settings
):
    settings.SYNC_CHUNK_RECORDS = 2
    result = sync_channel(channel=world.channel, plan=False).subdirs[0]
    assert (result.created, result.parsed) == (_listed(server), _listed(server))
    before = _states(world.channel)

    def add_then_break_last(data):
        packages = data["packages.conda"]
        packages["aa-new-1.0-0.conda"] = dict(
            packages[PASSES], name="aa-new", version="1.0", build="0"
        )
        broken = packages.pop(PASSES)  # moved to the end of the file: the last chunk
        packages[PASSES] = dict(broken, version="not a version!!")

    folder = cache_folder(Path(settings.REPODATA_CACHE_DIR), world.channel.base_url, SUBDIR)
    RecordIndex.discard(folder)  # lost with the cache: the next sync imports the file whole
    _edit(server, add_then_break_last)
    broken = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert broken.status == "error"
    assert "not a version!!" in broken.message
    assert not Build.objects.filter(filename="aa-new-1.0-0.conda").exists()
    assert _states(world.channel) == before
    world.channel.refresh_from_db()
    assert "not a version!!" in world.channel.last_sync_error


def _traversal_file_name(data):
    data["packages.conda"]["../../evil-1.0-0.conda"] = dict(data["packages.conda"][PASSES])


def _traversal_record_subdir(data):
    data["packages.conda"][PASSES]["subdir"] = "../.."


def _traversal_info_subdir(data):
    data["info"] = {"subdir": "../../etc"}


@pytest.mark.parametrize(
    "change", [_traversal_file_name, _traversal_record_subdir, _traversal_info_subdir]
)
def test_a_name_that_would_become_a_path_is_refused_on_the_incremental_path(world, server, change):
    sync_channel(channel=world.channel, plan=False)
    before = _states(world.channel)
    _edit(server, change)

    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert result.status == "error"
    assert ".." in result.message
    assert _states(world.channel) == before
    assert not Build.objects.filter(filename__contains="..").exists()


def test_missing_subdir_over_http_is_skipped_and_a_configured_one_is_an_error(world, server):
    world.channel.subdirs = []
    world.channel.save(update_fields=["subdirs"])
    result = sync_channel(channel=world.channel, plan=False)
    statuses = {s.subdir: s.status for s in result.subdirs}
    assert statuses[SUBDIR] == "imported"
    assert "missing" in statuses.values()  # subdirs the channel does not have (404)

    world.channel.subdirs = [SUBDIR, "win-arm64"]
    world.channel.save(update_fields=["subdirs"])
    configured = sync_channel(channel=world.channel, plan=False)
    assert configured.subdirs[1].status == "error"
    assert "no repodata.json" in configured.subdirs[1].message


def test_repodata_over_the_size_cap_is_refused_with_the_size_named(world, server, settings):
    sync_channel(channel=world.channel, plan=False)
    before = _states(world.channel)
    settings.REPODATA_MAX_BYTES = 100
    _edit(server, _add_and_patch)

    result = sync_channel(channel=world.channel, plan=False).subdirs[0]

    assert result.status == "error"
    assert "larger than 100 bytes, refused" in result.message
    assert _states(world.channel) == before
