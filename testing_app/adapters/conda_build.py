"""Run `conda-build --test <package file>` as a subprocess and report what happened.

It reports facts (exit code, the markers conda-build printed, the test environment's package
list, whether it timed out); `services/conda_runner.py` turns them into a verdict. The process
runs in its own session so that a timeout kills the whole group, and on Linux it is told to die
with the worker process that started it, so no test keeps running as an orphan.
"""

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from testing_app.adapters.job_log import JobLog
from testing_app.adapters.log_steps import CondaBuildSteps
from testing_app.adapters.process_tree import kill_tree
from testing_app.adapters.process_tree import new_process_group
from testing_app.adapters.process_tree import stop_tree
from testing_app.adapters.sandbox import SandboxPolicy

# Output markers conda-build prints (stable since 3.x; reference/conda.md section 1).
TEST_START = "test_start"
TEST_END = "test_end"
TESTS_FAILED = "tests_failed"
NOTHING_TO_TEST = "nothing_to_test"
ALL_TESTS_PASSED = "all_tests_passed"
SOLVER_ERROR = "solver_error"
# conda-build wraps unsolvable test environments in DependencyNeedsBuildingError ("Unsatisfiable
# dependencies for platform ..."); conda, libmamba and rattler word the same thing their way.
SOLVER_ERROR_PATTERN = re.compile(
    r"Unsatisfiable dependencies for platform|UnsatisfiableError|NoPackagesFoundError|"
    r"PackagesNotFoundError|ResolvePackageNotFound|LibMambaUnsatisfiableError|"
    r"DependencyNeedsBuildingError|Could not solve for environment specs|"
    r"Cannot solve the request"
)
# conda-build's get_package_records caught a CondaError (a 404/401 channel, a proxy error, a
# lock timeout, or an unsolvable environment) and logged it before raising "TESTS FAILED"
# (build.py::test, environ.py::get_install_actions); create_env logs its own retries.
PACKAGE_RECORDS_FAILED = "package_records_failed"
ENV_CREATE_FAILED = "env_create_failed"
_PACKAGE_RECORDS_FAILED = re.compile(r"failed to get package records", re.IGNORECASE)
_ENV_CREATE_FAILED = re.compile(r"failed to create env", re.IGNORECASE)
# The last line of a Python traceback ("conda_build.exceptions.RecipeError: ...") or of conda's
# own error report ("LinkError: ..."): the exception that ended conda-build.
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*(?P<name>[A-Z]\w*(?:Error|Exception))(?::\s?(?P<message>.*))?$"
)
INSTALL_PLAN_HEADER = "The following NEW packages will be INSTALLED:"
# conda >= 4.6 CLI: "  python   conda-forge/linux-64::python-3.11.9-hb806964_0_cpython"
_PLAN_LINE = re.compile(r"^\s+(?P<name>\S+)\s+(?P<channel>\S+)::(?P<package>\S+)")
# conda-build's own environ.py::_display_actions (every version, also 26.x):
# "    pyqt: 4.11.4-py27_2 conda-forge [mkl]"; the channel column is absent when
# show_channel_urls hides every channel, the features column when there are none.
_OLD_PLAN_LINE = re.compile(
    r"^\s+(?P<name>[^\s:]+):\s+(?P<version>\S+)(?:\s+(?P<channel>[^\s\[]+))?(?:\s+\[.*\])?\s*$"
)
EXCERPT_BEFORE = 40
EXCERPT_AFTER = 30
VERSION_TIMEOUT_S = 60
PROCESS_GROUP_FILE = ".process-group"
PR_SET_PDEATHSIG = 1
logger = logging.getLogger(__name__)

# Loaded before any fork: the child may only make async-signal-safe calls before exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# The test must die with its worker (PR_SET_PDEATHSIG). util-linux's setpriv sets that and execs
# the test, so no Python runs between fork and exec: an in-process worker has a heartbeat thread
# while it starts a test, and Python's preexec_fn is not safe with threads. The preexec_fn is
# kept only for a Linux without setpriv.
@functools.cache
def _setpriv() -> str | None:
    """setpriv, if this host has one that knows --pdeathsig (util-linux >= 2.33)."""
    path = shutil.which("setpriv") if _LIBC is not None else None
    if path is not None:
        probe = subprocess.run(  # noqa: S603 - fixed argument list
            [path, "--pdeathsig", "KILL", "--", "true"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return path
    if _LIBC is not None:
        logger.warning("no setpriv with --pdeathsig: tests start through a pre-exec hook")
    return None


def _dying_with_parent(argv: list[str], env: Mapping[str, str]) -> list[str]:
    if not _setpriv():
        return argv
    # A missing program is reported as Popen reports it, not as setpriv's exit status 127.
    if shutil.which(argv[0], path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, "No such executable", argv[0])
    return [_setpriv(), "--pdeathsig", "KILL", "--", *argv]


@dataclass(frozen=True)
class CondaBuildTest:
    """One `conda-build --test` invocation."""

    binary: str
    package_path: Path
    channels: Sequence[str]
    extra_deps: Sequence[str]
    croot: Path
    # What runs `binary` when it is not an executable itself: the rattler runner is a Python
    # script with conda-build's command line (adapters/rattler_runner.py), run by this Python.
    launcher: tuple[str, ...] = ()
    # Runner-specific options (the rattler runner's --sandbox-prefix), after --override-channels.
    options: tuple[str, ...] = ()
    # The rattler runner prints its steps (`##[step] <name>`); conda-build's are named from the
    # lines it prints (log_steps.CondaBuildSteps).
    announces_steps: bool = False

    def argv(self) -> list[str]:
        """The command line. The package path comes before --extra-deps, whose nargs='+' would
        otherwise swallow it; --croot gives each job its own build root."""
        argv = [
            *self.launcher,
            self.binary,
            "--test",
            str(self.package_path),
            "--override-channels",
            *self.options,
        ]
        for channel in self.channels:
            argv += ["-c", channel]
        argv += ["--croot", str(self.croot)]
        if self.extra_deps:
            argv += ["--extra-deps", *self.extra_deps]
        return argv


@dataclass(frozen=True)
class CondaBuildTestRun:
    """What one run did; no verdict here."""

    argv: tuple[str, ...]
    exit_code: int | None
    timed_out: bool
    duration_s: float
    markers: frozenset[str]
    # The test environment conda printed: [{"name", "package", "channel"}].
    packages: tuple[dict, ...] = ()
    failure_excerpt: str = ""
    # "Name: message" (the class name without its module) of the last exception printed: the
    # one that ended conda-build when it exited with a traceback.
    final_exception: str = ""
    # What conda-build logged when it could not get or create the test environment.
    environment_failure: str = ""

    @property
    def final_exception_name(self) -> str:
        return self.final_exception.partition(":")[0]


@dataclass
class _OutputScanner:
    """Watches conda-build's output line by line for markers, the install plan and excerpts."""

    markers: set[str] = field(default_factory=set)
    packages: list[dict] = field(default_factory=list)
    recent: deque = field(default_factory=lambda: deque(maxlen=EXCERPT_BEFORE))
    excerpt: list[str] = field(default_factory=list)
    final_exception: str = ""
    environment_failure: str = ""
    _plan_state: str = ""  # "", "header" (blank lines before entries), "entries", "done"
    _solver_lines_left: int = 0

    def feed(self, line: str) -> None:
        self._scan_markers(line)
        self._scan_environment_failure(line)
        self._scan_plan(line)
        exception = _EXCEPTION_LINE.match(line.rstrip())
        if exception:
            self.final_exception = f"{exception['name']}: {exception['message'] or ''}".strip()
        elif "TESTS FAILED:" in line:
            # A plain "TESTS FAILED" (the rattler runner's) after a test printed a traceback:
            # the runner ended on the failed test, not on that exception.
            self.final_exception = ""
        if self._solver_lines_left:
            self.excerpt.append(line)
            self._solver_lines_left -= 1
        self.recent.append(line)

    def _scan_markers(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("TEST START:"):
            self.markers.add(TEST_START)
        elif stripped.startswith("TEST END:"):
            self.markers.add(TEST_END)
        elif stripped.startswith("Nothing to test for:"):
            self.markers.add(NOTHING_TO_TEST)
        elif stripped == "All tests passed":
            self.markers.add(ALL_TESTS_PASSED)
        if "TESTS FAILED:" in line and TESTS_FAILED not in self.markers:
            self.markers.add(TESTS_FAILED)
            if SOLVER_ERROR not in self.markers:
                self.excerpt = [*self.recent, line]
        if (
            SOLVER_ERROR_PATTERN.search(line)
            and SOLVER_ERROR not in self.markers
            and not self.packages
        ):
            # The solver's explanation beats "TESTS FAILED", which conda-build prints as well;
            # once the test environment was installed, such words come from the tests instead.
            self.markers.add(SOLVER_ERROR)
            self.excerpt = [*list(self.recent)[-2:], line]
            self._solver_lines_left = EXCERPT_AFTER

    def _scan_environment_failure(self, line: str) -> None:
        # Only before the test environment was installed: afterwards the tests print the lines.
        if self._plan_state == "done" or self.environment_failure:
            return
        for marker, pattern in (
            (PACKAGE_RECORDS_FAILED, _PACKAGE_RECORDS_FAILED),
            (ENV_CREATE_FAILED, _ENV_CREATE_FAILED),
        ):
            if pattern.search(line):
                self.markers.add(marker)
                self.environment_failure = line.strip()
                if not self.excerpt:
                    self.excerpt = [*list(self.recent)[-2:], line]

    def _scan_plan(self, line: str) -> None:
        if line.strip() == INSTALL_PLAN_HEADER:
            self.packages = []
            self._plan_state = "header"
            return
        if self._plan_state not in ("header", "entries"):
            return
        if not line.strip():
            if self._plan_state == "entries":
                self._plan_state = "done"
            return
        self._plan_state = "entries"
        match = _PLAN_LINE.match(line)
        if match:
            self.packages.append(match.groupdict())
            return
        old = _OLD_PLAN_LINE.match(line)
        if old:
            name = old["name"]
            self.packages.append(
                {
                    "name": name,
                    "package": f"{name}-{old['version']}",
                    "channel": old["channel"] or "",
                }
            )


def run_conda_build_test(
    test: CondaBuildTest,
    *,
    env: Mapping[str, str],
    timeout_s: float,
    log: JobLog,
    on_progress: Callable[[str], None] | None = None,
    progress_interval_s: float = 5.0,
    kill_grace_s: float = 10.0,
    sandbox: SandboxPolicy | None = None,
) -> CondaBuildTestRun:
    """Run the test, streaming every output line into `log`; inside `sandbox` when given (the
    whole command: see services/test_sandbox.py for which runner is wrapped how).

    `on_progress(tail)` is called about every `progress_interval_s` while it runs. After
    `timeout_s` the whole process group gets SIGTERM, then SIGKILL `kill_grace_s` later.
    """
    argv = test.argv()
    test.croot.mkdir(parents=True, exist_ok=True)
    log.write("$ " + " ".join(argv))
    command = argv
    if sandbox is not None:
        sandbox.prepare(test.croot)
        command = sandbox.argv(argv, workspace=test.croot)
        # Nothing of the worker's environment reaches even the sandbox's own processes.
        env = sandbox.environment(test.croot)
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
        _dying_with_parent(command, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        cwd=test.croot,
        **new_process_group(
            preexec_fn=_die_with_parent if _LIBC is not None and not _setpriv() else None
        ),
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    # Recorded so that whoever outlives this process can end the group (kill_leftovers).
    (test.croot / PROCESS_GROUP_FILE).write_text(str(proc.pid))
    scanner = _OutputScanner()
    steps = None if test.announces_steps else CondaBuildSteps(INSTALL_PLAN_HEADER)
    reader = threading.Thread(target=_pump, args=(proc, log, scanner, steps), daemon=True)
    reader.start()
    try:
        timed_out = _wait(proc, started, timeout_s, log, on_progress, progress_interval_s)
        if timed_out:
            log.write(f"timeout: {timeout_s:.0f} s exceeded, stopping the process group")
            stop_tree(proc, kill_grace_s)
    finally:
        # Whatever the test started in its session goes with it, also when this process is
        # interrupted (RQ's own timeout, a stop request): no orphans.
        kill_tree(proc.pid, force=True)
        proc.wait()
    reader.join(timeout=kill_grace_s)
    if reader.is_alive():
        log.write("warning: output pipe still open after the process group ended")
    duration = time.monotonic() - started
    # Named by its program: conda-build, or the rattler runner that has its command line.
    log.write(f"{Path(test.binary).name} exited with {proc.returncode} after {duration:.1f} s")
    return CondaBuildTestRun(
        argv=tuple(argv),
        exit_code=proc.returncode,
        timed_out=timed_out,
        duration_s=duration,
        markers=frozenset(scanner.markers),
        packages=tuple(scanner.packages),
        failure_excerpt="\n".join(log.redact(line) for line in _excerpt(scanner, proc.returncode)),
        final_exception=log.redact(scanner.final_exception),
        environment_failure=log.redact(scanner.environment_failure),
    )


def _excerpt(scanner: _OutputScanner, exit_code: int | None) -> list[str]:
    """The lines around the failure; for a run that ended on an exception of conda-build's own
    (no test failure, no solver message), the last lines it printed."""
    if scanner.excerpt or not exit_code:
        return scanner.excerpt
    return list(scanner.recent)[-EXCERPT_AFTER:]


def _pump(
    proc: subprocess.Popen, log: JobLog, scanner: _OutputScanner, steps: CondaBuildSteps | None
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if steps is not None and (step := steps.step_before(line)):
            log.step(step)
        scanner.feed(log.write(line))
    proc.stdout.close()


def _wait(proc, started, timeout_s, log, on_progress, interval_s) -> bool:
    """Wait for the process; True when it ran past the timeout."""
    while True:
        remaining = timeout_s - (time.monotonic() - started)
        if remaining <= 0:
            return True
        try:
            proc.wait(timeout=min(interval_s, remaining))
            return False
        except subprocess.TimeoutExpired:
            if on_progress is not None:
                on_progress(log.tail())


def kill_leftovers(croot: Path) -> int:
    """Kill what is left of a test whose runner died (work-horse or worker killed with -9):
    the processes of its recorded process group that still work inside `croot`. Checking the
    working folder means a recycled group id can never hit someone else's processes. Linux
    only (/proc): elsewhere nothing can prove a recorded id still belongs to the test, so
    nothing is killed; returns how many processes were killed."""
    if not Path("/proc/self").is_dir():
        return 0
    try:
        pgid = int((croot / PROCESS_GROUP_FILE).read_text())
    except (OSError, ValueError):
        return 0
    root = str(croot.resolve())
    killed = 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(entry.name)
            if os.getpgid(pid) != pgid:
                continue
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to inspect
        if cwd == root or cwd.startswith(root + os.sep):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def conda_build_version(binary: str, *, env: Mapping[str, str] | None = None) -> str:
    """`conda-build --version` -> "24.9.0"; raises OSError/ValueError when it cannot tell."""
    result = subprocess.run(  # noqa: S603 - argument list, no shell
        [binary, "--version"],
        capture_output=True,
        text=True,
        timeout=VERSION_TIMEOUT_S,
        env=dict(env) if env is not None else None,
        check=False,
    )
    match = re.search(r"conda-build\s+(\S+)", result.stdout + result.stderr)
    if result.returncode != 0 or not match:
        raise ValueError(f"{binary} --version: exit {result.returncode}: {result.stdout.strip()}")
    return match.group(1)
