"""Channel sync against a real HTTP server on 127.0.0.1 serving a channel directory, and against
file:// channels: conditional GETs, imports, withdrawals, planning, and every bad input."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.core.management import call_command

from packages_app.lint.rules import lint_build
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.services.sync import sync_channel
from packages_app.services.sync import sync_channels
from testing_app.models import Job
from testing_app.models import Run
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world
from tests.testing_app.sync_world import channel_server
from tests.testing_app.sync_world import served_sample_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(tmp_path):
    with channel_server(tmp_path / "served") as httpd:
        yield httpd


@pytest.fixture
def world(tmp_path, server):
    return served_sample_world(tmp_path, server)


def _repodata(server) -> Path:
    return server.root / "samples" / SUBDIR / "repodata.json"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_first_sync_imports_and_plans_second_sync_is_a_304(
    world, server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = sync_channel(channel=world.channel)
    again = sync_channel(channel=world.channel)

    assert [s.status for s in first.subdirs] == ["imported", "imported"]
    assert first.subdirs[0].created == 7
    # 6 names x 2 releases, plus the 5 samples re-tested with each PyTorch stand-in pinned.
    assert first.subdirs[0].planned_jobs == 12 + 10
    assert Run.objects.get().trigger_detail.startswith(f"sync of samples/{SUBDIR}: 7 new")
    assert [s.status for s in again.subdirs] == ["unchanged", "unchanged"]
    gets = [(path, etag) for method, path, etag in server.requests if method == "GET"]
    # rattler took the compressed file the channel offers, never the plain JSON.
    assert not [path for path, _ in gets if path.endswith("repodata.json")]
    sent = [etag for path, etag in gets if path.endswith(f"{SUBDIR}/repodata.json.zst")]
    assert sent[0] == ""
    assert sent[1].startswith('"')  # the second GET was conditional, answered 304
    assert Run.objects.count() == 1
    world.channel.refresh_from_db()
    assert world.channel.last_sync_error == ""
    assert world.channel.sync_state[SUBDIR]["etag"] == sent[1]


def test_changed_repodata_imports_new_builds_and_withdraws_vanished_files(
    world, server, django_capture_on_commit_callbacks
):
    sync_channel(channel=world.channel, plan=False)
    repodata = _repodata(server)
    passes = "sample-passes-1.0.0-sample_0.conda"

    def change(data):
        packages = data["packages.conda"]
        newer = dict(packages[passes], version="1.1.0", sha256="ab" * 32)
        packages["sample-passes-1.1.0-sample_0.conda"] = newer
        del packages["sample-unsatisfiable-1.0.0-sample_0.conda"]

    _edit(repodata, change)
    with django_capture_on_commit_callbacks(execute=True):
        result = sync_channel(channel=world.channel)

    line = result.subdirs[0]
    assert (line.created, line.updated, line.withdrawn) == (1, 0, 1)
    gone = Build.objects.get(filename="sample-unsatisfiable-1.0.0-sample_0.conda")
    assert gone.state == Build.State.WITHDRAWN
    run = Run.objects.get()
    assert run.trigger_build.filename == "sample-passes-1.1.0-sample_0.conda"
    # The new sample-passes: its own cells, and its dependent re-tested with it pinned? Its one
    # dependent (sample-unsatisfiable) was just withdrawn: only its own cells.
    assert set(Job.objects.filter(run=run).values_list("build__version", flat=True)) == {"1.1.0"}


def test_unreadable_spec_is_imported_as_a_lint_error_and_not_planned(
    world, server, django_capture_on_commit_callbacks
):
    broken = "sample-passes-1.0.0-sample_0.conda"
    _edit(
        _repodata(server),
        lambda d: d["packages.conda"][broken]["depends"].append("numpy >=<1"),
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = sync_channel(channel=world.channel)

    assert result.subdirs[0].status == "imported"
    build = Build.objects.get(filename=broken)
    assert "numpy >=<1" in build.depends
    assert "numpy" not in build.depends_names
    findings = [f for f in lint_build(build) if f.code == "spec-invalid"]
    assert findings
    assert "numpy >=<1" in findings[0].message
    assert not Job.objects.filter(build=build).exists()
    assert Job.objects.filter(build__name="sample-fails-on-torch-2-5").exists()


def test_corrupted_repodata_keeps_the_previous_data_and_records_the_error(world, server):
    sync_channel(channel=world.channel, plan=False)
    before = list(Build.objects.filter(channel=world.channel).values_list("filename", "state"))
    _repodata(server).write_text('{"packages.conda": {"x.conda": {"name": ')

    result = sync_channel(channel=world.channel, plan=False)

    assert result.subdirs[0].status == "error"
    assert "not valid JSON" in result.subdirs[0].message
    world.channel.refresh_from_db()
    assert "not valid JSON" in world.channel.last_sync_error
    after = list(Build.objects.filter(channel=world.channel).values_list("filename", "state"))
    assert after == before
    _repodata(server).write_text(json.dumps(json.loads((world.sample.root / SUBDIR /
                                 "repodata.json").read_text())))  # fmt: skip
    assert sync_channel(channel=world.channel, plan=False).subdirs[0].status == "imported"


def test_unreachable_and_timed_out_channels_record_errors_and_keep_builds(world, server, settings):
    sync_channel(channel=world.channel, plan=False)
    count = Build.objects.filter(channel=world.channel).count()
    settings.HTTP_TIMEOUT_S = 1
    server.slow = 3
    Channel.objects.filter(pk=world.channel.pk).update(sync_state={})  # force a full GET
    world.channel.refresh_from_db()

    slow = sync_channel(channel=world.channel, plan=False)
    server.slow = 0
    closed = Channel.objects.create(
        name="closed", url="http://127.0.0.1:9/nothing", role="upstream", subdirs=["noarch"]
    )
    unreachable = sync_channels(channels=[closed, world.channel], plan=False)

    assert slow.subdirs[0].status == "error"
    assert "timed out after 1 s" in slow.subdirs[0].message
    assert unreachable[0].errors
    closed.refresh_from_db()
    assert "127.0.0.1:9" in closed.last_sync_error
    assert [s.status for s in unreachable[1].subdirs] == [
        "imported",
        "imported",
    ]  # the others go on
    assert Build.objects.filter(channel=world.channel).count() == count


def test_file_channel_sync_uses_size_and_mtime_and_upstream_sync_plans_nothing(
    tmp_path, django_capture_on_commit_callbacks
):
    world = sample_world(tmp_path)
    Channel.objects.filter(pk=world.channel.pk).update(role="upstream")
    world.channel.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        first = sync_channel(channel=world.channel)
    again = sync_channel(channel=world.channel)

    statuses = {s.subdir: s.status for s in first.subdirs}
    assert statuses[SUBDIR] == "imported"
    assert statuses.get("osx-arm64" if SUBDIR != "osx-arm64" else "win-64") == "missing"
    assert {s.status for s in again.subdirs if s.status != "missing"} == {"unchanged"}
    assert Build.objects.filter(channel=world.channel).count() == 7
    assert not Run.objects.exists()  # upstream channels feed the catalog; staging is tested


def test_sync_channels_command_prints_and_fails_on_errors(world, server):
    out = io.StringIO()
    call_command("sync_channels", "--channel", "samples", "--no-plan", stdout=out)
    assert f"samples {SUBDIR}: 7 new, 0 changed, 0 withdrawn" in out.getvalue()

    _repodata(server).write_text("not json")
    Channel.objects.filter(pk=world.channel.pk).update(sync_state={})
    with pytest.raises(CommandError, match="could not be read"):
        call_command("sync_channels", "--channel", "samples", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Unknown channel"):
        call_command("sync_channels", "--channel", "nope")


def test_the_next_subdir_downloads_while_this_one_is_imported(world, server, monkeypatch):
    """The second subdir's fetch starts before the first subdir's import ends, on the fetch
    thread: were the fetches sequential, the first import would wait for an event that never
    comes and the test would fail on the timeout."""
    import threading

    from packages_app.services import sync as sync_service

    fetched_second = threading.Event()
    fetch_threads: dict[str, str] = {}
    real_fetch, real_import = sync_service.fetch_repodata, sync_service._import_and_plan
    subdirs = list(world.channel.subdirs)
    assert len(subdirs) == 2

    def recording_fetch(base_url, subdir, **kwargs):
        fetch_threads[subdir] = threading.current_thread().name
        if subdir == subdirs[1]:
            fetched_second.set()
        return real_fetch(base_url, subdir, **kwargs)

    def waiting_import(channel, subdir, *args, **kwargs):
        if subdir == subdirs[0]:
            assert fetched_second.wait(timeout=30), "the second subdir was not fetched meanwhile"
        return real_import(channel, subdir, *args, **kwargs)

    monkeypatch.setattr(sync_service, "fetch_repodata", recording_fetch)
    monkeypatch.setattr(sync_service, "_import_and_plan", waiting_import)
    result = sync_channel(channel=world.channel, plan=False)

    assert [s.status for s in result.subdirs] == ["imported", "imported"]
    assert set(fetch_threads) == set(subdirs)
    assert all(name.startswith("repodata-fetch") for name in fetch_threads.values())
