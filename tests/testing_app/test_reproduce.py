"""Reproduce this cell: the script a job page offers reruns the cell and gets its verdict.

conda-build is not installed here, so the script runs with the rattler runner standing in for
it (a `conda-build` on PATH that runs the rattler runner with the same command line), which is
also what a host without conda-build runs.
"""

import os
import stat
import subprocess
import sys

import pytest

from packages_app.services.sync import sync_channels
from testing_app.services.conda_runner import RATTLER_RUNNER_SCRIPT
from testing_app.services.execution import execute_job
from testing_app.services.reproduce import get_reproduction
from tests.testing_app.planning_world import sample_world
from tests.testing_app.test_rattler_runner import _test_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path, settings):
    """The sample channel, synced: real .conda files of the sample packages and the stand-in."""
    settings.CONDA_PKGS_DIR = tmp_path / "pkgs"
    settings.CONDA_BUILD_CROOT_DIR = tmp_path / "croot"
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


@pytest.fixture
def conda_build_stand_in(tmp_path):
    """A directory holding `conda-build`: the rattler runner under conda-build's name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "conda-build"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {RATTLER_RUNNER_SCRIPT} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _run(script: str, workdir, bin_dir, pkgs_dir):
    path = workdir / "reproduce.sh"
    path.write_text(script)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "CONDA_PKGS_DIRS": str(pkgs_dir),
        "HOME": str(workdir),
    }
    return subprocess.run(
        ["bash", str(path), str(workdir / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


# sample-legacy-layout is in conda-build's layout, so its cells are conda-build's to reproduce.
@pytest.mark.parametrize(
    ("release", "verdict", "exit_code"), [("2.4.1", "passed", 0), ("2.5.1", "failed", 1)]
)
def test_the_generated_script_reproduces_the_recorded_verdict(
    world,
    tmp_path,
    conda_build_stand_in,
    release,
    verdict,
    exit_code,
):
    job = execute_job(job_id=_test_job(world, "sample-legacy-layout", release).pk)
    assert job.verdict == verdict

    reproduction = get_reproduction(job)
    result = _run(reproduction.script(), tmp_path, conda_build_stand_in, tmp_path / "pkgs2")

    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert f"{job.build.filename}: OK" in result.stdout  # sha256sum verified the download
    if verdict == "failed":
        assert "TESTS FAILED:" in result.stdout
        assert "does not work with PyTorch 2.5" in output
    else:
        assert result.stdout.rstrip().endswith("All tests passed")
    assert f"pytorch =={release}" in reproduction.pins


def test_reproduction_lists_channels_pins_overrides_and_the_tool(world):
    job = execute_job(job_id=_test_job(world, "sample-legacy-layout", "2.5.1").pk)

    reproduction = get_reproduction(job)

    assert reproduction.tool == "conda-build"
    assert reproduction.channels[0] == world.sample.url
    assert reproduction.pins[:2] == ["pytorch ==2.5.1", "pytorch * cpu*"]
    assert reproduction.environment == {"CONDA_OVERRIDE_GLIBC": "2.28"}
    assert reproduction.test_command[:4] == [
        "conda-build",
        "--test",
        f"./{job.build.filename}",
        "--override-channels",
    ]
    assert reproduction.channel_priority == "strict"
    assert "export CONDA_CHANNEL_PRIORITY=strict" in reproduction.script()
    assert "export CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY=false" in reproduction.script()


def test_job_page_script_download_and_api_say_the_same(client, world):
    job = execute_job(job_id=_test_job(world, "sample-legacy-layout", "2.5.1").pk)
    script = get_reproduction(job).script()

    page = client.get(f"/jobs/{job.pk}/").content.decode()
    download = client.get(f"/jobs/{job.pk}/reproduce.sh")
    api = client.get(f"/api/jobs/{job.pk}/reproduce/").json()

    assert "Reproduce this cell" in page
    assert f"/jobs/{job.pk}/reproduce.sh" in page
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="reproduce-job-{job.pk}.sh"'
    assert download.content.decode() == script
    assert api["script"] == script
    assert api["tool"] == "conda-build"
    assert api["verdict"] == "failed"
