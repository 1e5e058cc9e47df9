"""The demo's sample channel: package files built once, repodata written by rattler's index_fs
and checked here against the files themselves (checksums computed independently)."""

import hashlib
import json

import pytest
from django.conf import settings

from packages_app.adapters.sample_channel import SampleChannelError
from packages_app.adapters.sample_channel import build_sample_channel
from packages_app.adapters.sample_channel import index_channel

SUBDIR = "linux-64"


def test_repodata_lists_every_sample_with_the_files_checksums(tmp_path):
    channel = build_sample_channel(
        sources=settings.DEMO_DATA_DIR / "samples", target=tmp_path / "samples", subdir=SUBDIR
    )
    repodata = json.loads((tmp_path / "samples" / SUBDIR / "repodata.json").read_text())
    records = repodata["packages.conda"]
    assert set(records) == {p.filename for p in channel.packages}
    for package in channel.packages:
        data = package.path.read_bytes()
        record = records[package.filename]
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["size"] == len(data)
        assert (record["name"], record["version"]) == (package.name, package.version)
    noarch = json.loads((tmp_path / "samples" / "noarch" / "repodata.json").read_text())
    assert not noarch.get("packages")
    assert not noarch.get("packages.conda")


def test_rebuild_keeps_the_files_and_their_checksums(tmp_path):
    sources = settings.DEMO_DATA_DIR / "samples"
    first = build_sample_channel(sources=sources, target=tmp_path / "s", subdir=SUBDIR)
    before = {p.filename: p.path.read_bytes() for p in first.packages}
    second = build_sample_channel(sources=sources, target=tmp_path / "s", subdir=SUBDIR)
    assert {p.filename: p.path.read_bytes() for p in second.packages} == before


def test_a_corrupt_package_file_is_a_clear_indexing_error(tmp_path):
    (tmp_path / "c" / SUBDIR).mkdir(parents=True)
    (tmp_path / "c" / "noarch").mkdir()
    (tmp_path / "c" / SUBDIR / "broken-1.0-0.conda").write_bytes(b"not a zip file")
    with pytest.raises(SampleChannelError, match="indexing"):
        index_channel(tmp_path / "c")
