"""No traversal: names that become paths are refused where they enter, with the record named.

Each case is a real file an attacker could publish: a .conda (zip of zstd tars) and a .tar.bz2
whose members climb out with `..` or are absolute, and repodata.json files whose `info.subdir`,
record keys or record `subdir` point elsewhere. The oracle for the known subdirs is conda's own
list (conda/base/constants.py, KNOWN_SUBDIRS in conda 24.x).
"""

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from backports import zstd
from django.core.management import call_command
from django.core.management.base import CommandError

from packages_app.adapters.conda_names import UnsafeName
from packages_app.adapters.conda_names import check_filename
from packages_app.adapters.conda_names import check_member
from packages_app.adapters.conda_names import check_subdir
from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import parse_repodata_file
from packages_app.models import Build
from testing_app.adapters.downloads import DownloadError
from testing_app.adapters.downloads import fetch_artifact
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.local_channel import place_package
from testing_app.adapters.rattler_runner import PackageReadError
from testing_app.adapters.rattler_runner import read_package_tests
from testing_app.services.conda_runner import RATTLER_RUNNER_SCRIPT
from tests.factories import ChannelFactory

# conda 24.x conda/base/constants.py KNOWN_SUBDIRS (PLATFORM_DIRECTORIES).
CONDA_KNOWN_SUBDIRS = (
    "noarch",
    "emscripten-wasm32",
    "wasi-wasm32",
    "freebsd-64",
    "linux-32",
    "linux-64",
    "linux-aarch64",
    "linux-armv6l",
    "linux-armv7l",
    "linux-ppc64",
    "linux-ppc64le",
    "linux-riscv64",
    "linux-s390x",
    "osx-64",
    "osx-arm64",
    "win-32",
    "win-64",
    "win-arm64",
    "zos-z",
)
BAD_SUBDIRS = ("../../..", "/etc", "linux-64/../..", "", "linux-65", "noarch/", "..")
BAD_FILENAMES = (
    "../x.conda",
    "sub/x.conda",
    "/abs/x.conda",
    "..\\x.conda",
    ".hidden.conda",
    "x.conda\0.txt",
    "x.whl",
)
INDEX = {"name": "evil", "version": "1.0", "build": "0", "build_number": 0, "subdir": "noarch"}


def _tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_conda(path: Path, info_members: dict[str, bytes]) -> Path:
    """A real .conda: a zip with metadata.json, info-<stem>.tar.zst and pkg-<stem>.tar.zst."""
    stem = path.name.removesuffix(".conda")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        archive.writestr(f"pkg-{stem}.tar.zst", zstd.compress(_tar_bytes({})))
        archive.writestr(f"info-{stem}.tar.zst", zstd.compress(_tar_bytes(info_members)))
    return path


def write_tar_bz2(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(_tar_bytes(members, mode="w:bz2"))
    return path


def _info(index: dict | None = None, **extra: bytes) -> dict[str, bytes]:
    return {"info/index.json": json.dumps(index or INDEX).encode(), **extra}


@pytest.mark.parametrize("subdir", CONDA_KNOWN_SUBDIRS)
def test_every_subdir_conda_knows_is_accepted(subdir):
    assert check_subdir(subdir) == subdir


@pytest.mark.parametrize("subdir", BAD_SUBDIRS)
def test_subdirs_that_are_paths_or_unknown_are_refused(subdir):
    with pytest.raises(UnsafeName, match="not a known conda platform"):
        check_subdir(subdir)


@pytest.mark.parametrize("filename", BAD_FILENAMES)
def test_file_names_with_folders_dots_or_other_suffixes_are_refused(filename):
    with pytest.raises(UnsafeName):
        check_filename(filename)


def test_members_climbing_out_or_absolute_are_refused():
    assert str(check_member("info/test/run_test.sh")) == "info/test/run_test.sh"
    for name in ("info/test/../../escape", "/etc/passwd", "../x", "info\\..\\x"):
        with pytest.raises(UnsafeName, match="points outside"):
            check_member(name)


@pytest.mark.parametrize("suffix", [".conda", ".tar.bz2"])
def test_package_with_a_climbing_test_member_is_refused_by_the_runner(tmp_path, suffix):
    croot = tmp_path / "croot"
    members = _info(**{"info/test/../../../escaped.sh": b"echo escaped\n"})
    members["info/test/run_test.sh"] = b"true\n"
    path = tmp_path / f"evil-1.0-0{suffix}"
    (write_conda if suffix == ".conda" else write_tar_bz2)(path, members)

    with pytest.raises(PackageReadError, match=r"info/test/\.\./\.\./\.\./escaped\.sh"):
        read_package_tests(path)
    result = subprocess.run(  # noqa: S603 - fixed argument list
        [sys.executable, str(RATTLER_RUNNER_SCRIPT), "--test", str(path), "--croot", str(croot)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "points outside its folder" in result.stdout
    assert list(tmp_path.rglob("escaped.sh")) == []


def test_package_whose_index_names_a_climbing_subdir_is_refused(tmp_path):
    path = write_conda(
        tmp_path / "evil-1.0-0.conda",
        _info({**INDEX, "subdir": "../../outside"}, **{"info/test/run_test.sh": b"true\n"}),
    )
    with pytest.raises(PackageReadError, match=r"subdir '\.\./\.\./outside' is not known"):
        read_package_tests(path)


def _repodata(tmp_path: Path, *, subdir="linux-64", records: dict) -> Path:
    target = tmp_path / "linux-64" / "repodata.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"info": {"subdir": subdir}, "packages.conda": records}))
    return target


def _record(**fields) -> dict:
    return {
        "name": "evil",
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": [],
        "subdir": "linux-64",
        "sha256": "a" * 64,
        **fields,
    }


@pytest.mark.parametrize("subdir", ["../../..", "/etc", "linux-64/../../x"])
def test_repodata_with_a_climbing_info_subdir_is_refused(tmp_path, subdir):
    path = _repodata(tmp_path, subdir=subdir, records={"evil-1.0-0.conda": _record()})
    with pytest.raises(RepodataError, match="info: subdir .* is not a known conda platform"):
        parse_repodata_file(path)


@pytest.mark.parametrize("filename", ["../x.conda", "sub/x.conda", "/abs/x.conda"])
def test_repodata_with_a_climbing_file_name_is_refused_with_the_record_named(tmp_path, filename):
    records = {"good-1.0-0.conda": _record(name="good"), filename: _record()}
    path = _repodata(tmp_path, records=records)
    with pytest.raises(RepodataError, match=f"record {filename!r}: file name"):
        parse_repodata_file(path)


def test_repodata_record_with_a_climbing_subdir_is_refused_with_the_record_named(tmp_path):
    path = _repodata(tmp_path, records={"evil-1.0-0.conda": _record(subdir="../../..")})
    with pytest.raises(RepodataError, match="record 'evil-1.0-0.conda': subdir"):
        parse_repodata_file(path)


@pytest.mark.django_db
def test_import_repodata_refuses_the_file_and_writes_nothing(tmp_path):
    channel = ChannelFactory(name="upstream-evil")
    path = _repodata(tmp_path, subdir="../../..", records={"evil-1.0-0.conda": _record()})

    with pytest.raises(CommandError, match="not a known conda platform"):
        call_command("import_repodata", str(path), "--channel", channel.name, stdout=io.StringIO())

    assert not Build.objects.exists()


def test_place_package_refuses_names_that_leave_the_channel(tmp_path):
    source = write_conda(tmp_path / "evil-1.0-0.conda", _info())
    root = tmp_path / "channel" / "target"
    root.mkdir(parents=True)
    for subdir, filename in (("../..", source.name), ("linux-64", "../../evil-1.0-0.conda")):
        with pytest.raises(LocalChannelError, match="refusing to place"):
            place_package(source=source, root=root, subdir=subdir, filename=filename, sha256="")
    assert sorted(p.name for p in tmp_path.rglob("*.conda")) == ["evil-1.0-0.conda"]


@pytest.mark.parametrize(
    ("filename", "sha256"),
    [("../evil-1.0-0.conda", "a" * 64), ("evil-1.0-0.conda", "../../" + "a" * 58)],
)
def test_download_refuses_names_and_digests_that_leave_the_cache(tmp_path, filename, sha256):
    source = write_conda(tmp_path / "evil-1.0-0.conda", _info())
    cache = tmp_path / "cache" / "artifacts"
    with pytest.raises(DownloadError, match="refusing unsafe|not a hex digest"):
        fetch_artifact(url=source.as_uri(), filename=filename, cache_dir=cache, sha256=sha256)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))
