"""Fleet simulation parts (bench/wave_sim.py): a runner that sleeps instead of testing, and host
facts given instead of probed. Plugged in only through SIMULATED_JOB_RUNNER and
SIMULATED_HOST_FACTS, which a deployment never sets; everything else a simulated job goes
through (planning, RQ, the worker loop, the guarded lifecycle, CellResult) is the real thing.

Durations. Each job sleeps its cell's simulated duration times SIMULATION_TIME_SCALE. A test's
duration is its package's base duration (log-normal, median SIM_MEDIAN_TEST_S, sigma
SIM_PACKAGE_SIGMA: test-suite lengths across packages span orders of magnitude, and job-time
distributions of CI systems are commonly fitted with a log-normal; a sigma of 1.1 makes the
longest of 2,000 packages about 40x the median, the few long jobs that decide a wave's end)
times a factor for the variant (GPU tests run more) and the platform (Windows runners are
slower), times a per-cell noise (log-normal, sigma SIM_CELL_SIGMA) that differs between PyTorch
releases, so last release's durations estimate this release's only roughly. An install check
is a solve: log-normal around SIM_MEDIAN_INSTALL_CHECK_S. Every draw is a hash of the cell and
SIMULATION_SEED, so the bench computes the same durations for its lower bound.
"""

import hashlib
import json
import math
import time
from collections.abc import Callable
from statistics import NormalDist

from django.conf import settings

from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import HostFacts
from testing_app.models import Job
from testing_app.models import WorkerProcess
from testing_app.models.verdicts import Verdict
from testing_app.services.outcomes import JobOutcome

SIM_MEDIAN_TEST_S = 480.0
SIM_MEDIAN_INSTALL_CHECK_S = 15.0
SIM_PACKAGE_SIGMA = 1.1
SIM_CELL_SIGMA = 0.3
SIM_INSTALL_CHECK_SIGMA = 0.5
VARIANT_FACTORS = {"cpu": 1.0, "cuda": 1.5, "rocm": 1.7}
PLATFORM_FACTORS = {"linux-64": 1.0, "linux-aarch64": 1.2, "win-64": 1.6, "osx-arm64": 0.9}
_UNIT = NormalDist()


def _normal(*parts: object) -> float:
    """A standard normal draw fixed by `parts` (and the seed): same cell, same number."""
    seed = settings.SIMULATION_SEED
    digest = hashlib.blake2b("|".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return _UNIT.inv_cdf(uniform)


def variant_factor(variant_name: str) -> float:
    kind = variant_name.rstrip("0123456789.")
    return VARIANT_FACTORS.get(kind, 1.0)


def simulated_seconds(
    *, kind: str, package: str, variant: str, subdir: str, python: str, release: str
) -> float:
    """The unscaled duration of one job of a cell in PyTorch release `release`."""
    if kind == Job.Kind.INSTALL_CHECK:
        noise = _normal("check", package, variant, subdir, python, release)
        return SIM_MEDIAN_INSTALL_CHECK_S * math.exp(SIM_INSTALL_CHECK_SIGMA * noise)
    base = SIM_MEDIAN_TEST_S * math.exp(SIM_PACKAGE_SIGMA * _normal("package", package))
    cell = math.exp(SIM_CELL_SIGMA * _normal("cell", package, variant, subdir, python, release))
    return base * variant_factor(variant) * PLATFORM_FACTORS.get(subdir, 1.0) * cell


def sleeping_runner(
    *, job: Job, worker: WorkerProcess | None, on_progress: Callable[[str], None]
) -> JobOutcome:
    """SIMULATED_JOB_RUNNER: sleep the cell's scaled duration, then pass."""
    job = Job.objects.select_related("build__package", "variant", "platform", "torch_release").get(
        pk=job.pk
    )
    package = job.build.package.name if job.build.package_id else job.build.name
    seconds = settings.SIMULATION_TIME_SCALE * simulated_seconds(
        kind=job.kind,
        package=package,
        variant=job.variant.name,
        subdir=job.platform.subdir,
        python=job.python,
        release=job.torch_release.version,
    )
    started = time.monotonic()
    time.sleep(seconds)
    return JobOutcome(
        verdict=Verdict.PASSED,
        runner="simulated",
        command=["sleep", f"{seconds:.3f}"],
        test_s=time.monotonic() - started,
    )


def simulated_host_facts(text: str) -> HostFacts:
    """SIMULATED_HOST_FACTS (a JSON object of HostFacts fields; `gpus` a list of GpuFacts
    objects) as the HostFacts that distro_worker would otherwise probe."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SIMULATED_HOST_FACTS is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "subdir" not in data:
        raise ValueError("SIMULATED_HOST_FACTS must be a JSON object naming at least `subdir`")
    gpus = [GpuFacts(**gpu) for gpu in data.pop("gpus", [])]
    defaults = {
        "os_name": "simulated",
        "os_version": "",
        "kernel": "",
        "glibc_version": "",
        "cpu_model": "simulated",
        "cpu_count": 1,
        "memory_bytes": None,
    }
    try:
        return HostFacts(**{**defaults, **data, "gpus": gpus})
    except TypeError as exc:
        raise ValueError(f"SIMULATED_HOST_FACTS: {exc}") from exc
