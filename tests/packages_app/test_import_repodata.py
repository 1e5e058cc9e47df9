"""Repodata import: the catalog service and `manage.py import_repodata` on real repodata files."""

import io
import json
import os
import subprocess
import sys
import threading
from datetime import UTC
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from packages_app.models import Build
from packages_app.models import Package
from packages_app.services.catalog import import_repodata
from packages_app.services.packages import register_package
from tests.factories import ChannelFactory
from tests.factories import PackageFactory

CHANNELS_DIR = settings.DEMO_DATA_DIR / "channels"
SNAPSHOT_CHANNEL = CHANNELS_DIR / "pytorch-snapshot"
SNAPSHOT = SNAPSHOT_CHANNEL / "linux-64" / "repodata.json"
LOCKFILE = CHANNELS_DIR / "lockfile"
TORCHVISION = "torchvision-0.16.0-py310_cu121.tar.bz2"
WRITE_SQL = ("INSERT", "UPDATE", "DELETE")

pytestmark = pytest.mark.django_db


def _raw(path: Path) -> dict:
    return json.loads(path.read_bytes())


def _write_repodata(tmp_path: Path, raw: dict, subdir: str = "linux-64") -> Path:
    target = tmp_path / subdir / "repodata.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(raw))
    return target


def _snapshot_variant(tmp_path: Path, mutate) -> Path:
    raw = _raw(SNAPSHOT)
    mutate(raw)
    return _write_repodata(tmp_path, raw)


def _builds_table() -> list[dict]:
    return list(Build.objects.order_by("pk").values())


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith(WRITE_SQL)]


def _run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_repodata", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def snapshot_channel():
    return ChannelFactory(name="pytorch-snapshot", label="", url=SNAPSHOT_CHANNEL.as_uri())


@pytest.fixture
def http_base_url(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving a copy of the snapshot channel."""
    root = tmp_path / "served"
    (root / "linux-64").mkdir(parents=True)
    (root / "linux-64" / "repodata.json").write_bytes(SNAPSHOT.read_bytes())

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


# --- the catalog service on the real snapshot -----------------------------------------------


def test_import_repodata_real_snapshot_creates_every_build(snapshot_channel):
    report = import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    assert (report.records, report.created, report.updated, report.unchanged) == (2181, 2181, 0, 0)
    assert report.subdir == "linux-64"
    assert Build.objects.filter(channel=snapshot_channel, subdir="linux-64").count() == 2181
    assert Build.objects.filter(name="torchvision").count() == 303
    assert set(Build.objects.values_list("state", flat=True)) == {Build.State.STAGED}


def test_import_repodata_real_snapshot_keeps_record_fields(snapshot_channel):
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    build = Build.objects.get(channel=snapshot_channel, filename=TORCHVISION)
    expected = _raw(SNAPSHOT)["packages"][TORCHVISION]
    assert (build.name, build.version, build.build_string, build.build_number) == (
        "torchvision",
        "0.16.0",
        "py310_cu121",
        0,
    )
    assert "pytorch 2.1.0" in build.depends
    assert "pytorch-cuda 12.1.*" in build.depends
    assert build.depends == expected["depends"]
    assert build.constrains == expected["constrains"]
    assert build.license == expected["license"] == "BSD"
    assert build.sha256 == expected["sha256"]
    assert build.md5 == expected["md5"]
    assert build.size == expected["size"]
    assert build.timestamp == datetime.fromtimestamp(expected["timestamp"] / 1000, tz=UTC)
    assert {"pytorch", "pytorch-cuda", "pytorch-mutex", "python", "pillow"} <= set(
        build.depends_names
    )
    assert "pytorch 2.1.0" not in build.depends_names
    assert build.download_url == f"{SNAPSHOT_CHANNEL.as_uri()}/linux-64/{TORCHVISION}"


def test_import_repodata_second_import_writes_nothing(snapshot_channel):
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))
    before = _builds_table()

    with CaptureQueriesContext(connection) as queries:
        report = import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    assert (report.created, report.updated, report.withdrawn, report.unchanged) == (0, 0, 0, 2181)
    assert not report.wrote_anything
    assert _writes(queries) == []
    assert _builds_table() == before


def test_import_repodata_patched_depends_updates_exactly_that_row(snapshot_channel, tmp_path):
    # The same file in another folder: the import keys on channel, subdir and filename.
    import_repodata(channel=snapshot_channel, source=str(_snapshot_variant(tmp_path, lambda r: r)))
    before = {row["filename"]: row for row in _builds_table()}
    patched = _snapshot_variant(
        tmp_path,
        lambda raw: raw["packages"][TORCHVISION]["depends"].append("pytorch-triton >=2.1"),
    )

    with CaptureQueriesContext(connection) as queries:
        report = import_repodata(channel=snapshot_channel, source=str(patched))

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2180)
    assert len([sql for sql in _writes(queries) if sql.lstrip().startswith("UPDATE")]) == 1
    after = {row["filename"]: row for row in _builds_table()}
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {TORCHVISION}
    assert after[TORCHVISION]["depends"][-1] == "pytorch-triton >=2.1"
    assert "pytorch-triton" in after[TORCHVISION]["depends_names"]
    assert after[TORCHVISION]["id"] == before[TORCHVISION]["id"]
    assert after[TORCHVISION]["updated_at"] > before[TORCHVISION]["updated_at"]


def test_import_repodata_patched_promoted_build_stays_promoted(snapshot_channel, tmp_path):
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))
    Build.objects.filter(filename=TORCHVISION).update(state=Build.State.PROMOTED)
    patched = _snapshot_variant(
        tmp_path, lambda raw: raw["packages"][TORCHVISION].update(license="BSD-3-Clause")
    )

    import_repodata(channel=snapshot_channel, source=str(patched))

    build = Build.objects.get(filename=TORCHVISION)
    assert (build.state, build.license) == (Build.State.PROMOTED, "BSD-3-Clause")


def test_import_repodata_withdraw_missing_withdraws_then_restages_on_return(
    snapshot_channel, tmp_path
):
    gone = [TORCHVISION, "cuda100-1.0-0.tar.bz2"]
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    def drop(raw):
        for filename in gone:
            del raw["packages"][filename]

    shrunk = _snapshot_variant(tmp_path, drop)
    report = import_repodata(channel=snapshot_channel, source=str(shrunk), withdraw_missing=True)

    assert (report.records, report.withdrawn, report.created, report.updated) == (2179, 2, 0, 0)
    withdrawn = Build.objects.filter(state=Build.State.WITHDRAWN)
    assert set(withdrawn.values_list("filename", flat=True)) == set(gone)
    assert all(b.withdrawn_at is not None for b in withdrawn)
    assert Build.objects.filter(state=Build.State.STAGED).count() == 2179

    again = import_repodata(channel=snapshot_channel, source=str(shrunk), withdraw_missing=True)
    assert not again.wrote_anything

    back = import_repodata(channel=snapshot_channel, source=str(SNAPSHOT), withdraw_missing=True)

    assert (back.updated, back.created, back.withdrawn) == (2, 0, 0)
    assert not Build.objects.filter(state=Build.State.WITHDRAWN).exists()
    assert Build.objects.filter(filename__in=gone, withdrawn_at__isnull=True).count() == 2


def test_import_repodata_without_withdraw_missing_keeps_unlisted_builds(snapshot_channel, tmp_path):
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))
    shrunk = _snapshot_variant(tmp_path, lambda raw: raw["packages"].pop(TORCHVISION))

    report = import_repodata(channel=snapshot_channel, source=str(shrunk))

    assert report.withdrawn == 0
    assert Build.objects.get(filename=TORCHVISION).state == Build.State.STAGED


def test_import_repodata_withdraw_missing_leaves_other_channels_alone(snapshot_channel, tmp_path):
    other = ChannelFactory(name="pytorch-mirror", label="", url=SNAPSHOT_CHANNEL.as_uri())
    import_repodata(channel=other, source=str(SNAPSHOT))
    empty = _write_repodata(tmp_path, {"info": {"subdir": "linux-64"}, "packages": {}})

    report = import_repodata(channel=snapshot_channel, source=str(empty), withdraw_missing=True)

    assert report.withdrawn == 0
    assert not Build.objects.filter(state=Build.State.WITHDRAWN).exists()


def test_import_repodata_record_without_subdir_reimports_idempotently(snapshot_channel, tmp_path):
    def strip_subdir(raw):
        for record in raw["packages"].values():
            record.pop("subdir")

    path = _snapshot_variant(tmp_path, strip_subdir)
    import_repodata(channel=snapshot_channel, source=str(path))

    report = import_repodata(channel=snapshot_channel, source=str(path))

    assert (report.created, report.updated) == (0, 0)
    assert set(Build.objects.values_list("subdir", flat=True)) == {"linux-64"}


def test_import_repodata_failure_mid_write_leaves_nothing_behind(snapshot_channel):
    def explode(advanced, total):
        raise RuntimeError("interrupted after the first batch")

    with pytest.raises(RuntimeError):
        import_repodata(channel=snapshot_channel, source=str(SNAPSHOT), progress=explode)

    assert not Build.objects.exists()


def test_import_repodata_lockfile_subdir_imports_conda_files(tmp_path):
    source = LOCKFILE / "conda-forge" / "linux-64" / "repodata.json"
    channel = ChannelFactory(name="conda-forge", label="", url=(LOCKFILE / "conda-forge").as_uri())
    raw = _raw(source)

    report = import_repodata(channel=channel, source=str(source))

    assert report.created == len(raw["packages"]) + len(raw["packages.conda"]) == 632
    conda_files = Build.objects.filter(channel=channel, filename__endswith=".conda")
    assert set(conda_files.values_list("filename", flat=True)) == set(raw["packages.conda"])
    filename, expected = next(iter(raw["packages.conda"].items()))
    build = conda_files.get(filename=filename)
    assert (build.name, build.version, build.sha256, build.size) == (
        expected["name"],
        expected["version"],
        expected["sha256"],
        expected["size"],
    )
    assert build.depends == expected.get("depends", [])
    assert not import_repodata(channel=channel, source=str(source)).wrote_anything


def test_import_repodata_every_lockfile_subdir_totals_1836_records():
    total = 0
    for channel_dir in sorted(p for p in LOCKFILE.iterdir() if p.is_dir()):
        channel = ChannelFactory(name=channel_dir.name, label="", url=channel_dir.as_uri())
        for source in sorted(channel_dir.glob("*/repodata.json")):
            report = import_repodata(channel=channel, source=str(source))
            assert report.subdir == source.parent.name
            total += report.created

    assert total == Build.objects.count() == 1836


# --- package linkage and latest versions ------------------------------------------------------


def test_import_repodata_registered_package_links_builds_and_conda_latest(snapshot_channel):
    torchvision = PackageFactory(name="torchvision")

    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    torchvision.refresh_from_db()
    assert Build.objects.filter(name="torchvision", package=torchvision).count() == 303
    assert not Build.objects.filter(name="torchvision", package__isnull=True).exists()
    assert Build.objects.filter(name="pytorch", package__isnull=True).count() == 276
    # Conda ordering: 0.16.0 > 0.9.1, although "0.9.1" is the larger string.
    assert torchvision.latest_version == "0.16.0"


def test_register_package_after_import_links_existing_builds(snapshot_channel):
    import_repodata(channel=snapshot_channel, source=str(SNAPSHOT))

    package = register_package(name="pytorch", summary="Tensors")

    assert package.builds.count() == 276
    assert Package.objects.get(name="pytorch").latest_version == "2.1.0"


def _release_repodata(versions: list[str]) -> dict:
    packages = {
        f"demo-{v}-0.tar.bz2": {
            "name": "demo",
            "version": v,
            "build": "0",
            "build_number": 0,
            "depends": [],
            "subdir": "linux-64",
        }
        for v in versions
    }
    return {"info": {"subdir": "linux-64"}, "packages": packages}


def test_import_repodata_latest_version_uses_conda_ordering_and_skips_withdrawn(tmp_path):
    channel = ChannelFactory(name="demo-channel", label="")
    package = PackageFactory(name="demo")
    full = _write_repodata(tmp_path, _release_repodata(["2.9.1", "2.10.0rc1", "2.10.0"]))

    import_repodata(channel=channel, source=str(full))
    package.refresh_from_db()
    assert package.latest_version == "2.10.0"

    older = _write_repodata(tmp_path / "older", _release_repodata(["2.9.1", "2.10.0rc1"]))
    import_repodata(channel=channel, source=str(older), withdraw_missing=True)
    package.refresh_from_db()
    assert package.latest_version == "2.10.0rc1"

    oldest = _write_repodata(tmp_path / "oldest", _release_repodata(["2.9.1"]))
    import_repodata(channel=channel, source=str(oldest), withdraw_missing=True)
    package.refresh_from_db()
    assert package.latest_version == "2.9.1"


# --- the management command ---------------------------------------------------------------------


def test_import_repodata_command_file_url_imports_and_shows_progress(snapshot_channel):
    out, err = _run_command(SNAPSHOT.as_uri(), "--channel", "pytorch-snapshot")

    assert "pytorch-snapshot/linux-64: 2181 records, 2181 created, 0 updated" in out
    assert "2181/2181" in err
    assert Build.objects.filter(channel=snapshot_channel).count() == 2181


def test_import_repodata_command_repeated_reports_all_unchanged(snapshot_channel):
    _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot", "--no-progress")

    out, err = _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot", "--no-progress")

    assert "0 created, 0 updated, 2181 unchanged, 0 withdrawn" in out
    assert err == ""


def test_import_repodata_command_relative_path_imports(snapshot_channel, monkeypatch):
    monkeypatch.chdir(settings.BASE_DIR)

    out, _ = _run_command(
        os.path.relpath(SNAPSHOT, settings.BASE_DIR), "--channel", "pytorch-snapshot"
    )

    assert "2181 created" in out


def test_import_repodata_command_label_selects_that_channel(snapshot_channel):
    labelled = ChannelFactory(name="pytorch-snapshot", label="test", url=snapshot_channel.url)

    out, _ = _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot", "--label", "test")

    assert out.startswith("pytorch-snapshot/label/test/linux-64: 2181 records")
    assert Build.objects.filter(channel=labelled).count() == 2181
    assert not Build.objects.filter(channel=snapshot_channel).exists()


def test_import_repodata_command_http_url_imports_from_local_server(
    snapshot_channel, http_base_url
):
    url = f"{http_base_url}/linux-64/repodata.json"

    out, _ = _run_command(url, "--channel", "pytorch-snapshot")
    again, _ = _run_command(url, "--channel", "pytorch-snapshot")

    assert "2181 created" in out
    assert "0 created, 0 updated, 2181 unchanged" in again
    build = Build.objects.get(filename=TORCHVISION)
    assert build.sha256 == _raw(SNAPSHOT)["packages"][TORCHVISION]["sha256"]


def test_import_repodata_command_withdraw_missing_flag_withdraws(snapshot_channel, tmp_path):
    _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot", "--no-progress")
    shrunk = _snapshot_variant(tmp_path, lambda raw: raw["packages"].pop(TORCHVISION))

    out, _ = _run_command(str(shrunk), "--channel", "pytorch-snapshot", "--withdraw-missing")

    assert "1 withdrawn" in out
    assert Build.objects.get(filename=TORCHVISION).state == Build.State.WITHDRAWN


# --- bad input: a clear message, a non-zero exit, nothing written ----------------------------


@pytest.fixture
def populated_channel(snapshot_channel):
    """The snapshot channel already holding the pytorch lockfile's linux-64 builds."""
    import_repodata(
        channel=snapshot_channel, source=str(LOCKFILE / "pytorch" / "linux-64" / "repodata.json")
    )
    return snapshot_channel


def _set_field(field, value):
    def mutate(raw):
        raw["packages"][TORCHVISION][field] = value

    return mutate


def _append_depends(spec):
    def mutate(raw):
        raw["packages"][TORCHVISION]["depends"].append(spec)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_set_field("version", "1!!x"), "invalid version '1!!x'", id="version"),
        pytest.param(_set_field("md5", "zz"), "failed to parse digest", id="md5"),
        pytest.param(_set_field("build", None), "missing or invalid 'build'", id="build"),
        pytest.param(_set_field("version", "1." * 40 + "0"), "longer than 64", id="long-version"),
    ],
)
def test_import_repodata_command_bad_record_names_file_and_record(
    populated_channel, tmp_path, mutate, expected
):
    bad = _snapshot_variant(tmp_path, mutate)
    before = _builds_table()

    with pytest.raises(CommandError) as excinfo:
        _run_command(str(bad), "--channel", "pytorch-snapshot", "--withdraw-missing")

    message = str(excinfo.value)
    assert message.startswith("Nothing imported:")
    assert str(bad) in message
    assert f"record {TORCHVISION}" in message
    assert expected in message
    assert _builds_table() == before


def test_import_repodata_command_strict_refuses_a_file_with_an_unreadable_spec(
    populated_channel, tmp_path
):
    bad = _snapshot_variant(tmp_path, _append_depends("b >=<1"))
    before = _builds_table()

    with pytest.raises(CommandError) as excinfo:
        _run_command(str(bad), "--channel", "pytorch-snapshot", "--strict")

    assert f"record {TORCHVISION}: invalid depends spec 'b >=<1'" in str(excinfo.value)
    assert _builds_table() == before


def test_import_repodata_command_imports_the_rest_and_names_unplannable_builds(
    snapshot_channel, tmp_path
):
    # The spec real conda-forge noarch repodata carries (pytorch-lightning).
    bad = _snapshot_variant(tmp_path, _append_depends("fsspec[http] >2021.06.0"))

    out, _ = _run_command(str(bad), "--channel", "pytorch-snapshot", "--no-progress")

    assert Build.objects.filter(channel=snapshot_channel).count() == 2181
    assert "1 build(s) imported but not plannable" in out
    assert f"  {TORCHVISION}: fsspec[http] >2021.06.0" in out
    kept = Build.objects.get(channel=snapshot_channel, filename=TORCHVISION)
    assert "fsspec[http] >2021.06.0" in kept.depends
    assert "fsspec" not in kept.depends_names


def test_an_imported_build_with_an_unreadable_spec_is_unplannable_with_the_reason(
    snapshot_channel, tmp_path
):
    from testing_app.planner.engine import Planner
    from testing_app.planner.types import Catalog
    from testing_app.planner.types import Manual
    from testing_app.selectors.planning import records_of

    bad = _snapshot_variant(tmp_path, _append_depends("fsspec[http] >2021.06.0"))
    _run_command(str(bad), "--channel", "pytorch-snapshot", "--no-progress")
    build = Build.objects.filter(filename=TORCHVISION)

    plan = Planner(Catalog(releases=[], variants={}, platforms={}, evidence=[])).plan(
        Manual(builds=tuple(records_of(build)))
    )
    ((build_id, reason),) = plan.unplannable
    assert build_id == build.get().pk
    assert "fsspec[http] >2021.06.0" in reason


def _truncated(tmp_path: Path) -> Path:
    data = SNAPSHOT.read_bytes()
    target = tmp_path / "linux-64" / "repodata.json"
    target.parent.mkdir()
    target.write_bytes(data[: len(data) * 2 // 3])
    return target


def _text_file(content: str):
    def make(tmp_path: Path) -> Path:
        target = tmp_path / "linux-64" / "repodata.json"
        target.parent.mkdir()
        target.write_text(content)
        return target

    return make


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(_truncated, "not valid JSON (truncated or malformed)", id="truncated"),
        pytest.param(
            _text_file('{"packages": {"a-1-0.tar.bz2": {"name": "a",}}}'),
            "not valid JSON (truncated or malformed) at line 1",
            id="malformed",
        ),
        pytest.param(
            _text_file('{"channeldata_version": 1, "subdirs": ["linux-64"]}'),
            "not a repodata.json",
            id="not-repodata",
        ),
        pytest.param(_text_file("[]"), "not a repodata.json", id="json-list"),
        pytest.param(
            _text_file('{"packages": ["a-1-0.tar.bz2"]}'),
            "'packages' must map file names to records",
            id="packages-list",
        ),
    ],
)
def test_import_repodata_command_bad_file_names_file(populated_channel, tmp_path, make, expected):
    bad = make(tmp_path)
    before = _builds_table()

    with pytest.raises(CommandError) as excinfo:
        _run_command(str(bad), "--channel", "pytorch-snapshot", "--withdraw-missing")

    assert str(bad) in str(excinfo.value)
    assert expected in str(excinfo.value)
    assert _builds_table() == before


def test_import_repodata_command_missing_file_names_file(populated_channel, tmp_path):
    missing = tmp_path / "linux-64" / "repodata.json"
    before = _builds_table()

    with pytest.raises(CommandError, match="no such file") as excinfo:
        _run_command(str(missing), "--channel", "pytorch-snapshot")

    assert str(missing) in str(excinfo.value)
    assert _builds_table() == before


def test_import_repodata_command_unsupported_scheme_names_url(populated_channel):
    before = _builds_table()

    with pytest.raises(CommandError, match="unsupported URL scheme 'ftp'") as excinfo:
        _run_command("ftp://127.0.0.1/linux-64/repodata.json", "--channel", "pytorch-snapshot")

    assert "ftp://127.0.0.1/linux-64/repodata.json" in str(excinfo.value)
    assert _builds_table() == before


def test_import_repodata_command_http_404_names_url(populated_channel, http_base_url):
    url = f"{http_base_url}/osx-64/repodata.json"
    before = _builds_table()

    with pytest.raises(CommandError, match="404") as excinfo:
        _run_command(url, "--channel", "pytorch-snapshot")

    assert url in str(excinfo.value)
    assert "download failed" in str(excinfo.value)
    assert _builds_table() == before


def test_import_repodata_command_unknown_channel_lists_configured_channels(populated_channel):
    ChannelFactory(name="pytorch", label="test")
    before = _builds_table()

    with pytest.raises(CommandError) as excinfo:
        _run_command(str(SNAPSHOT), "--channel", "no-such-channel")

    message = str(excinfo.value)
    assert "Unknown channel 'no-such-channel'" in message
    assert "pytorch-snapshot" in message
    assert "pytorch/label/test" in message
    assert _builds_table() == before


def test_import_repodata_command_unknown_label_names_label(populated_channel):
    with pytest.raises(CommandError, match="with label 'nightly'"):
        _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot", "--label", "nightly")


def test_import_repodata_command_no_channels_suggests_seed_reference():
    with pytest.raises(CommandError, match="none \\(run seed_reference\\)"):
        _run_command(str(SNAPSHOT), "--channel", "pytorch-snapshot")


@pytest.mark.django_db(transaction=True)
def test_import_repodata_manage_py_bad_file_exits_non_zero(tmp_path):
    # A real `manage.py` process on the test database (committed rows: transaction=True).
    ChannelFactory(name="pytorch-snapshot", label="", url=SNAPSHOT_CHANNEL.as_uri())
    bad = _truncated(tmp_path)
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "import_repodata", str(bad), "--channel", "pytorch-snapshot"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "Nothing imported" in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr
    assert not Build.objects.exists()
