"""The conda-build adapter, always through a real subprocess (the stand-in in tests/fakes)."""

import gzip
import os
import sys
import time

import pytest

from testing_app.adapters.conda_build import ALL_TESTS_PASSED
from testing_app.adapters.conda_build import NOTHING_TO_TEST
from testing_app.adapters.conda_build import SOLVER_ERROR
from testing_app.adapters.conda_build import TEST_END
from testing_app.adapters.conda_build import TEST_START
from testing_app.adapters.conda_build import TESTS_FAILED
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.conda_build import conda_build_version
from testing_app.adapters.conda_build import run_conda_build_test
from testing_app.adapters.job_log import REDACTED
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.adapters.job_log import scrubbed_environment
from testing_app.adapters.job_log import secret_values
from tests.testing_app.conftest import FAKE_CONDA_BUILD
from tests.testing_app.packages import build_package

PASSING_TEST = "import {name}\nassert {name}.ANSWER == 42\nprint('import ok')\n"


def _run(tmp_path, package, *, extra_deps=(), timeout_s=60, env=None, secrets=()):
    log = JobLog(tmp_path / "job.log", redact=Redactor(secrets), tail_lines=20)
    test = CondaBuildTest(
        binary=str(FAKE_CONDA_BUILD),
        package_path=package,
        channels=["file:///staging", "file:///upstream"],
        extra_deps=list(extra_deps),
        croot=tmp_path / "croot",
    )
    progress = []
    run = run_conda_build_test(
        test,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CONDA_BUILD_FAKE_PYTHON": sys.executable}
        | (env or {}),
        timeout_s=timeout_s,
        log=log,
        on_progress=progress.append,
        progress_interval_s=0.2,
        kill_grace_s=1,
    )
    return run, log, progress


def test_run_passing_package_reports_markers_and_environment(tmp_path):
    package = build_package(
        tmp_path / "ch",
        name="kornia",
        depends=("pytorch >=2.4,<2.6",),
        module_source="ANSWER = 42\n",
        run_test_py=PASSING_TEST.format(name="kornia"),
        run_test_sh="echo shell ok\n",
    )
    run, log, _ = _run(tmp_path, package, extra_deps=["pytorch ==2.5.1", "cpuonly"])
    assert run.exit_code == 0
    assert {TEST_START, TEST_END, ALL_TESTS_PASSED} <= run.markers
    assert TESTS_FAILED not in run.markers
    assert {"name": "pytorch", "channel": "fake-channel", "package": "pytorch-2.5.1-0"} in (
        run.packages
    )
    argv = list(run.argv)
    # The package path comes before --extra-deps (nargs="+"), each job has its own croot.
    assert argv[1:3] == ["--test", str(package)]
    assert argv.index("--croot") < argv.index("--extra-deps")
    assert argv[-2:] == ["pytorch ==2.5.1", "cpuonly"]
    assert "import ok" in log.tail()
    assert "shell ok" in log.tail()


def test_run_failing_tests_reports_tests_failed_and_excerpt(tmp_path):
    package = build_package(tmp_path / "ch", name="broken", run_test_sh="echo kaboom\nexit 3\n")
    run, log, _ = _run(tmp_path, package)
    assert run.exit_code == 1
    assert f"{FAKE_CONDA_BUILD.name} exited with 1 after" in log.tail()
    assert TESTS_FAILED in run.markers
    assert SOLVER_ERROR not in run.markers
    assert "kaboom" in run.failure_excerpt


def test_run_unsolvable_pin_reports_solver_error_before_tests_failed(tmp_path):
    package = build_package(
        tmp_path / "ch", name="oldpin", depends=("pytorch 2.1.*",), run_test_sh="true\n"
    )
    run, _, _ = _run(tmp_path, package, extra_deps=["pytorch ==2.5.1"])
    assert run.exit_code == 1
    assert {SOLVER_ERROR, TESTS_FAILED} <= run.markers
    assert "Unsatisfiable dependencies for platform" in run.failure_excerpt


def test_run_package_without_tests_reports_nothing_to_test(tmp_path):
    package = build_package(tmp_path / "ch", name="plain", extension=".tar.bz2")
    run, _, _ = _run(tmp_path, package)
    assert run.exit_code == 0
    assert NOTHING_TO_TEST in run.markers
    assert TEST_END not in run.markers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: it runs nothing.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_run_past_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 300 &\necho $! > {pid_file}\necho started\nsleep 300\n"
    package = build_package(tmp_path / "ch", name="sleepy", run_test_sh=script)
    run, log, progress = _run(tmp_path, package, timeout_s=3)
    assert run.timed_out
    assert run.exit_code is not None
    assert run.exit_code < 0
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the background process of the test survived the timeout"
    assert progress, "the live tail was never reported while the test ran"
    assert "started" in "\n".join(progress)
    assert "timeout" in log.tail()


def test_run_redacts_secrets_and_hides_service_variables_from_the_test(tmp_path):
    secret = "s3cr3t-token-value"
    script = 'echo "token=$ANACONDA_API_TOKEN db=${DATABASE_URL:-unset}"\necho "leak ' + secret
    package = build_package(tmp_path / "ch", name="leaky", run_test_sh=script + '"\n')
    environ = {
        **os.environ,
        "ANACONDA_API_TOKEN": secret,
        "DATABASE_URL": "postgres://u:pw-123456@db/x",
    }
    env = scrubbed_environment(environ)
    assert "ANACONDA_API_TOKEN" not in env
    assert "DATABASE_URL" not in env
    run, log, _ = _run(tmp_path, package, env=None, secrets=secret_values(environ))
    text = gzip.decompress(log.finish().read_bytes()).decode()
    assert secret not in text
    assert f"leak {REDACTED}" in text
    assert "db=" in text
    assert "pw-123456" not in text


def test_job_log_finish_compresses_and_removes_plain_file(tmp_path):
    log = JobLog(tmp_path / "7.log", redact=Redactor(["topsecret"]), tail_lines=2)
    for line in ("one", "two topsecret", "three"):
        log.write(line)
    assert log.tail() == f"two {REDACTED}\nthree"
    path = log.finish()
    assert path.name == "7.log.gz"
    assert not (tmp_path / "7.log").exists()
    *lines, end = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines == ["one", f"two {REDACTED}", "three"]
    assert end.startswith("##[end ")  # the log's end, stamped (adapters/log_steps.py)


def test_conda_build_version_reads_the_stand_in():
    env = {**os.environ, "CONDA_BUILD_FAKE_PYTHON": sys.executable}
    assert conda_build_version(str(FAKE_CONDA_BUILD), env=env) == "24.9.0"


def test_conda_build_version_of_missing_binary_raises(tmp_path):
    with pytest.raises(OSError, match="No such file"):
        conda_build_version(str(tmp_path / "nope"))
