"""The worker side of bench/load_test.py: real `manage.py distro_worker` processes that
heartbeat and finish a known number of no-op jobs while the web server is under load, and the
exact accounting of what they did afterwards.

Each worker is its own host (`load-worker-NN`, enrolled with a pre-approved token on its first
start) serving this machine's CPU test queue in a Redis database of its own (LOAD_REDIS_URL,
which must be empty). Jobs are written and queued through the project's own service
(`enqueue_jobs`) in batches spread over the load window; the runner is `counting_noop_runner`
(DISTRO_JOB_RUNNER): it passes at once and appends the job's id to a file, so that every runner
call is counted, not only the rows' final state.
"""

import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST_PREFIX = "load-worker-"
RUNNER_LOG_ENV = "LOAD_RUNNER_LOG"
# gunicorn's 2 workers, this process's feeder and heartbeat watcher, and a margin.
SESSIONS_BESIDE_WORKERS = 8


def counting_noop_runner(*, job, worker, on_progress):
    """DISTRO_JOB_RUNNER of the load test: passes at once and records that it ran `job`."""
    from testing_app.services.execution import JobOutcome

    # One short O_APPEND write per call: lines of concurrent workers never interleave.
    descriptor = os.open(os.environ[RUNNER_LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, f"{job.pk}\n".encode())
    finally:
        os.close(descriptor)
    return JobOutcome(verdict="passed", runner="noop")


def setup_django(database_url: str, redis_url: str) -> None:
    """Django in this process, on the load test's database and Redis (reads and job writes)."""
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DJANGO_SETTINGS_MODULE": "distro_site.settings.base",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("SECRET_KEY", "load-test-only-secret-key-" + "x" * 40)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


class WorkerFleet:
    """`count` distro_worker processes, the jobs fed to them, and the checks afterwards."""

    def __init__(self, *, count: int, jobs: int, heartbeat_s: int, redis_url: str):
        self.count, self.jobs, self.heartbeat_s, self.redis_url = (
            count,
            jobs,
            heartbeat_s,
            redis_url,
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="load-workers-"))
        self.runner_log = self.workdir / "runner-calls.txt"
        self.processes: list[subprocess.Popen] = []
        self.run = None
        self.enqueued: list[int] = []
        self.started_at = None
        self.max_heartbeat_age_s = 0.0
        self._feeder: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    # --- start ----------------------------------------------------------------------------
    def start(self, *, timeout_s: float = 600) -> float:
        """Start the workers and wait until every one has registered; returns seconds taken."""
        import redis
        from django.utils import timezone

        from testing_app.services.hosts import create_enrollment_token

        self._check_connection_capacity()
        # The page cache's copies (expiring within PAGE_CACHE_SECONDS) of an earlier run may
        # still be there; anything else belongs to someone.
        client = redis.Redis.from_url(self.redis_url)
        if any(not key.startswith(b"page:") for key in client.scan_iter(count=1000)):
            sys.exit(
                f"Redis database {self.redis_url} is not empty; set LOAD_REDIS_URL to an empty one"
            )
        token = create_enrollment_token(name="load test", pre_approved=True)[1]
        env = {
            **os.environ,
            "DISTRO_ENROLL_TOKEN": token,
            "DISTRO_JOB_RUNNER": "load_workers.counting_noop_runner",
            RUNNER_LOG_ENV: str(self.runner_log),
            "PYTHONPATH": os.pathsep.join([str(BASE_DIR / "bench"), str(BASE_DIR)]),
            "WORKER_HEARTBEAT_S": str(self.heartbeat_s),
            "WORKER_CPU_QUEUES": "",
            "VAR_DIR": str(self.workdir / "var"),
            "LOG_LEVEL": "WARNING",
        }
        self.started_at = timezone.now()
        began = time.monotonic()
        for index in range(self.count):
            argv = [sys.executable, str(BASE_DIR / "manage.py"), "distro_worker"]
            argv += ["--name", f"{HOST_PREFIX}{index:02d}"]
            log = (self.workdir / f"worker-{index:02d}.log").open("w")
            self.processes.append(
                subprocess.Popen(  # noqa: S603
                    argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        while time.monotonic() - began < timeout_s:
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                self.stop()
                sys.exit(f"{len(dead)} worker(s) exited during start-up; logs in {self.workdir}")
            if len(self._live_workers()) == self.count:
                return time.monotonic() - began
            time.sleep(1)
        self.stop()
        sys.exit(
            f"the workers did not all register within {timeout_s:.0f} s; logs in {self.workdir}"
        )

    def _check_connection_capacity(self) -> None:
        """Each worker holds two PostgreSQL sessions (its jobs' and its heartbeat's): 50 workers
        need 100, PostgreSQL's default max_connections. Refuse to start rather than have jobs
        fail with "too many clients" halfway through."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            free = cursor.fetchone()[0]
        needed = 2 * self.count + SESSIONS_BESIDE_WORKERS
        if free < needed:
            sys.exit(
                f"PostgreSQL has {free} free sessions; {self.count} workers and the web server need"
                f" {needed}: raise max_connections (or run fewer --workers)"
            )

    def _live_workers(self):
        from testing_app.models import WorkerProcess

        return list(
            WorkerProcess.objects.filter(
                host__name__startswith=HOST_PREFIX,
                started_at__gte=self.started_at,
                stopped_at__isnull=True,
            ).values_list("name", "last_heartbeat_at")
        )

    # --- during the load window --------------------------------------------------------------
    def feed(self, seconds: float) -> None:
        """Queue `jobs` no-op jobs in one batch per second over `seconds`, and watch heartbeats."""
        self._feeder = threading.Thread(target=self._feed, args=(seconds,), daemon=True)
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._feeder.start()
        self._watcher.start()

    def _feed(self, seconds: float) -> None:
        from _jobs_setup import cell_axes
        from django.db import connection
        from django.db import transaction

        from testing_app.adapters.host_probe import conda_subdir
        from testing_app.models import Job
        from testing_app.models import Run
        from testing_app.services.dispatch import enqueue_jobs

        try:
            # The cell of the queue these workers serve: this machine's platform, cpu variant.
            axes = cell_axes(subdir=conda_subdir(platform.system(), platform.machine()))
            self.run = Run.objects.create(trigger=Run.Trigger.MANUAL, trigger_detail="load test")
            batches = max(1, int(seconds) - 5)  # the last jobs get a few seconds to finish
            began = time.monotonic()
            for batch in range(batches):
                size = self.jobs * (batch + 1) // batches - self.jobs * batch // batches
                jobs = [
                    Job(kind="test", python=f"load-{len(self.enqueued) + i}", **axes)
                    for i in range(size)
                ]
                with transaction.atomic():  # pushed to Redis when this commits
                    created = enqueue_jobs(run=self.run, jobs=jobs)
                self.enqueued += [job.pk for job in created]
                time.sleep(max(0.0, began + batch + 1 - time.monotonic()))
        finally:
            connection.close()

    def _watch(self) -> None:
        """The stalest heartbeat of the fleet, sampled every second while the load runs."""
        from django.db import connection
        from django.utils import timezone

        try:
            while not self._stop.wait(1.0):
                now = timezone.now()
                beats = [beat for _, beat in self._live_workers()]
                if len(beats) < self.count or None in beats:
                    self.max_heartbeat_age_s = float("inf")
                    continue
                oldest = min(beats)
                self.max_heartbeat_age_s = max(
                    self.max_heartbeat_age_s, (now - oldest).total_seconds()
                )
        finally:
            connection.close()

    def finish(self, *, drain_timeout_s: float = 120) -> None:
        """Wait for the feeder and for the queue to drain, then stop watching."""
        if self._feeder is not None:
            self._feeder.join()
        from testing_app.models import Job

        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            if not Job.objects.filter(run=self.run, status__in=["queued", "running"]).exists():
                break
            time.sleep(0.5)
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()

    def stop(self) -> None:
        """SIGTERM (RQ's warm shutdown: a running job finishes first), then wait."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- afterwards ------------------------------------------------------------------------
    def check(self) -> bool:
        """Print the exact counts; True when every job ran exactly once and every worker lived."""
        import redis
        from django.conf import settings
        from rq import Queue
        from rq.registry import FailedJobRegistry
        from rq.registry import StartedJobRegistry

        from testing_app.models import Job
        from testing_app.models import WorkerProcess

        jobs = Job.objects.filter(run=self.run)
        rows = jobs.count()
        by_state = Counter(
            f"{status} {verdict}".strip()
            for status, verdict in jobs.values_list("status", "verdict")
        )
        retried = (
            jobs.filter(attempt__gt=1).count() + Job.objects.filter(retry_of__run=self.run).count()
        )
        calls = Counter()
        if self.runner_log.exists():
            calls.update(int(line) for line in self.runner_log.read_text().split())
        enqueued = set(self.enqueued)
        once = sum(1 for n in calls.values() if n == 1)
        twice = sum(1 for n in calls.values() if n > 1)
        never = len(enqueued - set(calls))
        foreign = len(set(calls) - enqueued)
        per_worker = Counter(jobs.exclude(worker_name="").values_list("worker_name", flat=True))
        workers = WorkerProcess.objects.filter(
            host__name__startswith=HOST_PREFIX, started_at__gte=self.started_at
        )
        shut_down = workers.filter(stop_reason="shut down").count()
        connection = redis.Redis.from_url(self.redis_url)
        leftovers = {}
        for name in set(jobs.values_list("queue_name", flat=True)):
            queue = Queue(name, connection=connection)
            leftovers[name] = (
                len(queue),
                len(StartedJobRegistry(queue=queue)),
                len(FailedJobRegistry(queue=queue)),
            )
        finished = by_state.get("finished passed", 0)
        print(
            f"jobs enqueued {len(self.enqueued):,}; job rows in the run {rows:,} ({dict(by_state)})"
        )
        print(
            f"runner calls {sum(calls.values()):,}: jobs run once {once:,},"
            f" more than once {twice}, never {never}, not ours {foreign}; retries {retried}"
        )
        print(
            f"workers {workers.count()} started, {len(per_worker)} of them ran jobs (min "
            f"{min(per_worker.values(), default=0)}, max {max(per_worker.values(), default=0)}"
            " each); "
            f"{shut_down} shut down cleanly"
        )
        print(
            f"heartbeats: every {self.heartbeat_s} s; stalest heartbeat of the {self.count} "
            f"workers seen during the window: {self.max_heartbeat_age_s:.1f} s (lost after "
            f"{settings.WORKER_LOST_AFTER_S} s)"
        )
        print(
            "Redis after the run (queued, started, failed): "
            + ", ".join(f"{q} {v}" for q, v in leftovers.items())
        )
        ok = (
            rows == len(self.enqueued) == self.jobs
            and finished == rows
            and twice == never == foreign == retried == 0
            and workers.count() == self.count == shut_down
            and self.max_heartbeat_age_s < settings.WORKER_LOST_AFTER_S
            and all(v == (0, 0, 0) for v in leftovers.values())
        )
        print(f"worker accounting: {'exact' if ok else 'NOT exact'}")
        return ok

    def clean_up(self, *, keep_logs: bool) -> None:
        """Empty the Redis database; keep the workers' logs only when something was off."""
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        if keep_logs:
            print(f"worker logs: {self.workdir}")
        else:
            shutil.rmtree(self.workdir)
