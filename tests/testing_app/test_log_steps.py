"""A job log's steps: the worker's stamped marker lines, the runners' step requests, conda-build's
steps named from its own output, and the outline read back from the file."""

import gzip
import itertools
import os
import sys
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from testing_app.adapters import rattler_build_path
from testing_app.adapters import rattler_runner
from testing_app.adapters.conda_build import INSTALL_PLAN_HEADER
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.conda_build import run_conda_build_test
from testing_app.adapters.job_log import REDACTED
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.adapters.log_steps import STEP_ANNOUNCEMENT
from testing_app.adapters.log_steps import CondaBuildSteps
from testing_app.adapters.log_steps import lines_with_offsets
from testing_app.adapters.log_steps import read_marker
from testing_app.adapters.log_steps import step_marker
from testing_app.adapters.log_steps import steps_of
from tests.testing_app.conftest import FAKE_CONDA_BUILD
from tests.testing_app.packages import build_package

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _clock(*seconds: float):
    """A clock that answers START + each of `seconds` in turn."""
    times = iter([START + timedelta(seconds=s) for s in seconds])
    return lambda: next(times)


def test_a_marker_reads_back_to_the_millisecond():
    at = START + timedelta(seconds=4, microseconds=123_456)
    line = step_marker("solve   the\ttest environment", at)

    assert line == "##[step 2026-03-01T12:00:04.123Z] solve the test environment"
    marker = read_marker(line + "\n")
    assert (marker.kind, marker.name) == ("step", "solve the test environment")
    assert marker.at == START + timedelta(seconds=4, milliseconds=123)
    assert read_marker("##[step yesterday] solve") is None
    assert read_marker("plain output") is None


def test_runner_requests_become_stamped_steps_and_the_end_is_stamped(tmp_path):
    log = JobLog(tmp_path / "1.log", redact=Redactor(["hunter22"]), clock=_clock(0, 2.5, 9.25, 10))
    log.step("set up")
    log.write("fetching")
    assert log.write(f"{STEP_ANNOUNCEMENT}solve with hunter22\n").startswith("##[step ")
    log.write("solved")
    log.write(f"{STEP_ANNOUNCEMENT}test 1: pytest -x")
    log.write("1 passed")
    text = gzip.decompress(log.finish().read_bytes()).decode()

    assert text.splitlines() == [
        "##[step 2026-03-01T12:00:00.000Z] set up",
        "fetching",
        f"##[step 2026-03-01T12:00:02.500Z] solve with {REDACTED}",
        "solved",
        "##[step 2026-03-01T12:00:09.250Z] test 1: pytest -x",
        "1 passed",
        "##[end 2026-03-01T12:00:10.000Z]",
    ]
    steps = steps_of(lines_with_offsets(text.encode()))
    assert [(s.number, s.name, s.duration_s) for s in steps] == [
        (1, "set up", 2.5),
        (2, f"solve with {REDACTED}", 6.75),
        (3, "test 1: pytest -x", 0.75),
    ]
    # Each offset is where the step's marker line starts in the file.
    assert [text.encode()[s.offset :].split(b"\n")[0] for s in steps][1].startswith(b"##[step")


def test_output_that_forges_a_marker_is_no_step(tmp_path):
    log = JobLog(tmp_path / "2.log", redact=Redactor([]), clock=_clock(0, 1))
    log.step("run the tests")
    written = log.write("##[step 2030-01-01T00:00:00.000Z] pwned")
    text = gzip.decompress(log.finish().read_bytes()).decode()

    assert written == " ##[step 2030-01-01T00:00:00.000Z] pwned"
    assert [s.name for s in steps_of(lines_with_offsets(text.encode()))] == ["run the tests"]


def test_a_step_still_running_has_no_duration():
    text = f"{step_marker('set up', START)}\nwaiting\n"
    (step,) = steps_of(lines_with_offsets(text.encode()))
    assert step.ended_at is None
    assert step.duration_s is None


def test_the_runners_ask_for_steps_the_way_the_worker_reads_them():
    assert rattler_runner.STEP == rattler_build_path.STEP == STEP_ANNOUNCEMENT


def test_rattler_runner_script_announces_each_test_before_running_it():
    class Tests:
        layout = "rattler-build"
        commands = ['python -c "import rb"\necho more', "rb --help"]

    assert rattler_runner._test_lines(Tests, windows=False) == [
        'echo \'##[step] test 1: python -c "import rb"\'\npython -c "import rb"\necho more',
        "echo '##[step] test 2: rb --help'\nrb --help",
    ]


def test_conda_build_steps_are_named_from_its_output():
    guesser = CondaBuildSteps(INSTALL_PLAN_HEADER)
    output = [
        "TEST START: /pkgs/kornia-0.7.conda",
        "Solving environment: done",
        "",
        INSTALL_PLAN_HEADER,
        "",
        "    kornia: 0.7-0 file:///staging",
        "    pytorch: 2.5.1-0 file:///upstream",
        "",
        "import: 'kornia'",
        "TEST END: /pkgs/kornia-0.7.conda",
    ]
    named = [(line, guesser.step_before(line)) for line in output]

    assert [(line, step) for line, step in named if step] == [
        ("TEST START: /pkgs/kornia-0.7.conda", "solve the test environment"),
        (INSTALL_PLAN_HEADER, "install the test environment"),
        ("import: 'kornia'", "run the tests"),
    ]


def test_a_conda_build_run_is_logged_in_steps(tmp_path):
    """The stand-in conda-build, for real: its log has the solve, install and test steps."""
    package = build_package(
        tmp_path / "ch",
        name="kornia",
        depends=(),
        module_source="ANSWER = 42\n",
        run_test_py="import kornia\nprint('import ok')\n",
    )
    log = JobLog(tmp_path / "job.log", redact=Redactor([]))
    test = CondaBuildTest(
        binary=str(FAKE_CONDA_BUILD),
        package_path=package,
        channels=[(tmp_path / "ch").as_uri()],
        extra_deps=[],
        croot=tmp_path / "croot",
    )
    run = run_conda_build_test(
        test,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CONDA_BUILD_FAKE_PYTHON": sys.executable},
        timeout_s=120,
        log=log,
    )
    data = gzip.decompress(log.finish().read_bytes())
    steps = steps_of(lines_with_offsets(data))

    assert run.exit_code == 0, data.decode()[-2000:]
    assert [s.name for s in steps] == [
        "solve the test environment",
        "install the test environment",
        "run the tests",
    ]
    assert all(s.duration_s is not None and s.duration_s >= 0 for s in steps)
    assert all(a.started_at <= b.started_at for a, b in itertools.pairwise(steps))
    assert "import ok" in data.decode().split("] run the tests\n", 1)[1]
