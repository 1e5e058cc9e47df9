"""Benchmark: N jobs (default 10,000) written to PostgreSQL and pushed to Redis by the real
path (`enqueue_jobs`: bulk insert, cell upkeep, commit, then `enqueue_many` per queue), against
raw RQ `enqueue_many` of the same count, in the same run. Target: ours >= 0.5 x raw.

Run as `.venv/bin/python bench/jobs_enqueue.py [N] [ROUNDS]` (default 10,000 and 5 rounds). It
prints figures and asserts nothing. DATABASE_URL (PostgreSQL) and REDIS_URL (an empty database)
as in bench/_jobs_setup.py.
"""

import resource
import statistics
import sys
import time

from _jobs_setup import cell_axes
from _jobs_setup import configure_environment
from _jobs_setup import flush_redis
from _jobs_setup import require_empty_redis

TARGET_RATIO = 0.5


def _cpu_s() -> float:
    """CPU seconds of this process (user + system); PostgreSQL's and Redis's are not in it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(count: int, axes: dict) -> tuple[float, float]:
    from django.db import transaction

    from testing_app.models import CellResult
    from testing_app.models import Job
    from testing_app.models import Run
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.dispatch import rq_queue

    run = Run.objects.create(trigger=Run.Trigger.MANUAL, trigger_detail="bench/jobs_enqueue")
    started, cpu = time.perf_counter(), _cpu_s()
    with transaction.atomic():  # the push happens when this commits
        jobs = [Job(kind="test", python=f"e{i}", **axes) for i in range(count)]
        created = enqueue_jobs(run=run, jobs=jobs)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    queue = rq_queue(created[0].queue_name)
    if queue.count != count:
        print(f"warning: {queue.count} of {count} jobs reached Redis")
    CellResult.objects.filter(build=axes["build"]).delete()
    run.delete()
    flush_redis()
    return elapsed, cpu


def raw(count: int) -> tuple[float, float]:
    import django_rq
    from rq import Queue

    queue = Queue("bench-raw-enqueue-many", connection=django_rq.get_connection("default"))
    started, cpu = time.perf_counter(), _cpu_s()
    data = [
        Queue.prepare_data(
            "testing_app.jobs.rq_execute_job",
            args=(i,),
            job_id=f"raw-{i}",
            timeout=4500,
            result_ttl=600,
        )
        for i in range(count)
    ]
    queue.enqueue_many(data)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    flush_redis()
    return elapsed, cpu


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    configure_environment()
    require_empty_redis()
    axes = cell_axes()
    ours_s, raw_s = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine load
        ours_s.append(ours(count, axes))
        raw_s.append(raw(count))
    print(f"{count} jobs, {rounds} rounds (median; all rounds in brackets; CPU of this process)")
    for label, figures in (
        ("enqueue_jobs (PostgreSQL rows + cells + Redis)", ours_s),
        ("raw RQ enqueue_many                           ", raw_s),
    ):
        wall = statistics.median(w for w, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        print(
            f"{label}: {wall:.2f} s = {count / wall:,.0f} jobs/s, CPU {cpu:.2f} s  "
            f"[{', '.join(f'{w:.2f}' for w, _ in figures)}]"
        )
    ratios = [r / o for (o, _), (r, _) in zip(ours_s, raw_s, strict=True)]
    cpu_ratios = [r / o for (_, o), (_, r) in zip(ours_s, raw_s, strict=True)]
    print(
        f"ratio (ours / raw, jobs/s), per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f} (target >= {TARGET_RATIO}); "
        f"on CPU time: median {statistics.median(cpu_ratios):.2f}"
    )


if __name__ == "__main__":
    main()
