"""The repodata adapter: real repodata.json files in, validated records or a RepodataError out."""

import json
import os
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings

from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import parse_repodata_file
from packages_app.adapters.repodata import read_repodata

CHANNELS_DIR = settings.DEMO_DATA_DIR / "channels"
SNAPSHOT = CHANNELS_DIR / "pytorch-snapshot" / "linux-64" / "repodata.json"
CONDA_FORGE_LINUX = CHANNELS_DIR / "lockfile" / "conda-forge" / "linux-64" / "repodata.json"
TORCHVISION = "torchvision-0.16.0-py310_cu121.tar.bz2"


def _raw(path: Path) -> dict:
    return json.loads(path.read_bytes())


def _write_variant(tmp_path: Path, mutate) -> Path:
    """A copy of the real snapshot in <tmp>/linux-64/, changed by `mutate(raw)`."""
    raw = _raw(SNAPSHOT)
    mutate(raw)
    target = tmp_path / "linux-64" / "repodata.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(raw))
    return target


def test_parse_repodata_file_real_snapshot_keeps_every_record_field():
    parsed = parse_repodata_file(SNAPSHOT)

    raw = _raw(SNAPSHOT)["packages"]
    assert parsed.subdir == "linux-64"
    assert len(parsed.records) == len(raw) == 2181
    assert {r.filename for r in parsed.records} == set(raw)
    record = next(r for r in parsed.records if r.filename == TORCHVISION)
    expected = raw[TORCHVISION]
    assert (record.name, record.version, record.build_string) == (
        "torchvision",
        "0.16.0",
        "py310_cu121",
    )
    assert record.depends == expected["depends"]
    assert "pytorch 2.1.0" in record.depends
    assert "pytorch-cuda 12.1.*" in record.depends
    assert record.constrains == expected["constrains"] == ["cpuonly <0"]
    assert record.license == expected["license"]
    assert record.md5 == expected["md5"]
    assert record.sha256 == expected["sha256"]
    assert record.size == expected["size"]
    assert record.timestamp == datetime.fromtimestamp(expected["timestamp"] / 1000, tz=UTC)
    assert {"pytorch", "pytorch-cuda", "python", "pytorch-mutex"} <= set(record.depends_names)
    assert record.depends_names == sorted(set(record.depends_names))


def test_parse_repodata_file_track_features_kept_as_space_separated_string():
    parsed = parse_repodata_file(SNAPSHOT)

    record = next(r for r in parsed.records if r.filename == "cuda100-1.0-0.tar.bz2")
    assert record.track_features == "cuda100"


def test_parse_repodata_file_lockfile_subdir_reads_packages_conda_too():
    parsed = parse_repodata_file(CONDA_FORGE_LINUX)

    raw = _raw(CONDA_FORGE_LINUX)
    conda_files = {r.filename for r in parsed.records if r.filename.endswith(".conda")}
    assert conda_files == set(raw["packages.conda"])
    assert len(parsed.records) == len(raw["packages"]) + len(raw["packages.conda"])
    filename, expected = next(iter(raw["packages.conda"].items()))
    record = next(r for r in parsed.records if r.filename == filename)
    assert (record.sha256, record.md5, record.size) == (
        expected["sha256"],
        expected["md5"],
        expected["size"],
    )


def test_record_digest_same_record_is_stable_and_changes_with_depends(tmp_path):
    first = {r.filename: r.digest for r in parse_repodata_file(SNAPSHOT).records}
    again = {r.filename: r.digest for r in parse_repodata_file(SNAPSHOT).records}
    patched_path = _write_variant(
        tmp_path, lambda raw: raw["packages"][TORCHVISION]["depends"].append("requests >=2")
    )
    patched = {r.filename: r.digest for r in parse_repodata_file(patched_path).records}

    assert first == again
    assert {name for name in first if first[name] != patched[name]} == {TORCHVISION}


def test_read_repodata_relative_path_reads_the_file(monkeypatch):
    monkeypatch.chdir(settings.BASE_DIR)

    parsed = read_repodata(os.path.relpath(SNAPSHOT, settings.BASE_DIR))

    assert len(parsed.records) == 2181


def test_read_repodata_file_url_reads_the_file():
    parsed = read_repodata(SNAPSHOT.as_uri())

    assert parsed.source == SNAPSHOT.as_uri()
    assert len(parsed.records) == 2181


def test_read_repodata_non_utf8_bytes_raises_naming_file(tmp_path):
    path = tmp_path / "repodata.json"
    path.write_bytes(b"\x28\xb5\x2f\xfd\x00\x58\xff\xfe")  # zstd magic: a .zst saved as .json

    with pytest.raises(RepodataError, match="not valid JSON") as excinfo:
        read_repodata(str(path))

    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("md5", "not-a-digest"),
        ("timestamp", "yesterday"),
        ("build_number", -1),
        ("depends", "pytorch"),
    ],
)
def test_read_repodata_field_rattler_rejects_raises_naming_file_and_record(tmp_path, field, value):
    def mutate(raw):
        raw["packages"][TORCHVISION][field] = value

    path = _write_variant(tmp_path, mutate)

    with pytest.raises(RepodataError) as excinfo:
        read_repodata(str(path))

    assert str(path) in str(excinfo.value)
    assert f"record {TORCHVISION}" in str(excinfo.value)


def test_read_repodata_invalid_constrains_spec_raises_naming_record_and_spec(tmp_path):
    path = _write_variant(
        tmp_path, lambda raw: raw["packages"][TORCHVISION]["constrains"].append("c >=1,<<2")
    )

    with pytest.raises(RepodataError) as excinfo:
        read_repodata(str(path))

    message = str(excinfo.value)
    assert f"record {TORCHVISION}" in message
    assert "constrains" in message
    assert "'c >=1,<<2'" in message


def test_read_repodata_empty_packages_returns_no_records(tmp_path):
    path = tmp_path / "noarch" / "repodata.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"info": {"subdir": "noarch"}, "packages": {}}))

    parsed = read_repodata(str(path))

    assert (parsed.subdir, parsed.records) == ("noarch", [])
