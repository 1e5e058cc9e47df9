"""The demo's sample channel: packages built by rattler-build from the v1 recipes in
demo_data/samples/recipes (cached by recipe hash), the conda-build-layout ones assembled, and
the repodata written by rattler's index_fs, checked here against the files themselves
(checksums computed independently) and against a fresh index_fs run."""

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import conda_package_handling.api as cph
import pytest
import yaml
from conda_package_streaming.package_streaming import stream_conda_component
from django.conf import settings

from packages_app.adapters.sample_build import BUILT_LIST
from packages_app.adapters.sample_build import SampleBuildError
from packages_app.adapters.sample_build import build_recipes
from packages_app.adapters.sample_build import host_stand_in_variables
from packages_app.adapters.sample_build import rattler_build_version
from packages_app.adapters.sample_build import recipe_key
from packages_app.adapters.sample_channel import SampleChannelError
from packages_app.adapters.sample_channel import build_sample_channel
from packages_app.adapters.sample_channel import index_channel
from tests.testing_app.planning_world import PYTHON_SAMPLES

pytest.importorskip("rattler_build")

SUBDIR = "linux-64"
SOURCES = settings.DEMO_DATA_DIR / "samples"
ROOT = Path(__file__).resolve().parents[2]


def _build(target: Path, cache: Path | None = None, sources: Path = SOURCES):
    cache = cache or settings.SAMPLE_BUILD_CACHE_DIR
    return build_sample_channel(sources=sources, target=target, subdir=SUBDIR, cache=cache)


def _info_members(path: Path) -> dict[str, bytes]:
    with path.open("rb") as fileobj:
        return {
            member.name: tar.extractfile(member).read()
            for tar, member in stream_conda_component(path.name, fileobj, "info")
            if member.isfile()
        }


def test_the_recipes_samples_are_rattler_builds_and_the_legacy_ones_conda_build_layout(tmp_path):
    channel = _build(tmp_path / "samples")

    builders = {p.name: p.builder for p in channel.packages}
    assert builders == {
        "pytorch": "rattler-build",
        "sample-passes": "rattler-build",
        "sample-fails-on-torch-2-5": "rattler-build",
        "sample-unsatisfiable": "rattler-build",
        "sample-no-tests": "rattler-build",
        "sample-legacy-layout": "conda-package-handling",
    }
    for package in channel.packages:
        info = _info_members(package.path)
        index = json.loads(info["info/index.json"])
        assert (index["name"], index["version"], index["build"], index["subdir"]) == (
            package.name, package.version, package.build, SUBDIR,
        )  # fmt: skip
        if package.builder == "rattler-build":
            # rattler-build's own marks: the v1 recipe and tests.yaml (`[]` without tests).
            assert "info/recipe/recipe.yaml" in info
            tests = yaml.safe_load(info["info/tests/tests.yaml"])
            assert bool(tests) == (package.name != "sample-no-tests")
            assert not any(name.startswith("info/test/") for name in info)
        else:
            assert "info/test/run_test.sh" in info
            assert "info/tests/tests.yaml" not in info
    (passes,) = [p for p in channel.packages if p.name == "sample-passes"]
    tests = _info_members(passes.path)["info/tests/tests.yaml"].decode()
    assert "check-torch.sh" in tests  # the test's `files:`, run from its cwd
    assert {p.version for p in channel.packages if p.name == "pytorch"} == {"2.4.1", "2.5.1"}


def test_repodata_is_index_fs_output_with_the_files_checksums(tmp_path):
    channel = _build(tmp_path / "samples")
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
    # The same files indexed afresh by index_fs give the same repodata (but for the time of
    # indexing it stamps on each record): nothing in it was written by hand.
    fresh = tmp_path / "fresh"
    (fresh / "noarch").mkdir(parents=True)
    shutil.copytree(
        tmp_path / "samples" / SUBDIR, fresh / SUBDIR, ignore=lambda *_: ["repodata.json"]
    )
    index_channel(fresh)
    again = json.loads((fresh / SUBDIR / "repodata.json").read_text())
    assert _without_index_time(again) == _without_index_time(repodata)


def _without_index_time(repodata: dict) -> dict:
    for record in repodata["packages.conda"].values():
        record.pop("indexed_timestamp", None)
    return repodata


def test_rebuild_keeps_the_files_and_their_checksums(tmp_path):
    first = _build(tmp_path / "s")
    before = {p.filename: p.path.read_bytes() for p in first.packages}
    second = _build(tmp_path / "s")
    assert {p.filename: p.path.read_bytes() for p in second.packages} == before


def test_the_build_cache_is_keyed_by_the_recipe_and_rattler_build_version(tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES, sources)
    cache = tmp_path / "cache"
    first = _build(tmp_path / "a", cache=cache, sources=sources)
    recipe = sources / "recipes" / "sample-no-tests"
    entry = cache / f"sample-no-tests-{recipe_key(recipe, rattler_build_version())[:20]}"
    listed = (entry / BUILT_LIST).stat().st_mtime_ns

    again = _build(tmp_path / "b", cache=cache, sources=sources)  # a new channel, same cache
    assert (entry / BUILT_LIST).stat().st_mtime_ns == listed  # not rebuilt
    assert _rattler_built(again) == _rattler_built(first)  # the very same files

    (recipe / "recipe.yaml").write_text(
        (recipe / "recipe.yaml").read_text().replace("version: 1.0.0", "version: 1.0.1")
    )
    changed = _build(tmp_path / "c", cache=cache, sources=sources)
    assert ("sample-no-tests", "1.0.1") in {(p.name, p.version) for p in changed.packages}
    assert len(list(cache.glob("sample-no-tests-*"))) == 2
    assert recipe_key(recipe, "0.73.0") != recipe_key(recipe, "0.74.0")


def _rattler_built(channel) -> dict[str, bytes]:
    return {
        p.filename: p.path.read_bytes() for p in channel.packages if p.builder == "rattler-build"
    }


def test_host_variables_key_only_the_recipes_that_name_them():
    version = rattler_build_version()
    variables = host_stand_in_variables()
    other = {**variables, "SAMPLE_HOST_PYTHON_VERSION": "3.99.0"}
    python = PYTHON_SAMPLES / "python"
    sample = PYTHON_SAMPLES / "sample-python-tests"

    assert recipe_key(python, version, variables) != recipe_key(python, version, other)
    assert recipe_key(sample, version, variables) == recipe_key(sample, version, other)
    # A recipe naming none keys as before host variables existed (the demo's caches stay).
    assert recipe_key(sample, version, variables) == recipe_key(sample, version)


def test_without_pip_next_to_this_python_the_pip_stand_in_is_a_clear_error(tmp_path, monkeypatch):
    found = importlib.metadata.distribution

    def without_pip(name):
        if name == "pip":
            raise importlib.metadata.PackageNotFoundError(name)
        return found(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_pip)
    with pytest.raises(SampleBuildError, match="pip: this Python cannot give SAMPLE_HOST_PIP_SITE"):
        build_recipes(recipes=PYTHON_SAMPLES, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/built.json"))  # nothing built


def test_python_stand_in_runs_this_interpreter_on_its_prefix_site_packages_only(tmp_path):
    built = build_recipes(recipes=PYTHON_SAMPLES, cache=settings.SAMPLE_BUILD_CACHE_DIR)
    (python,) = [p for p in built if p.name == "python"]
    (pip,) = [p for p in built if p.name == "pip"]
    assert python.version == platform.python_version()
    assert (python.build, pip.build) == ("host_interpreter_stand_in_0", "host_pip_stand_in_0")
    assert pip.version == host_stand_in_variables()["SAMPLE_HOST_PIP_VERSION"]
    prefix = tmp_path / "prefix"
    cph.extract(str(python.path), dest_dir=str(prefix))
    xy = ".".join(platform.python_version_tuple()[:2])
    site_packages = prefix / "lib" / f"python{xy}" / "site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "probe_module.py").write_text("WHERE = __file__\n")
    program = "import probe_module, sys; print(probe_module.WHERE); print(sys.version)"

    shown = subprocess.run(
        [prefix / "bin" / "python", "-c", program], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # The environment's own packages and nothing of this project's: django is installed
    # next to this interpreter, not in the prefix, so it stays out of sight.
    hidden = subprocess.run(
        [prefix / "bin" / "python", "-c", "import django"], capture_output=True, text=True
    )

    assert shown == [str(site_packages / "probe_module.py"), sys.version.splitlines()[0]]
    assert hidden.returncode == 1
    assert "No module named 'django'" in hidden.stderr
    assert os.path.realpath(sys._base_executable) in (prefix / "bin" / "python").read_text()


def test_a_recipe_that_does_not_build_is_a_clear_error(tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES, sources)
    broken = sources / "recipes" / "sample-no-tests" / "recipe.yaml"
    broken.write_text(broken.read_text().replace("    - mkdir -p", "    - exit 3 && mkdir -p"))
    with pytest.raises(SampleChannelError, match="rattler-build failed"):
        _build(tmp_path / "x", cache=tmp_path / "cache", sources=sources)
    assert not list((tmp_path / "cache").glob("sample-no-tests-*"))  # nothing half-cached


def test_a_corrupt_package_file_is_a_clear_indexing_error(tmp_path):
    (tmp_path / "c" / SUBDIR).mkdir(parents=True)
    (tmp_path / "c" / "noarch").mkdir()
    (tmp_path / "c" / SUBDIR / "broken-1.0-0.conda").write_bytes(b"not a zip file")
    with pytest.raises(SampleChannelError, match="indexing"):
        index_channel(tmp_path / "c")


# The places in the project that write a repodata.json themselves, both for channels of records
# without their package files, which index_fs (it indexes the files present in a folder) cannot
# make: the rattler-build path's pin channels (records of other channels, info.base_url) and
# the solver's candidate channel (records read from the database).
HAND_WRITTEN_REPODATA_ALLOWED = {
    "testing_app/adapters/rattler_build_path.py",
    "testing_app/adapters/solver.py",
}


def test_no_repodata_is_written_by_hand_where_index_fs_can_index_the_channel():
    writes = re.compile(r"repodata\.json\"?\)?\s*\)?\.write_(text|bytes)|json\.dump\(.*repodata")
    writers = {
        path.relative_to(ROOT).as_posix()
        for app in ("packages_app", "testing_app", "distro_site")
        for path in (ROOT / app).rglob("*.py")
        if writes.search(path.read_text())
    }
    assert writers == HAND_WRITTEN_REPODATA_ALLOWED
