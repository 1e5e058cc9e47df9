"""Benchmark: a PyTorch release wave on a simulated heterogeneous fleet, with real parts.

Run as `.venv/bin/python bench/wave_sim.py [--packages N] [--time-scale S]`. Prints figures,
asserts nothing. DATABASE_URL (PostgreSQL; default conda_distro_bench_waves, created when
missing) and REDIS_URL (an empty database, flushed afterwards) as bench/_jobs_setup.py says.

What is real: the catalog (bench/planning_scale.py's generator: N packages, 10 PyTorch
releases, 6 variants, 4 platforms; 2,000 packages plan 11,128 install checks and as many
tests), the planner (plan_release_wave), the push order, RQ, one `manage.py distro_worker`
process per host of FLEET (19) with their queue choice, the routing of CUDA variants by GPU
architecture (the product's table), the guarded job lifecycle and the install check -> test
chain. What is simulated, through the two settings meant only for this
(testing_app/services/simulation.py): each worker's host facts (SIMULATED_HOST_FACTS: platform,
GPU architecture, driver CUDA or ROCm, so one machine plays the whole fleet) and its runner
(SIMULATED_JOB_RUNNER: sleeps the cell's log-normal duration times --time-scale).

History: the estimates that order the wave come from the previous release's jobs, which this
bench writes first as finished jobs with that release's simulated durations (the same package
medians, different per-cell noise), as a real deployment would have them.

Printed: the makespan (from the planning commit to the last job's end), the lower bound
LB = max(longest job, for every set of hosts the work only that set can serve / its size,
total work / hosts) over the jobs' simulated durations, the ratio, and each host's time (busy,
asleep, idle before its first job, between jobs, after its last job, install checks taken and
the time inside them). The bound ignores the
per-job overhead and the install check -> test precedence, so it is below what any schedule
can reach on this machine; the bench also prints it with this run's measured per-job cost
added to every job.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from statistics import median

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conda_distro_bench_waves")

from _jobs_setup import BASE_DIR  # noqa: E402
from _jobs_setup import configure_environment  # noqa: E402
from _jobs_setup import flush_redis  # noqa: E402
from _jobs_setup import require_empty_redis  # noqa: E402

HOST_PREFIX = "sim-host-"
WAVE_RELEASE = "2.11.0"
PREVIOUS_RELEASE = "2.10.0"
# The fleet: (platform, driver CUDA or "", GPU compute capability or "", ROCm or "", how many
# hosts). A driver serves every CUDA variant up to its own, and a CUDA variant only where the
# GPU's architecture runs the release's build (testing_app/planner/reference/cuda_arch_support.csv:
# a Blackwell sm_120 card is not in CUDA 12.6's list, a Volta sm_70 card no longer in 13.0's; on
# win-64, where the table has no row, the toolkit's limits apply); a ROCm host serves every ROCm
# variant up to its own; a host without GPU serves cpu only. Every host also serves `install`.
# Sized so that each platform's hosts have about the same work per host at design scale (the
# generated upstream channel has no ROCm PyTorch, so ROCm cells are not applicable there and the
# ROCm host takes linux-64 cpu and install work).
FLEET = [
    ("linux-64", "13.0", "12.0", "", 1),  # Blackwell workstation card: cuda13.0, cuda12.8
    ("linux-64", "13.0", "9.0", "", 1),  # Hopper: cuda13.0, 12.8, 12.6
    ("linux-64", "13.0", "7.0", "", 1),  # Volta: cuda12.8, 12.6 (13.0 dropped sm_70)
    ("linux-64", "12.6", "8.0", "", 1),  # Ampere, older driver: cuda12.6
    ("linux-64", "", "", "7.2", 1),  # ROCm 7.2: rocm7.2, rocm7.1 (and linux-64 cpu)
    ("linux-aarch64", "13.0", "9.0", "", 2),  # Grace Hopper: cuda13.0, 12.8, 12.6
    ("linux-aarch64", "13.0", "10.0", "", 2),  # Grace Blackwell: cuda13.0, 12.8
    ("linux-aarch64", "12.8", "8.0", "", 1),  # Ampere: cuda12.8, 12.6
    ("linux-aarch64", "", "", "", 1),
    ("win-64", "13.0", "12.0", "", 2),  # Blackwell: cuda13.0, 12.8
    ("win-64", "13.0", "8.9", "", 2),  # Ada: cuda13.0, 12.8, 12.6
    ("win-64", "12.8", "8.6", "", 1),  # Ampere: cuda12.8, 12.6
    ("win-64", "12.6", "7.5", "", 1),  # Turing: cuda12.6
    ("win-64", "", "", "", 1),
    ("osx-arm64", "", "", "", 1),
]


def host_facts(subdir: str, cuda: str, capability: str, rocm: str, index: int) -> dict:
    gpus = []
    if cuda:
        gpu = {"index": 0, "name": f"simulated GPU sm_{capability.replace('.', '')}",
               "uuid": f"GPU-sim-{index}"}  # fmt: skip
        gpus = [{**gpu, "memory_mib": 81920, "driver_version": "sim",
                 "compute_capability": capability}]  # fmt: skip
    return {"subdir": subdir, "gpus": gpus, "max_cuda": cuda, "rocm_version": rocm,
            "driver_version": "sim" if cuda else "", "rattler_version": "sim"}  # fmt: skip


def seed_history(packages: int, scale: float) -> int:
    """Finished jobs of the previous release on every cell the wave can plan."""
    from django.conf import settings
    from django.utils import timezone

    from packages_app.models import Build
    from packages_app.models import TorchRelease
    from testing_app.models import Job
    from testing_app.models import Platform
    from testing_app.models import Run
    from testing_app.models import Variant
    from testing_app.services.simulation import simulated_seconds

    release = TorchRelease.objects.get(version=PREVIOUS_RELEASE)
    run = Run.objects.create(trigger="torch_release", trigger_detail="history", state="finished")
    builds = list(Build.objects.filter(channel__role="staging").select_related("package"))
    variants, platforms = list(Variant.objects.all()), list(Platform.objects.all())
    allowed = settings.PLAN_VARIANT_SUBDIRS
    now = timezone.now()
    rows = []
    for build in builds:
        for variant in variants:
            for platform in platforms:
                if variant.kind in allowed and platform.subdir not in allowed[variant.kind]:
                    continue
                for kind in ("install_check", "test"):
                    seconds = scale * simulated_seconds(
                        kind=kind, package=build.package.name, variant=variant.name,
                        subdir=platform.subdir, python="3.14", release=release.version,
                    )  # fmt: skip
                    rows.append(Job(
                        run=run, kind=kind, build=build, torch_release=release, variant=variant,
                        platform=platform, python="3.14", status="finished", verdict="passed",
                        queue_name="history", started_at=now, finished_at=now,
                        duration_s=seconds,
                    ))  # fmt: skip
    Job.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def start_fleet(workdir: Path, scale: float, queue_order: str) -> list[subprocess.Popen]:
    from testing_app.services.hosts import create_enrollment_token

    token = create_enrollment_token(name="wave simulation", pre_approved=True)[1]
    processes = []
    hosts = [(s, c, a, r) for s, c, a, r, n in FLEET for _ in range(n)]
    for index, (subdir, cuda, capability, rocm) in enumerate(hosts):
        env = {
            **os.environ,
            "DISTRO_ENROLL_TOKEN": token,
            "SIMULATED_HOST_FACTS": json.dumps(host_facts(subdir, cuda, capability, rocm, index)),
            "SIMULATED_JOB_RUNNER": "testing_app.services.simulation.sleeping_runner",
            "SIMULATION_TIME_SCALE": str(scale),
            "WORKER_CPU_QUEUES": "install",
            "WORKER_QUEUE_ORDER": queue_order,
            "VAR_DIR": str(workdir / f"var-{index}"),
            "LOG_DIR": str(workdir / f"logs-{index}"),
            "LOG_LEVEL": "WARNING",
        }
        log = (workdir / f"worker-{index:02d}.log").open("w")
        argv = [sys.executable, str(BASE_DIR / "manage.py"), "distro_worker", "--name",
                f"{HOST_PREFIX}{index:02d}"]  # fmt: skip
        processes.append(subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log,  # noqa: S603
                                          stderr=subprocess.STDOUT))  # fmt: skip
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM (a worker finishes its job first), SIGKILL what is left after a minute."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + 60
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_registered(processes, count: int, since, workdir: Path) -> None:
    from testing_app.models import WorkerProcess

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            sys.exit(f"a worker exited during start-up; logs in {workdir}")
        live = WorkerProcess.objects.filter(
            host__name__startswith=HOST_PREFIX, started_at__gte=since, stopped_at__isnull=True
        ).count()
        if live == count:
            return
        time.sleep(1)
    sys.exit(f"the workers did not all register; logs in {workdir}")


def require_served(run, since) -> None:
    """Stop at once if the plan queued work no simulated host serves (it would never end)."""
    from testing_app.models import Job
    from testing_app.models import WorkerProcess

    served = {
        queue
        for queues in WorkerProcess.objects.filter(
            host__name__startswith=HOST_PREFIX, started_at__gte=since
        ).values_list("queues", flat=True)
        for queue in queues
    }
    planned = set(Job.objects.filter(run=run).values_list("queue_name", flat=True))
    if planned - served:
        sys.exit(f"no simulated host serves {sorted(planned - served)}; extend FLEET")


def lower_bound(work: list[tuple[float, frozenset]], hosts: int) -> tuple[float, str]:
    """max(longest job, max over host sets S of work only S can serve / |S|, total / hosts).
    Only unions of the jobs' serving sets need checking: any other set can shrink to the
    union of the serving sets inside it, keeping its work with fewer hosts."""
    longest = max(seconds for seconds, _ in work)
    by_set: dict[frozenset, float] = defaultdict(float)
    for seconds, serving in work:
        by_set[serving] += seconds
    unions = {frozenset()}
    for serving in by_set:
        unions |= {u | serving for u in unions}
    best, best_set = sum(by_set.values()) / hosts, "all hosts"
    for union in unions:
        if not union:
            continue
        only = sum(w for s, w in by_set.items() if s <= union)
        if only / len(union) > best:
            best, best_set = only / len(union), f"{len(union)} hosts: {sorted(union)}"
    if longest > best:
        return longest, "the longest job"
    return best, best_set


def between_jobs(by_host: dict[str, list]) -> list[float]:
    """Every gap from one job's end to the next one's start on the same host."""
    gaps = []
    for jobs in by_host.values():
        ordered = sorted(jobs, key=lambda j: j.started_at)
        gaps += [(b.started_at - a.finished_at).total_seconds() for a, b in pairwise(ordered)]
    return gaps or [0.0]


def describe(worker) -> str:
    """ "linux-64 sm_90 CUDA 13.0: cuda13.0 cuda12.8 cuda12.6 cpu" """
    host = worker.host
    gpu = (host.gpus or [{}])[0]
    parts = [host.platform.subdir]
    if gpu.get("compute_capability"):
        parts.append(f"sm_{gpu['compute_capability'].replace('.', '')}")
    if host.max_cuda:
        parts.append(f"CUDA {host.max_cuda}")
    if host.rocm_version:
        parts.append(f"ROCm {host.rocm_version}")
    variants = [q.split(".", 2)[2] for q in worker.queues if q.startswith("test.") and "@" not in q]
    return " ".join(parts) + ": " + " ".join(variants)


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=2000)
    # 0.001: at 0.0005 an install check sleeps 7.5 ms against this machine's 30-65 ms of cost
    # per job, and the run measures that cost instead of the schedule (bench/README.md).
    parser.add_argument("--time-scale", type=float, default=0.001,
                        help="sleep = simulated s x this (0.001: 8 min -> 0.48 s)")  # fmt: skip
    parser.add_argument("--queue-order", default="remaining-work",
                        choices=["remaining-work", "fixed"])  # fmt: skip
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    configure_environment()
    require_empty_redis()
    from django.db import connections
    from django.utils import timezone
    from planning_scale import generate

    from packages_app.models import TorchRelease
    from testing_app.models import Host
    from testing_app.models import Job
    from testing_app.models import Run
    from testing_app.models import WorkerProcess
    from testing_app.services.planning import plan_release_wave
    from testing_app.services.simulation import simulated_seconds

    WorkerProcess.objects.filter(host__name__startswith=HOST_PREFIX).delete()
    Host.objects.filter(name__startswith=HOST_PREFIX).delete()
    began = time.perf_counter()
    generate(args.packages)
    history = seed_history(args.packages, args.time_scale)
    print(f"catalog of {args.packages} packages and {history:,} history jobs in "
          f"{time.perf_counter() - began:.1f} s")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="wave-sim-"))
    since = timezone.now()
    hosts = sum(n for *_, n in FLEET)
    processes = start_fleet(workdir, args.time_scale, args.queue_order)
    try:
        wait_registered(processes, hosts, since, workdir)
        print(f"{hosts} distro_worker processes registered (queue order: {args.queue_order})")
        release = TorchRelease.objects.get(version=WAVE_RELEASE)
        mark = time.perf_counter()
        report = plan_release_wave(release=release)
        planned_at = timezone.now()
        print(f"planned: {report.summary()} in {time.perf_counter() - mark:.1f} s")
        run = report.run
        require_served(run, since)
        while Run.objects.filter(pk=run.pk).exclude(state=Run.State.FINISHED).exists():
            if any(p.poll() is not None for p in processes):
                sys.exit(f"a worker died; logs in {workdir}")
            time.sleep(2)
    finally:
        stop(processes)
        connections.close_all()
    jobs = list(
        Job.objects.filter(run=run).select_related(
            "build__package", "variant", "platform", "torch_release", "worker"
        )
    )
    unfinished = [j for j in jobs if j.status != Job.Status.FINISHED or j.verdict != "passed"]
    serving = defaultdict(set)
    workers = list(WorkerProcess.objects.filter(host__name__startswith=HOST_PREFIX,
                                                started_at__gte=since))  # fmt: skip
    for worker in workers:
        for queue in worker.queues:
            serving[queue].add(worker.host.name)
    work, busy, by_host = [], defaultdict(float), defaultdict(list)
    for job in jobs:
        seconds = args.time_scale * simulated_seconds(
            kind=job.kind, package=job.build.package.name, variant=job.variant.name,
            subdir=job.platform.subdir, python=job.python, release=job.torch_release.version,
        )  # fmt: skip
        work.append((seconds, frozenset(serving[job.queue_name])))
        if job.started_at and job.finished_at:
            name = job.host.name if job.host else "?"
            busy[name] += (job.finished_at - job.started_at).total_seconds()
            by_host[name].append(job)
    end = max(j.finished_at for j in jobs)
    makespan = (end - planned_at).total_seconds()
    bound, reason = lower_bound(work, hosts)
    tests = sum(1 for j in jobs if j.kind == "test")
    print(f"jobs: {len(jobs):,} ({len(jobs) - tests:,} install checks, {tests:,} tests); "
          f"not passed: {len(unfinished)}")  # fmt: skip
    print(f"simulated work: {sum(w for w, _ in work):,.0f} host-s; longest job "
          f"{max(w for w, _ in work):.1f} s; median "
          f"{sorted(w for w, _ in work)[len(work) // 2]:.2f} s")  # fmt: skip
    slept = sum(w for w, _ in work)
    inside = sum(busy.values())
    gaps = between_jobs(by_host)
    print(f"where host time went: {slept:,.0f} s asleep in runners, {inside - slept:,.0f} s of "
          f"lifecycle around them ({(inside - slept) / len(jobs) * 1000:.0f} ms a job), "
          f"{hosts * makespan - inside:,.0f} s between jobs (dequeue, idle); gap from a job's end "
          f"to the next one's start on a host: median {median(gaps) * 1000:.0f} ms")  # fmt: skip
    print(f"makespan {makespan:.1f} s; lower bound {bound:.1f} s ({reason}); "
          f"ratio {makespan / bound:.3f} (goal <= 1.10)")  # fmt: skip
    per_job = (inside - slept) / len(jobs)
    with_overhead, _ = lower_bound([(w + per_job, s) for w, s in work], hosts)
    print(f"lower bound with the measured lifecycle per job added to every job: "
          f"{with_overhead:.1f} s; ratio {makespan / with_overhead:.3f}")  # fmt: skip
    with_gaps, _ = lower_bound([(w + per_job + median(gaps), s) for w, s in work], hosts)
    print(f"... and the median gap between jobs too (this machine's whole per-job cost): "
          f"{with_gaps:.1f} s; ratio {makespan / with_gaps:.3f} (the schedule alone)")  # fmt: skip
    print("host          capabilities                        queues  jobs  busy s  asleep s  "
          "before first s  between s  after last s  checks  checks s")  # fmt: skip
    for worker in sorted(workers, key=lambda w: w.host.name):
        name = worker.host.name
        mine = sorted(by_host[name], key=lambda j: j.started_at)
        asleep = sum(j.test_s or 0 for j in mine)
        first = (mine[0].started_at - planned_at).total_seconds() if mine else makespan
        last = (end - mine[-1].finished_at).total_seconds() if mine else 0.0
        between = makespan - busy[name] - first - last
        checks = [j for j in mine if j.kind == "install_check"]
        checks_s = sum((j.finished_at - j.started_at).total_seconds() for j in checks)
        print(f"{name:<13} {describe(worker):<36} {len(worker.queues):>6} {len(mine):>5} "
              f"{busy[name]:>7.1f} {asleep:>9.1f} {first:>15.1f} {between:>10.1f} "
              f"{last:>13.1f} {len(checks):>7} {checks_s:>9.1f}")  # fmt: skip
    flush_redis()


if __name__ == "__main__":
    main()
