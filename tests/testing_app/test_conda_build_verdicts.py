"""Verdicts as conda-build means them: each way the real conda-build ends a `--test` run outside
the package's own tests (build.py::test, environ.py, render.py, utils.py) is `error`, never
`failed`. The stand-in in tests/fakes prints what the real one prints for each of them; the
runner runs it as a real subprocess."""

import fcntl
import os
import sys
from pathlib import Path

import pytest

from testing_app.adapters.conda_build import ENV_CREATE_FAILED
from testing_app.adapters.conda_build import NOTHING_TO_TEST
from testing_app.adapters.conda_build import PACKAGE_RECORDS_FAILED
from testing_app.adapters.conda_build import SOLVER_ERROR
from testing_app.adapters.conda_build import TESTS_FAILED
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.conda_build import CondaBuildTestRun
from testing_app.adapters.conda_build import _OutputScanner
from testing_app.adapters.conda_build import run_conda_build_test
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.adapters.job_log import read_log_text
from testing_app.models import Job
from testing_app.models import Verdict
from testing_app.services.conda_runner import classify
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import execute_job
from tests import factories
from tests.testing_app.conftest import FAKE_CONDA_BUILD
from tests.testing_app.packages import build_package

# What rattler-build puts in a package instead of info/test/ (a v1 recipe and its tests).
RATTLER_BUILD_INFO = {
    "info/recipe/recipe.yaml": "package:\n  name: torchthing\n  version: 1.0.0\n",
    "info/tests/tests.yaml": "- script:\n  - python -c 'import torchthing'\n",
}


@pytest.fixture(autouse=True)
def _unsandboxed(settings):
    """The runner's own behaviour, outside the test sandbox: the stand-in reads its scenario from
    the environment, which the sandbox's allow-list removes, and py-rattler-build runs tests only
    where isolation is off (docs/operators.md). The sandbox is covered by test_sandbox.py."""
    settings.TEST_ISOLATION = "none"


def _adapter_run(tmp_path, package, *, channels=None, env=None) -> tuple[CondaBuildTestRun, str]:
    log = JobLog(tmp_path / "job.log", redact=Redactor(()), tail_lines=200)
    channel = (tmp_path / "ch").as_uri()
    test = CondaBuildTest(
        binary=str(FAKE_CONDA_BUILD),
        package_path=package,
        channels=channels or [channel],
        extra_deps=["pytorch ==2.5.1"],
        croot=tmp_path / "croot",
    )
    run = run_conda_build_test(
        test,
        env={**os.environ, "CONDA_BUILD_FAKE_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
        | {"CONDA_PKGS_DIRS": str(tmp_path / "pkgs"), "TMPDIR": str(tmp_path / "tmp")}
        | (env or {}),
        timeout_s=60,
        log=log,
        kill_grace_s=1,
    )
    return run, log.tail()


@pytest.fixture(autouse=True)
def _private_tmp(tmp_path):
    (tmp_path / "tmp").mkdir()


def test_unreachable_channel_is_package_records_failure_not_a_test_failure(tmp_path):
    package = build_package(tmp_path / "ch", name="kornia", run_test_sh="true\n")
    broken = "https://conda.example.org/staging"
    run, tail = _adapter_run(
        tmp_path,
        package,
        channels=[broken],
        env={"CONDA_BUILD_FAKE_CHANNEL_ERRORS": f"{broken}=404 NOT FOUND"},
    )
    # As the real one: the warning, then "TESTS FAILED" raised while handling it.
    assert run.exit_code == 1
    assert {PACKAGE_RECORDS_FAILED, TESTS_FAILED} <= run.markers
    assert SOLVER_ERROR not in run.markers
    assert run.packages == ()
    assert "HTTP 404 NOT FOUND for url" in run.environment_failure
    assert run.final_exception.startswith("CondaBuildUserError: TESTS FAILED: kornia-")
    verdict, reason = classify(run, timeout_s=60)
    assert verdict == Verdict.ERROR
    assert "not the package" in reason
    assert "failed to get package records" in run.failure_excerpt


def test_unsolvable_pin_stays_uninstallable_although_records_failed_too(tmp_path):
    package = build_package(
        tmp_path / "ch", name="oldpin", depends=("pytorch 2.1.*",), run_test_sh="true\n"
    )
    run, _ = _adapter_run(tmp_path, package)
    assert {PACKAGE_RECORDS_FAILED, SOLVER_ERROR, TESTS_FAILED} <= run.markers
    assert "Unsatisfiable dependencies for platform noarch" in run.failure_excerpt
    assert classify(run, timeout_s=60)[0] == Verdict.UNINSTALLABLE


def test_rattler_build_package_is_recipe_error_from_conda_build_26_7(tmp_path):
    package = build_package(tmp_path / "ch", name="torchthing", extra_files=RATTLER_BUILD_INFO)
    run, tail = _adapter_run(tmp_path, package, env={"CONDA_BUILD_FAKE_VERSION": "26.7.0"})
    assert run.exit_code == 1
    assert TESTS_FAILED not in run.markers
    assert run.final_exception_name == "RecipeError"
    assert "No meta files (meta.yaml, meta.yml, conda.yaml, conda.yml)" in run.final_exception
    verdict, reason = classify(run, timeout_s=60)
    assert verdict == Verdict.ERROR
    assert "RecipeError" in reason
    assert "rattler-build" in reason
    assert "RecipeError" in run.failure_excerpt


def test_rattler_build_package_is_nothing_to_test_before_conda_build_26_7(tmp_path):
    # Why routing by format matters: the older conda-build fudges the metadata and sees no
    # info/test/, so a package with real tests would pass as "no tests".
    package = build_package(tmp_path / "ch", name="torchthing", extra_files=RATTLER_BUILD_INFO)
    run, _ = _adapter_run(tmp_path, package, env={"CONDA_BUILD_FAKE_VERSION": "24.9.0"})
    assert run.exit_code == 0
    assert NOTHING_TO_TEST in run.markers
    assert classify(run, timeout_s=60)[0] == Verdict.NO_TESTS


def test_failing_post_link_script_is_link_error_after_the_plan(tmp_path):
    package = build_package(
        tmp_path / "ch",
        name="linky",
        run_test_sh="true\n",
        extra_files={"bin/.linky-post-link.sh": "echo cannot link >&2\nexit 7\n"},
    )
    run, _ = _adapter_run(tmp_path, package)
    assert run.exit_code == 1
    assert run.packages  # the plan was printed before linking failed
    assert TESTS_FAILED not in run.markers
    assert run.final_exception_name == "LinkError"
    assert "post-link script failed for package local::linky-1.0.0-py_0" in run.final_exception
    verdict, reason = classify(run, timeout_s=60)
    assert verdict == Verdict.ERROR
    assert "could not be linked" in reason


def test_package_cache_lock_held_elsewhere_is_build_lock_error(tmp_path):
    package = build_package(tmp_path / "ch", name="locked", run_test_sh="true\n")
    (tmp_path / "pkgs").mkdir()
    with open(tmp_path / "pkgs" / ".conda-build.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run, _ = _adapter_run(tmp_path, package, env={"CONDA_BUILD_FAKE_LOCK_TIMEOUT_S": "0.3"})
    assert run.exit_code == 1
    assert run.final_exception == "BuildLockError: Failed to acquire all locks"
    verdict, reason = classify(run, timeout_s=60)
    assert verdict == Verdict.ERROR
    assert "lock" in reason


def test_test_traceback_before_tests_failed_is_still_a_test_failure(tmp_path):
    script = "import sys\nprint('Traceback (most recent call last):')\n" + (
        "print('AssertionError: wrong answer')\nsys.exit(1)\n"
    )
    package = build_package(tmp_path / "ch", name="asserty", run_test_py=script)
    run, _ = _adapter_run(tmp_path, package)
    assert run.final_exception_name == "CondaBuildUserError"
    assert classify(run, timeout_s=60)[0] == Verdict.FAILED
    # The rattler runner prints a plain "TESTS FAILED" line after the test's own traceback.
    scanner = _OutputScanner()
    for line in ("AssertionError: wrong answer", "TESTS FAILED: asserty-1.0.0-py_0.conda"):
        scanner.feed(line)
    assert scanner.final_exception == ""


def _run_of(lines: list[str], exit_code: int) -> CondaBuildTestRun:
    scanner = _OutputScanner()
    for line in lines:
        scanner.feed(line)
    return CondaBuildTestRun(
        argv=("conda-build",),
        exit_code=exit_code,
        timed_out=False,
        duration_s=1.0,
        markers=frozenset(scanner.markers),
        packages=tuple(scanner.packages),
        final_exception=scanner.final_exception,
        environment_failure=scanner.environment_failure,
    )


def test_records_retry_that_succeeded_leaves_a_real_test_failure_failed():
    # get_install_actions logs "failed to get package records, retrying" on a lock error and
    # retries; when the retry solves, the tests run and their failure is the package's.
    run = _run_of(
        [
            "TEST START: pkg-1.0-0.conda",
            "WARNING: failed to get package records, retrying.  exception was: lock timeout",
            "The following NEW packages will be INSTALLED:",
            "",
            "    pkg:    1.0-0 local",
            "",
            "boom",
            "conda_build.exceptions.CondaBuildUserError: TESTS FAILED: pkg-1.0-0.conda",
        ],
        exit_code=1,
    )
    assert PACKAGE_RECORDS_FAILED in run.markers
    assert run.packages == ({"name": "pkg", "package": "pkg-1.0-0", "channel": "local"},)
    assert classify(run, timeout_s=60)[0] == Verdict.FAILED


def test_env_creation_failure_before_the_plan_is_an_error():
    run = _run_of(
        [
            "WARNING: failed to create env, retrying.  exception was: Failed to acquire all locks",
            "ERROR: Failed to create env, max retries exceeded.",
            "conda_build.exceptions.BuildLockError: Failed to acquire all locks",
        ],
        exit_code=1,
    )
    assert ENV_CREATE_FAILED in run.markers
    assert classify(run, timeout_s=60)[0] == Verdict.ERROR


def test_non_zero_exit_without_markers_is_an_error():
    verdict, reason = classify(_run_of(["something went wrong"], exit_code=3), timeout_s=60)
    assert verdict == Verdict.ERROR
    assert "exited 3 without a test verdict" in reason


def test_display_actions_plan_lines_without_channel_and_with_features():
    scanner = _OutputScanner()
    for line in (
        "The following NEW packages will be INSTALLED:",
        "",
        "    pyqt:    4.11.4-py27_2 conda-forge",
        "    pytorch: 2.5.1-cuda_0  pytorch     [cuda]",
        "    zlib:    1.3-h0",
        "",
        "    not: a plan line anymore",
    ):
        scanner.feed(line)
    assert scanner.packages == [
        {"name": "pyqt", "package": "pyqt-4.11.4-py27_2", "channel": "conda-forge"},
        {"name": "pytorch", "package": "pytorch-2.5.1-cuda_0", "channel": "pytorch"},
        {"name": "zlib", "package": "zlib-1.3-h0", "channel": ""},
    ]


def _job(build, cell, **fields) -> Job:
    (job,) = enqueue_jobs(
        run=factories.RunFactory(), jobs=[Job(kind="test", build=build, **cell, **fields)]
    )
    finished = execute_job(job_id=job.pk)
    return Job.objects.get(pk=finished.pk)


@pytest.mark.django_db
def test_each_job_gets_its_own_tmpdir_removed_after_a_failure(
    engine_settings, make_build, cpu_cell, tmp_path, monkeypatch
):
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(host_tmp))
    monkeypatch.setenv("CONDA_BUILD_FAKE_PYTHON", sys.executable)
    script = 'echo "TMPDIR=$TMPDIR"\nexit 1\n'
    job = _job(make_build("leaky", run_test_sh=script), cpu_cell)
    assert job.verdict == Verdict.FAILED
    # conda-build leaves the extracted package in $TMPDIR after a failure: not in the host's.
    assert list(host_tmp.iterdir()) == []
    croot = Path(engine_settings.CONDA_BUILD_CROOT_DIR) / f"job-{job.pk}"
    log = read_log_text(Path(engine_settings.LOG_DIR) / job.log_path)
    assert f"TMPDIR={croot / 'tmp'}" in log
    assert not croot.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("package", "fake_env", "reason"),
    [
        ({"extra_files": RATTLER_BUILD_INFO}, {"CONDA_BUILD_FAKE_VERSION": "26.7.0"}, "Recipe"),
        (
            {"run_test_sh": "true\n", "extra_files": {"bin/.pkg-post-link.sh": "exit 1\n"}},
            {},
            "LinkError",
        ),
    ],
    ids=["recipe_error", "link_error"],
)
def test_runner_records_conda_build_infrastructure_stops_as_error(
    engine_settings, make_build, cpu_cell, monkeypatch, package, fake_env, reason
):
    for name, value in fake_env.items():
        monkeypatch.setenv(name, value)
    job = _job(make_build("pkg", **package), cpu_cell, required_runner="conda-build")
    assert job.verdict == Verdict.ERROR
    assert reason in job.error_message
    assert job.failure_excerpt


@pytest.mark.django_db
def test_runner_records_unreachable_channel_as_error(
    engine_settings, make_build, cpu_cell, staging, monkeypatch
):
    monkeypatch.setenv("CONDA_BUILD_FAKE_CHANNEL_ERRORS", f"{staging.url}=401 UNAUTHORIZED")
    job = _job(make_build("pkg", run_test_sh="true\n"), cpu_cell)
    assert job.verdict == Verdict.ERROR
    assert "HTTP 401 UNAUTHORIZED" in job.error_message
    assert "failed to get package records" in job.failure_excerpt
