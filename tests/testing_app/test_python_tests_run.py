"""Python tests (`python: imports`, `pip_check`) of rattler-build packages, really run: by
rattler-build itself (py-rattler-build's run_tests), by the rattler runner's emulation, and as
test jobs through the sandbox. The packages are built by rattler-build from
recipes/python-samples, with STAND-INS for python and pip that wrap the interpreter running
these tests (no python package is available offline; real hosts use real channels)."""

from pathlib import Path

import pytest

from packages_app.services.sync import sync_channels
from testing_app.services.execution import execute_job
from tests.testing_app.planning_world import add_python_samples
from tests.testing_app.planning_world import sample_world
from tests.testing_app.test_conda_runner import _log
from tests.testing_app.test_rattler_runner import _run_script
from tests.testing_app.test_rattler_runner import _test_job
from tests.testing_app.test_rattler_runner import _without_rattler_build

pytestmark = pytest.mark.django_db

PIP_CHECK_FAILURE = (
    "sample-python-pip-check-fails 1.0.0 requires sample-missing-dependency, "
    "which is not installed."
)


@pytest.fixture
def world(tmp_path, settings):
    pytest.importorskip("rattler_build")
    settings.CONDA_PKGS_DIR = tmp_path / "pkgs"
    settings.CONDA_BUILD_CROOT_DIR = tmp_path / "croot"
    world = sample_world(tmp_path)
    add_python_samples(world)
    sync_channels(channels=[world.channel], plan=False)
    return world


def _file(world, name: str) -> Path:
    (path,) = world.sample.root.glob(f"*/{name}-1.0.0-*.conda")
    return path


def test_rattler_build_runs_the_imports_and_pip_check_and_gives_both_verdicts(world, tmp_path):
    good = _run_script(_file(world, "sample-python-tests"), world.sample.url, tmp_path / "a")
    bad = _run_script(
        _file(world, "sample-python-pip-check-fails"), world.sample.url, tmp_path / "b"
    )

    assert good.returncode == 0, good.stdout + good.stderr
    assert "run by rattler-build" in good.stdout
    # The stand-ins are what rattler-build installed into the test environment.
    assert "host_interpreter_stand_in_0" in good.stdout
    assert "host_pip_stand_in_0" in good.stdout
    assert "python imports test passed" in good.stdout
    assert "No broken requirements found." in good.stdout
    assert "pip check passed" in good.stdout
    assert good.stdout.rstrip().endswith("All tests passed")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "python imports test passed" in bad.stdout  # the import works, pip check does not
    assert PIP_CHECK_FAILURE in bad.stdout
    assert "TESTS FAILED: sample-python-pip-check-fails-1.0.0-sample_0.conda" in bad.stdout


def test_the_emulation_runs_the_same_python_tests_with_the_same_verdicts(world, tmp_path):
    hidden = _without_rattler_build(tmp_path)
    good = _run_script(
        _file(world, "sample-python-tests"), world.sample.url, tmp_path / "c", env=hidden
    )
    bad = _run_script(
        _file(world, "sample-python-pip-check-fails"), world.sample.url, tmp_path / "d", env=hidden
    )

    assert good.returncode == 0, good.stdout + good.stderr
    assert "run by rattler-build" not in good.stdout
    assert "No broken requirements found." in good.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert PIP_CHECK_FAILURE in bad.stdout


def test_python_test_jobs_run_sandboxed_by_rattler_build(world):
    passed = execute_job(job_id=_test_job(world, "sample-python-tests", "2.4.1").pk)
    failed = execute_job(job_id=_test_job(world, "sample-python-pip-check-fails", "2.4.1").pk)

    assert (passed.verdict, passed.runner) == ("passed", "rattler-build"), _log(passed)
    log = _log(passed)
    assert "sandbox: bubblewrap as nobody" in log  # the stand-in's interpreter is visible there
    assert "python imports test passed" in log
    assert "No broken requirements found." in log
    assert (failed.verdict, failed.runner) == ("failed", "rattler-build"), _log(failed)
    assert PIP_CHECK_FAILURE in _log(failed)
    assert "requires sample-missing-dependency" in failed.failure_excerpt
