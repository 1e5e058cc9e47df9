"""The test runner: fetch the build's file, run `conda-build --test` on it, decide the verdict.

The same path runs the rattler runner (adapters/rattler_runner.py), a script with conda-build's
command line and output markers built on py-rattler, for hosts without conda-build: the
download, the job's workspace, the log, the timeout and the classification are shared.

Everything the job did goes into its log (LOG_DIR/<pk>.log while it runs, compressed when it
ends), with secrets redacted; the live tail is saved on the job every LOG_TAIL_INTERVAL_S.
"""

import importlib.metadata
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from packages_app.selectors.channel_stack import distribution_stack
from testing_app.adapters.conda_build import ALL_TESTS_PASSED
from testing_app.adapters.conda_build import NOTHING_TO_TEST
from testing_app.adapters.conda_build import SOLVER_ERROR
from testing_app.adapters.conda_build import TEST_END
from testing_app.adapters.conda_build import TESTS_FAILED
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.conda_build import CondaBuildTestRun
from testing_app.adapters.conda_build import conda_build_version
from testing_app.adapters.conda_build import kill_leftovers
from testing_app.adapters.conda_build import run_conda_build_test
from testing_app.adapters.downloads import DownloadError
from testing_app.adapters.downloads import fetch_artifact
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.adapters.job_log import scrubbed_environment
from testing_app.adapters.job_log import secret_values
from testing_app.adapters.rattler_runner import PackageReadError
from testing_app.adapters.rattler_runner import read_package_tests
from testing_app.adapters.sandbox import SandboxUnavailable
from testing_app.models import Job
from testing_app.models import Verdict
from testing_app.models import WorkerProcess
from testing_app.services.outcomes import JobOutcome
from testing_app.services.outcomes import kept_only_with_its_log
from testing_app.services.test_sandbox import conda_build_installation
from testing_app.services.test_sandbox import conda_build_packages_dirs
from testing_app.services.test_sandbox import describe
from testing_app.services.test_sandbox import isolation_required
from testing_app.services.test_sandbox import rattler_sandbox_options
from testing_app.services.test_sandbox import sandbox_policy

logger = logging.getLogger(__name__)

RUNNER_NAME = "conda-build"
RATTLER_RUNNER = "rattler"
# Recorded as the job's runner when the rattler runner let rattler-build run the tests.
RATTLER_BUILD_TOOL = "rattler-build"
RATTLER_RUNNER_SCRIPT = Path(__file__).resolve().parent.parent / "adapters" / "rattler_runner.py"
JOB_TMP = "tmp"
# conda-build's exceptions that end a test for reasons outside the package (build.py,
# render.py, environ.py, utils.py): each means `error`, never `failed`.
INFRASTRUCTURE_HINTS = {
    "RecipeError": "the package carries no conda-build recipe (built by rattler-build?)",
    "LinkError": "the test environment could not be linked",
    "BuildLockError": "a conda-build lock could not be taken in time",
    "CondaHTTPError": "a channel could not be read",
    "UnavailableInvalidChannel": "a channel could not be read",
}
TEST_FAILURE_EXCEPTION = "CondaBuildUserError"


def redactor() -> Redactor:
    """Secrets of this process (env and settings) that must never reach a log or a job row."""
    database_password = settings.DATABASES["default"].get("PASSWORD") or ""
    extra = [settings.ANACONDA_API_TOKEN, settings.SECRET_KEY, database_password]
    return Redactor(secret_values(os.environ, extra=extra))


def channel_urls(job: Job) -> list[str]:
    """The one channel stack (staging, target, upstream; selectors/channel_stack_types.py), the
    build's own channel first when it is not in the stack."""
    return distribution_stack().urls(first=[job.build.channel.base_url])


def extra_deps(job: Job) -> list[str]:
    """`pytorch ==<release>`, the variant's specs, the pinned upstream build of a reverse-
    dependency re-test, and a python pin for noarch builds (which carry no python of their own).
    """
    specs = [f"pytorch =={job.torch_release.version}"]
    specs += job.extra_specs or job.variant.select_specs.get(settings.VARIANT_SPECS_FLAVOUR, [])
    if job.pinned_build_id:
        pinned = job.pinned_build
        specs.append(f"{pinned.name} =={pinned.version} {pinned.build_string}")
    if job.python and (job.build.noarch or job.build.subdir == "noarch"):
        specs.append(f"python {job.python}.*")
    return specs


def child_environment(croot: Path) -> dict[str, str]:
    """The test's environment: this process's (CUDA_VISIBLE_DEVICES pinned by the worker)
    without secrets or service configuration, plus the shared package cache and a temporary
    folder of the job's own inside its croot: conda-build extracts the package under test into
    `tempfile.mkdtemp()` and removes it only after a passing test, so failures would otherwise
    pile up in the host's /tmp; the croot is removed whatever happened."""
    env = scrubbed_environment(os.environ)
    env["CONDA_PKGS_DIRS"] = str(settings.CONDA_PKGS_DIR)
    temporary = croot / JOB_TMP
    temporary.mkdir(parents=True, exist_ok=True)
    for name in ("TMPDIR", "TEMP", "TMP"):  # POSIX, then the two Windows reads
        env[name] = str(temporary)
    # conda-build is Python: unbuffered, its lines reach the live log as they are printed.
    env["PYTHONUNBUFFERED"] = "1"
    # The stack's priority mode and pip rule, as conda (and the rattler runner) read them.
    env.update(distribution_stack().conda_environment())
    return env


def classify(run: CondaBuildTestRun, *, timeout_s: int) -> tuple[str, str]:
    """(verdict, reason) from conda-build's exit code and the markers it printed."""
    if run.timed_out:
        return Verdict.TIMEOUT, f"Ran past its {timeout_s} s limit; the process group was killed."
    if run.exit_code == 0:
        if NOTHING_TO_TEST in run.markers:
            return Verdict.NO_TESTS, "conda-build found nothing to test in the package."
        if TEST_END in run.markers or ALL_TESTS_PASSED in run.markers:
            return Verdict.PASSED, ""
        return (
            Verdict.ERROR,
            "conda-build exited 0 but printed neither TEST END nor a no-tests note.",
        )
    if SOLVER_ERROR in run.markers:
        return Verdict.UNINSTALLABLE, "The test environment could not be solved."
    if run.environment_failure and not run.packages:
        # conda-build prints "TESTS FAILED" here too, but no test ever ran.
        return (
            Verdict.ERROR,
            "conda-build could not get the test environment (a channel, network or lock "
            f"problem, not the package): {run.environment_failure}",
        )
    exception = run.final_exception_name
    if TESTS_FAILED in run.markers and exception in ("", TEST_FAILURE_EXCEPTION):
        return Verdict.FAILED, "The package's tests failed."
    if exception:
        hint = INFRASTRUCTURE_HINTS.get(exception)
        return (
            Verdict.ERROR,
            f"conda-build stopped with {run.final_exception}" + (f" ({hint})" if hint else ""),
        )
    if run.exit_code is not None and run.exit_code < 0:
        return Verdict.ERROR, f"conda-build was killed by signal {-run.exit_code}."
    return Verdict.ERROR, f"conda-build exited {run.exit_code} without a test verdict."


def choose_test_runner(job: Job, worker: WorkerProcess | None) -> str:
    """The runner a test job gets: the one it names; else conda-build where the host has it
    (the reference), else rattler. Without a registered worker (the demo's plain rqworker) the
    conda-build binary is looked up on PATH."""
    if job.required_runner:
        return job.required_runner
    if worker is not None:
        return RUNNER_NAME if worker.host.runners.get(RUNNER_NAME) else RATTLER_RUNNER
    return RUNNER_NAME if shutil.which(settings.CONDA_BUILD_BIN) else RATTLER_RUNNER


def package_layout(package: Path) -> str:
    """ "conda-build" (info/test/), "rattler-build" (info/tests/tests.yaml) or "" (no tests, or
    unreadable: the runner then reports it in its own words)."""
    try:
        return read_package_tests(package).layout
    except PackageReadError:
        return ""


def runner_for_package_format(job: Job, runner: str, layout: str, log: JobLog) -> str:
    """A package built by rattler-build (info/tests/tests.yaml, a v1 recipe, no info/test/)
    is not conda-build's to test: before 26.7 it prints "Nothing to test for" (a false
    no_tests), from 26.7 it stops on RecipeError. Such a package goes to the rattler runner,
    which hands tests.yaml to rattler-build, unless the job names conda-build itself."""
    if runner != RUNNER_NAME or job.required_runner == RUNNER_NAME or layout != "rattler-build":
        return runner
    log.write(
        "package built by rattler-build (info/tests/tests.yaml): tested by the rattler runner, "
        "conda-build cannot read its tests"
    )
    return RATTLER_RUNNER


def _has_py_rattler_build() -> bool:
    try:
        importlib.metadata.version("py-rattler-build")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _tool_that_tests(runner: str, layout: str, worker, env) -> tuple[str, str]:
    """(tool, version) recorded on the job: the rattler runner hands a rattler-build package to
    rattler-build itself where py-rattler-build is installed (adapters/rattler_build_path.py),
    so the job says rattler-build and its version."""
    if runner == RATTLER_RUNNER and layout == "rattler-build":
        try:
            return RATTLER_BUILD_TOOL, importlib.metadata.version("py-rattler-build")
        except importlib.metadata.PackageNotFoundError:
            pass
    return runner, _runner_version(worker, env, runner)


def runner_command(runner: str) -> tuple[tuple[str, ...], str]:
    """(launcher, binary) of a runner's command line."""
    if runner == RATTLER_RUNNER:
        return (sys.executable,), str(RATTLER_RUNNER_SCRIPT)
    return (), settings.CONDA_BUILD_BIN


def _runner_version(worker: WorkerProcess | None, env: dict, runner: str = RUNNER_NAME) -> str:
    if worker is not None and worker.host.runners.get(runner):
        return worker.host.runners[runner]
    if runner == RATTLER_RUNNER:
        try:
            return importlib.metadata.version("py-rattler")
        except importlib.metadata.PackageNotFoundError:
            return ""
    try:
        return conda_build_version(settings.CONDA_BUILD_BIN, env=env)
    except (OSError, ValueError) as exc:
        logger.warning("conda-build version unknown: %s", exc)
        return ""


def run_test_job(
    *,
    job: Job,
    worker: WorkerProcess | None,
    on_progress: Callable[[str], None],
    runner: str = RUNNER_NAME,
) -> JobOutcome:
    """Download, test, classify. Infrastructure trouble becomes an `error` outcome with the
    reason; nothing here raises for a failing package."""
    job = Job.objects.select_related(
        "build__channel", "torch_release", "variant", "pinned_build"
    ).get(pk=job.pk)
    log = JobLog(
        Path(settings.LOG_DIR) / f"{job.pk}.log",
        redact=redactor(),
        tail_lines=settings.LOG_TAIL_LINES,
    )
    croot = job_workspace(job.pk)
    outcome = JobOutcome(verdict=Verdict.ERROR, runner=runner)
    try:
        outcome = _run(job, worker, log, croot, on_progress, runner)
    finally:
        if croot.exists():
            shutil.rmtree(croot, onerror=_log_cleanup_error)
        tail = log.tail()
        path = log.finish()
    return replace(
        kept_only_with_its_log(outcome, log),
        log_path=path.name,
        log_tail=tail,
        command=[log.redact(part) for part in outcome.command],
    )


def _run(job, worker, log, croot, on_progress, runner=RUNNER_NAME) -> JobOutcome:
    env = child_environment(croot)
    version = _runner_version(worker, env, runner)
    launcher, binary = runner_command(runner)
    where = f"{worker.name} on {worker.host.name}" if worker else "an unregistered worker"
    log.step("set up: fetch the package, prepare the test")
    log.write(f"job {job.pk} (attempt {job.attempt}): {job.build.filename} on {where}")
    if worker is not None and worker.gpu_index is not None:
        log.write(f"GPU {worker.gpu_index}: CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')}")
    started = time.monotonic()
    try:
        artifact = fetch_artifact(
            url=job.build.download_url,
            filename=job.build.filename,
            cache_dir=Path(settings.ARTIFACT_DIR),
            sha256=job.build.sha256,
            md5=job.build.md5,
            expected_size=job.build.size,
            timeout_s=settings.HTTP_TIMEOUT_S,
            attempts=settings.DOWNLOAD_ATTEMPTS,
            note=log.write,
        )
    except DownloadError as exc:
        log.write(f"error: {exc}")
        return JobOutcome(
            verdict=Verdict.ERROR,
            error_message=f"Download failed: {log.redact(str(exc))}",
            runner=runner,
            runner_version=version,
            download_s=time.monotonic() - started,
        )
    download_s = time.monotonic() - started
    layout = package_layout(artifact.path)
    runner = runner_for_package_format(job, runner, layout, log)
    launcher, binary = runner_command(runner)
    channels = channel_urls(job)
    try:
        binary, sandbox, options = _isolation(
            runner, binary, artifact.path, channels, env, croot, log, layout=layout
        )
    except SandboxUnavailable as exc:
        log.write(f"error: this host cannot isolate tests: {exc}")
        return JobOutcome(
            verdict=Verdict.ERROR,
            error_message=(
                f"Not run: this host cannot isolate tests ({exc}); an operator may opt out "
                "with TEST_ISOLATION=none."
            ),
            runner=runner,
            runner_version=version,
            download_s=download_s,
        )
    except FileNotFoundError as exc:
        log.write(f"error: could not start {binary}: {exc}")
        return JobOutcome(
            verdict=Verdict.ERROR,
            error_message=f"Could not start {binary}: {exc}",
            runner=runner,
            runner_version=version,
            download_s=download_s,
        )
    # The program that runs is chosen above; the tool recorded is the one that runs the tests.
    announces_steps = runner == RATTLER_RUNNER
    runner, version = _tool_that_tests(runner, layout, worker, env)
    test = CondaBuildTest(
        binary=binary,
        launcher=launcher,
        package_path=artifact.path,
        channels=channels,
        extra_deps=extra_deps(job),
        croot=croot,
        options=tuple(options),
        announces_steps=announces_steps,
    )
    try:
        run = run_conda_build_test(
            test,
            sandbox=sandbox,
            env=env,
            timeout_s=job.timeout_s,
            log=log,
            on_progress=on_progress,
            progress_interval_s=settings.LOG_TAIL_INTERVAL_S,
            kill_grace_s=settings.JOB_KILL_GRACE_S,
        )
    except OSError as exc:
        log.write(f"error: could not start conda-build: {exc}")
        return JobOutcome(
            verdict=Verdict.ERROR,
            error_message=f"Could not start {binary}: {exc}",
            command=test.argv(),
            runner=runner,
            runner_version=version,
            download_s=download_s,
        )
    verdict, reason = classify(run, timeout_s=job.timeout_s)
    log.write(f"verdict: {verdict}" + (f" ({reason})" if reason else ""))
    return JobOutcome(
        verdict=verdict,
        error_message=reason if verdict in (Verdict.ERROR, Verdict.TIMEOUT) else "",
        exit_code=run.exit_code,
        command=list(run.argv),
        runner=runner,
        runner_version=version,
        download_s=download_s,
        test_s=run.duration_s,
        solved_packages=list(run.packages),
        failure_excerpt=run.failure_excerpt,
    )


def _isolation(runner, binary, package_path, channels, env, croot, log, *, layout=""):
    """(binary, sandbox for the whole command or None, runner options) of a test: see
    services/test_sandbox.py. Raises SandboxUnavailable when isolation is required but this
    host cannot provide it."""
    if not isolation_required():
        log.write("warning: not isolated: the operator turned test isolation off")
        return binary, None, []
    if runner == RATTLER_RUNNER and layout == "rattler-build" and _has_py_rattler_build():
        # py-rattler-build starts the test scripts itself, as children of the runner: the whole
        # runner goes into the sandbox, with a package cache of its own (the shared one stays
        # out of reach) and the network it installs with, as conda-build does.
        policy = sandbox_policy(
            package_path=package_path,
            channels=channels,
            env={**env, "CONDA_PKGS_DIRS": str(croot / "pkgs")},
            network=True,
            installation=[RATTLER_RUNNER_SCRIPT.parent],
        )
        log.write(describe(policy) + " (rattler-build: the whole test command)")
        return binary, policy, []
    if runner == RATTLER_RUNNER:
        policy = sandbox_policy(
            package_path=package_path,
            channels=channels,
            env=env,
            network=settings.TEST_NETWORK,
        )
        log.write(describe(policy) + " (the test scripts; the environment is installed outside)")
        return binary, None, rattler_sandbox_options(policy, croot)
    path, installation = conda_build_installation(binary, env)
    env = {**env, "CONDA_PKGS_DIRS": conda_build_packages_dirs(croot)}
    policy = sandbox_policy(
        package_path=package_path,
        channels=channels,
        env=env,
        network=True,
        installation=[*installation, Path(settings.CONDA_PKGS_DIR)],
    )
    log.write(describe(policy) + " (the whole conda-build command)")
    if not settings.TEST_NETWORK:
        log.write("note: conda-build installs and tests in one process: its tests keep the network")
    return path, policy, []


def job_workspace(job_id: int) -> Path:
    """The private --croot of one job (local to the host that runs it)."""
    return Path(settings.CONDA_BUILD_CROOT_DIR) / f"job-{job_id}"


def clean_up_dead_runner(*, job_id: int) -> int:
    """A job's runner died without cleaning up (work-horse killed): end what is left of its test
    processes and remove its workspace. Returns how many processes were killed."""
    workspace = job_workspace(job_id)
    killed = kill_leftovers(workspace)
    if workspace.exists():
        shutil.rmtree(workspace, onerror=_log_cleanup_error)
    if killed:
        logger.warning("killed %d leftover test processes of job %s", killed, job_id)
    return killed


def sweep_stale_workspaces() -> int:
    """Clean up every workspace on this host whose job is not being run by a live worker (its
    runner was killed with its worker). Called by every worker's heartbeat."""
    root = Path(settings.CONDA_BUILD_CROOT_DIR)
    if not root.is_dir():
        return 0
    found = {}
    for path in root.glob("job-*"):
        suffix = path.name.removeprefix("job-")
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        return 0
    fresh = timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    live = set(
        Job.objects.filter(
            pk__in=list(found),
            status=Job.Status.RUNNING,
            worker__stopped_at__isnull=True,
            worker__last_heartbeat_at__gte=fresh,
        ).values_list("pk", flat=True)
    )
    return sum(clean_up_dead_runner(job_id=pk) for pk in found if pk not in live)


def _log_cleanup_error(function, path, exc_info) -> None:
    logger.warning("could not remove %s while cleaning a croot: %s", path, exc_info[1])
