"""Benchmark: one real `distro_worker` runs N jobs through the whole lifecycle (dequeue, guarded
start, runner, guarded finish, cell and run upkeep) with a no-op runner, so what is measured is
the per-job overhead of the engine itself.

Run as `.venv/bin/python bench/jobs_lifecycle.py [N] [in-process|fork]` (default 2,000 jobs and
the worker's default execution model, WORKER_EXECUTION). It prints figures and asserts nothing.
DATABASE_URL (PostgreSQL) and REDIS_URL (an empty database) as in bench/_jobs_setup.py.
"""

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from _jobs_setup import BASE_DIR
from _jobs_setup import cell_axes
from _jobs_setup import configure_environment
from _jobs_setup import flush_redis
from _jobs_setup import require_empty_redis

TARGET_OVERHEAD_MS = 30.0


def noop_runner(*, job, worker, on_progress):
    """DISTRO_JOB_RUNNER for this benchmark: passes at once, runs nothing."""
    from testing_app.services.execution import JobOutcome

    return JobOutcome(verdict="passed", runner="noop")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    configure_environment()
    require_empty_redis()
    from django.conf import settings

    execution = sys.argv[2] if len(sys.argv) > 2 else settings.WORKER_EXECUTION

    from django.db.models import Max
    from django.db.models import Min

    from testing_app.models import Job
    from testing_app.models import Run
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.hosts import create_enrollment_token

    axes = cell_axes(subdir=_local_subdir())
    run = Run.objects.create(trigger=Run.Trigger.MANUAL, trigger_detail="bench/jobs_lifecycle")
    enqueue_jobs(
        run=run,
        jobs=[Job(kind="test", python=f"b{i}", **axes) for i in range(count)],
    )
    token = create_enrollment_token(name="bench", pre_approved=True)[1]
    env = {
        **os.environ,
        "DISTRO_JOB_RUNNER": "jobs_lifecycle.noop_runner",
        "PYTHONPATH": os.pathsep.join([str(BASE_DIR / "bench"), str(BASE_DIR)]),
        "DISTRO_ENROLL_TOKEN": token,
        "PATH": os.environ.get("PATH", ""),
    }
    wall, cpu = _timed_run(
        [sys.executable, str(BASE_DIR / "manage.py"), "distro_worker", "--burst"]
        + ["--name", f"bench-{socket.gethostname()}", "--execution", execution],
        env=env,
    )
    jobs = Job.objects.filter(run=run)
    span = jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
    done = jobs.filter(status="finished", verdict="passed").count()
    busy = (span["last"] - span["first"]).total_seconds()
    per_job_ms = 1000 * busy / count
    print(f"jobs run through the lifecycle by one {execution} worker: {done} of {count}")
    print(f"worker wall time (start-up included): {wall:.1f} s")
    print(f"first start -> last finish: {busy:.1f} s = {count / busy:.0f} jobs/s")
    print(f"per-job overhead: {per_job_ms:.1f} ms (target <= {TARGET_OVERHEAD_MS:.0f} ms)")
    print(f"CPU time of the worker (and work-horses): {1000 * cpu / count:.1f} ms per job")
    run.delete()
    flush_redis()
    for worker_class in ("rq.worker.Worker", "rq.worker.SimpleWorker"):
        raw_wall, raw_cpu = _raw_rq_worker(count, worker_class)
        print(
            f"same machine, same run: plain `rq worker -w {worker_class}` (no Django, no "
            f"database) on {count} no-op jobs: {1000 * raw_wall / count:.1f} ms per job wall, "
            f"{1000 * raw_cpu / count:.1f} ms CPU"
        )


def _timed_run(argv: list[str], *, env: dict) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and everything it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _raw_rq_worker(count: int, worker_class: str) -> tuple[float, float]:
    """The floor under an RQ-based engine on this machine: RQ's own worker loop, forking a
    work-horse per job (Worker) or running it in the worker (SimpleWorker)."""
    import django_rq
    from django.conf import settings
    from rq import Queue

    queue = Queue("bench-raw-worker", connection=django_rq.get_connection("default"))
    queue.enqueue_many([Queue.prepare_data("os.getpid", result_ttl=600) for _ in range(count)])
    rq_cli = str(Path(sys.executable).with_name("rq"))
    argv = [rq_cli, "worker", "--burst", "--url", settings.REDIS_URL, "--quiet", "-w", worker_class]
    argv.append(queue.name)
    wall, cpu = _timed_run(argv, env=dict(os.environ))
    flush_redis()
    return wall, cpu


def _local_subdir() -> str:
    import platform

    from testing_app.adapters.host_probe import conda_subdir

    return conda_subdir(platform.system(), platform.machine())


if __name__ == "__main__":
    main()
