"""Install checks: solve a planned cell's test environment on a CPU before any GPU time.

Every planned cell first gets an `install_check` job (queue `install`). Its runner solves the
environment the test would create (the build, its depends, its test-time dependencies when the
package file is at hand, the variant's specs, the PyTorch pin, the pinned upstream build) with
py-rattler, from the channels the test reads, for the cell's virtual packages (never this
machine's). Unsolvable: the job ends `uninstallable` with the solver's explanation. Solvable:
it ends `passed` with the solved package list, and finish_job enqueues the cell's `test` job
in the same run (enqueue_test_after_check).

One unreadable channel (404, 401, timeout, corrupt repodata) degrades the check, it does not
stop it: rattler, like conda, fails the whole solve for it, so the check solves from the
channels it can read. Solvable without it: `passed`, the channel left out named in the job's
message and log. Not solvable without it: `error` once (not retried: another attempt a minute
later reads the same broken channel), naming the channel, since the answer may be in it.
The channel's own state is the sync's to report (Channel.last_sync_error, on /channels/).

Fork hazard: the solve is async rattler; it runs inside the RQ work-horse (or a SimpleWorker),
never in the web process or a worker parent.
"""

import hashlib
import importlib.metadata
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

from django.conf import settings

from packages_app.selectors.channel_stack import distribution_stack
from testing_app.adapters.downloads import cache_path
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.rattler_runner import PackageReadError
from testing_app.adapters.rattler_runner import read_package_tests
from testing_app.adapters.solver import SolverInputError
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import exact_spec
from testing_app.adapters.solver import solve_environment
from testing_app.adapters.solver import write_candidate_channel
from testing_app.models import Job
from testing_app.models import Variant
from testing_app.models import Verdict
from testing_app.models import WorkerProcess
from testing_app.selectors.installability_plan import candidate_record
from testing_app.services.conda_runner import channel_urls
from testing_app.services.conda_runner import extra_deps
from testing_app.services.conda_runner import redactor
from testing_app.services.dispatch import clone_cell
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.outcomes import JobOutcome
from testing_app.services.outcomes import kept_only_with_its_log

logger = logging.getLogger(__name__)

RUNNER_NAME = "rattler-solver"
CHUNK_BYTES = 1024 * 1024


def platform_virtual_packages(subdir: str) -> list[str]:
    """The virtual packages of the platform (INSTALL_CHECK_VIRTUAL_PACKAGES, else __unix,
    __linux and __glibc, __osx or __win by the subdir's OS), without any __cuda: the cell's
    variant decides that."""
    configured = settings.INSTALL_CHECK_VIRTUAL_PACKAGES.get(subdir)
    if configured is None:
        os_name = subdir.split("-")[0]
        linux = f"__linux={settings.PLAN_LINUX_VERSION}"
        glibc = f"__glibc={settings.PLAN_GLIBC_VERSION}"
        configured = {
            "linux": ["__unix=0", linux, glibc],
            "osx": ["__unix=0", f"__osx={settings.PLAN_OSX_VERSION}"],
            "win": ["__win=0"],
        }.get(os_name, [])
    return [v for v in configured if not v.startswith("__cuda")]


def cell_virtual_packages(*, variant: Variant, subdir: str) -> list[str]:
    """What the solver assumes of the machine: the platform's, plus `__cuda=<version>` for a
    CUDA variant (the driver a host needs to run it)."""
    virtual = platform_virtual_packages(subdir)
    if variant.kind == Variant.Kind.CUDA:
        cuda = variant.min_driver_cuda or variant.accelerator_version
        if cuda:
            virtual.append(f"__cuda={cuda}")
    return virtual


def package_test_requirements(job: Job, *, note: Callable[[str], None]) -> list[str]:
    """The build's test-time dependencies, read from its package file when it is at hand: in a
    file:// channel, or already downloaded into ARTIFACT_DIR. Checked against the build's
    sha256 first; a file that does not match is not used (PackageReadError)."""
    build = job.build
    path = _local_package(job)
    if path is None:
        note("test-time dependencies: unknown (the package file is not on this machine)")
        return []
    if build.sha256 and _sha256(path) != build.sha256.lower():
        raise PackageReadError(f"{path.name} does not match the build's sha256; not used")
    tests = read_package_tests(path)
    requirements = list(tests.requirements)
    if tests.needs_python and "python" not in {r.split()[0] for r in requirements if r}:
        requirements.append("python")
    note(f"test-time dependencies ({tests.layout or 'no tests'}): {requirements or 'none'}")
    return requirements


def _local_package(job: Job) -> Path | None:
    build = job.build
    parsed = urlparse(build.download_url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return path if path.is_file() else None
    if build.sha256 or build.md5:
        cached = cache_path(
            cache_dir=Path(settings.ARTIFACT_DIR),
            filename=build.filename,
            sha256=build.sha256,
            md5=build.md5,
        )
        return cached if cached.is_file() else None
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def environment_specs(job: Job, *, test_requirements: list[str]) -> list[str]:
    """The specs of the test environment: the build exactly, its test-time dependencies, and
    what the test adds (extra_deps: PyTorch pin, variant, pinned upstream build, python)."""
    own = exact_spec(candidate_record(job.build))
    return [own, *test_requirements, *extra_deps(job)]


def run_install_check(
    *, job: Job, worker: WorkerProcess | None, on_progress: Callable[[str], None]
) -> JobOutcome:
    """The install_check job's runner (execution.runner_for): solve, log, report."""
    job = Job.objects.select_related(
        "build__channel", "torch_release", "variant", "platform", "pinned_build"
    ).get(pk=job.pk)
    log = JobLog(
        Path(settings.LOG_DIR) / f"{job.pk}.log",
        redact=redactor(),
        tail_lines=settings.LOG_TAIL_LINES,
    )
    started = time.monotonic()
    try:
        outcome = _check(job, log)
    finally:
        tail = log.tail()
        path = log.finish()
    return replace(
        kept_only_with_its_log(outcome, log),
        log_path=path.name,
        log_tail=tail,
        test_s=time.monotonic() - started,
    )


def _check(job: Job, log: JobLog) -> JobOutcome:
    version = _rattler_version()
    base = {"runner": RUNNER_NAME, "runner_version": version}
    subdir = job.platform.subdir
    virtual = cell_virtual_packages(variant=job.variant, subdir=subdir)
    python = f" x Python {job.python}" if job.python else ""
    log.step("read the package's test requirements")
    log.write(
        f"install check of {job.build.filename}: PyTorch {job.torch_release.version} x "
        f"{job.variant.name} x {subdir}{python}"
    )
    if job.planning_note:
        log.write(f"{job.planning_note}; this install check decides the cell")
    try:
        requirements = package_test_requirements(job, note=log.write)
    except PackageReadError as exc:
        log.write(f"error: {exc}")
        return JobOutcome(verdict=Verdict.ERROR, error_message=str(exc), retryable=False, **base)
    specs = environment_specs(job, test_requirements=requirements)
    with tempfile.TemporaryDirectory(prefix=f"install-check-{job.pk}-") as tmp:
        stack = distribution_stack()
        channels = channel_urls(job)
        if job.pinned_build_id or channels[0] != job.build.channel.base_url:
            # The build (and the pinned upstream build) from a channel of their own, put first,
            # as the test gets it: strict priority (the stack's default) would otherwise take
            # that name from the first channel holding it. (A build of the first channel needs
            # no such help.)
            builds = [job.build, *([job.pinned_build] if job.pinned_build_id else [])]
            own = write_candidate_channel(Path(tmp), [candidate_record(b) for b in builds])
            channels = [own, *channels]
        lines = (f"specs: {specs}", f"channels: {channels}", f"stack: {stack.describe()}",
                 f"virtual: {virtual}")  # fmt: skip
        log.step("solve the test environment")
        for line in lines:
            log.write(line)
        try:
            result = solve_environment(
                channels=channels,
                platform=subdir,
                specs=specs,
                virtual_packages=virtual,
                timeout_s=settings.SOLVER_TIMEOUT_S,
                channel_priority=stack.priority,
                pip_as_python_dependency=stack.pip_as_python_dependency,
                skip_unreadable=True,
            )
        except SolverInputError as exc:
            log.write(f"error: {exc}")
            return JobOutcome(
                verdict=Verdict.ERROR,
                error_message=f"The environment cannot be described to the solver: {exc}",
                retryable=False,
                **base,
            )
        except SolverUnavailable as exc:
            log.write(f"error: a channel could not be read: {exc}")
            return JobOutcome(
                verdict=Verdict.ERROR, error_message=f"A channel could not be read: {exc}", **base
            )
    command = ["solve", *specs]
    left_out = left_out_message(result.left_out)
    if left_out:
        log.write(left_out)
    if not result.ok and result.left_out:
        log.write(result.explanation)
        log.write("verdict: error (not solvable without the channels left out)")
        return JobOutcome(
            verdict=Verdict.ERROR,
            error_message=f"{left_out}. Without it the environment does not solve; the "
            "answer may be in the channel left out, so this is not called uninstallable.",
            command=command,
            retryable=False,
            **base,
        )
    if not result.ok:
        log.write(result.explanation)
        log.write(f"verdict: uninstallable (solver answered in {result.seconds:.2f} s)")
        return JobOutcome(
            verdict=Verdict.UNINSTALLABLE,
            failure_excerpt=result.explanation,
            command=command,
            **base,
        )
    packages = [p.as_dict() for p in result.packages]
    log.write(f"solved in {result.seconds:.2f} s: {len(packages)} packages")
    for package in packages:
        log.write(f"  {package['name']} {package['version']} {package['build']}")
    if settings.TESTS_NEED_PACKAGE_FILE and _local_package(job) is None:
        # No test can run without the file: the cell ends "installable, not tested" instead of
        # queueing a test that could only fail to download it.
        log.write("verdict: installable, not tested (the package file is not on this machine)")
        return JobOutcome(
            verdict=Verdict.INSTALLABLE,
            error_message=left_out,
            command=command,
            solved_packages=packages,
            **base,
        )
    return JobOutcome(
        verdict=Verdict.PASSED,
        error_message=left_out,
        command=command,
        solved_packages=packages,
        **base,
    )


def left_out_message(left_out: tuple[tuple[str, str], ...]) -> str:
    """`Solved without <url> (unreadable: <why>)` for the channels a solve went without."""
    if not left_out:
        return ""
    named = "; ".join(f"{url} (unreadable: {why.splitlines()[0][:300]})" for url, why in left_out)
    return f"Solved without {named}"


def _rattler_version() -> str:
    try:
        return importlib.metadata.version("py-rattler")
    except importlib.metadata.PackageNotFoundError:
        return ""


def enqueue_test_after_check(*, check: Job) -> Job:
    """The cell's test job, after its install check passed: same run, same cell and inputs, the
    test timeout. Called by execution.finish_job inside its transaction (one enqueue path:
    enqueue_jobs pushes it to its capability queue after the commit)."""
    test = clone_cell(
        check,
        kind=Job.Kind.TEST,
        attempt=1,
        retry_of=None,
        avoid_host_ids=[],
        timeout_s=settings.TEST_JOB_TIMEOUT_S,
        max_attempts=settings.TEST_JOB_MAX_ATTEMPTS,
    )
    (created,) = enqueue_jobs(run=check.run, jobs=[test])
    logger.info("install check %s passed: test job %s queued", check.pk, created.pk)
    return created
