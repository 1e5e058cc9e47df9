"""The RQ worker classes distro_worker runs: RQ's worker loop plus this project's rules.

Two execution models, chosen with WORKER_EXECUTION (see worker_class() in
commands/distro_worker.py, which imports both modules, so neither imports the other):

- `in-process` (the default, DistroWorker): the job runs in the worker process itself, as with
  RQ's SimpleWorker. A work-horse per job would add little isolation: the part of a job that
  runs foreign code (conda-build, the rattler runner) is already a process group of its own
  with a hard timeout that kills the whole group, and it dies with the worker (Linux); what
  runs in the worker is this project's own lifecycle code. A fork per job cost more CPU than
  the whole lifecycle (bench/README.md, 2,000 no-op jobs: 39 ms CPU and 45 ms wall per job
  forking, 12.5 ms CPU and 18 ms wall in-process), and rattler's async runtime is not
  fork-safe, which a process that never forks need not work around.
- `fork` (ForkingDistroWorker, testing_app/management/forking_worker.py): RQ's forking worker, one
  work-horse per job, for a deployment that wants a job's Python code out of the worker (a
  leak or crash in it cannot outlive the job).

What both do:
- Heartbeats go to PostgreSQL (WorkerProcess), idle or busy, every WORKER_HEARTBEAT_S.
- Before taking a job it asks whether its host may take jobs (not pending, draining or
  quarantined); a running job is never interrupted by a state change.
- It takes its next job from the queue with the most remaining work per serving worker
  (services/queue_work.py), so the queues only a few hosts serve do not fall behind.
- The worker dies with -9: its test dies with it (PR_SET_PDEATHSIG), the next heartbeat of a
  worker on the machine kills what the test left, and the reconciler ends the job `error
  (worker lost)` and retries it.

In-process: while a job runs, the main thread is busy with it, so a heartbeat thread
(JobHeartbeat) keeps RQ's heartbeats and the PostgreSQL one going, with its own database
connection. Between jobs the worker treats its database sessions as Django treats them
between requests (close_old_connections): a session that saw an error and fails its check,
or is older than CONN_MAX_AGE, is closed, and CONN_HEALTH_CHECKS replaces one that PostgreSQL
dropped meanwhile. RQ's job timeout (SIGALRM in the main thread) interrupts the runner, which
kills its test's process group on the way out; a stop request (cancel) kills that group; a
cold shutdown ends the running job `error` (retried).

"""

import copy
import ctypes
import logging
import signal
import sys
import threading
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db import DatabaseError
from django.db import InterfaceError
from django.db import close_old_connections
from django.db import connections
from redis.exceptions import RedisError
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT
from rq.defaults import DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker
from rq.worker.base import BaseWorker
from rq.worker.base import WorkerStatus

from testing_app.adapters.conda_build import kill_leftovers
from testing_app.services.conda_runner import clean_up_dead_runner
from testing_app.services.conda_runner import job_workspace
from testing_app.services.conda_runner import sweep_stale_workspaces
from testing_app.services.dispatch import job_pk_from_rq_id
from testing_app.services.execution import abandon_job
from testing_app.services.hosts import record_worker_heartbeat
from testing_app.services.queue_work import busiest_first
from testing_app.services.queue_work import work_per_serving_worker
from testing_app.services.queues import worker_serializer

logger = logging.getLogger(__name__)

IN_PROCESS = "in-process"
FORK = "fork"
QUEUE_ORDER_REMAINING_WORK = "remaining-work"
HEARTBEAT_DB = "distro_worker_heartbeat"
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _ensure_heartbeat_alias() -> None:
    """A second connection to the same database, for the worker's own heartbeats."""
    if HEARTBEAT_DB not in connections.settings:
        connections.settings[HEARTBEAT_DB] = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])


class _BoundScheduler(RQScheduler):
    """RQ's scheduler process, bound to its worker: without this, a worker killed with -9
    leaves its scheduler running on its own (found by the fault runs, docs/fault-runs.md),
    holding the queues' scheduler locks so that no live worker's scheduler can take over."""

    def work(self):
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        super().work()


class DistroWorkerRules:
    """What every worker of a registered host does, whatever runs its jobs."""

    def __init__(self, *args, worker_process_id: int, **kwargs):
        kwargs.setdefault("job_monitoring_interval", settings.WORKER_HEARTBEAT_S)
        # A worker of host queues only reads JSON: a pickle pushed there cannot run code in it.
        queues = args[0] if args else kwargs.get("queues", ())
        names = [q if isinstance(q, str) else q.name for q in queues]
        kwargs.setdefault("serializer", worker_serializer(names))
        super().__init__(*args, **kwargs)
        _ensure_heartbeat_alias()
        self.worker_process_id = worker_process_id
        self._last_db_heartbeat = 0.0
        self._may_take_jobs = False
        self._host_state = ""

    def _start_scheduler(
        self,
        burst=False,
        logging_level="INFO",
        date_format=DEFAULT_LOGGING_DATE_FORMAT,
        log_format=DEFAULT_LOGGING_FORMAT,
    ):
        """RQ's own start-up of the scheduler, with _BoundScheduler as its class (RQ restarts
        a scheduler that died through the same object)."""
        self.scheduler = _BoundScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    # --- heartbeats ---------------------------------------------------------------------------
    def db_heartbeat(self, *, between_jobs: bool) -> bool:
        """Stamp this worker in PostgreSQL (at most every WORKER_HEARTBEAT_S); returns whether
        the host may take jobs. Between jobs it also sweeps dead runners' workspaces (that uses
        the default connection, which belongs to the running job while one runs)."""
        if time.monotonic() - self._last_db_heartbeat < settings.WORKER_HEARTBEAT_S:
            return self._may_take_jobs
        self._last_db_heartbeat = time.monotonic()
        try:
            reply = record_worker_heartbeat(worker_id=self.worker_process_id, using=HEARTBEAT_DB)
            if between_jobs:
                sweep_stale_workspaces()
        except (DatabaseError, InterfaceError) as exc:
            # PostgreSQL is away (restart, failover): take no job until it answers again, and
            # reconnect next time rather than end the worker (and a running job with it).
            self.log.warning("Worker %s: database unavailable, not taking jobs: %s", self.name, exc)
            for alias in (HEARTBEAT_DB, DEFAULT_DB_ALIAS) if between_jobs else (HEARTBEAT_DB,):
                connections[alias].close()
            self._may_take_jobs = False
            return False
        if reply.host_state != self._host_state:
            self.log.info("Worker %s: host is %s", self.name, reply.host_state)
        self._host_state, self._may_take_jobs = reply.host_state, reply.may_take_jobs
        return self._may_take_jobs

    def maintain_heartbeats(self, job, execution):
        super().maintain_heartbeats(job, execution)
        self.db_heartbeat(between_jobs=False)

    def _shutdown(self):
        # RQ raises StopRequested from its signal handler when the worker is idle; if the
        # signal lands inside a heartbeat's database call, psycopg can surface it as a
        # DatabaseError, which db_heartbeat handles, and the stop would be lost. The flag
        # survives that: the dequeue loop ends on it.
        self._stop_requested = True
        super()._shutdown()

    # --- taking jobs --------------------------------------------------------------------------
    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Dequeue only while the host may take jobs; wake up every heartbeat to re-check."""
        interval = max(1, settings.WORKER_HEARTBEAT_S)
        while not self._stop_requested:
            if not self.db_heartbeat(between_jobs=True):
                if timeout is None:  # burst mode: nothing to wait for
                    return None
                self.heartbeat()
                self.procline(f"Paused: host is {self._host_state}")
                time.sleep(interval)
                continue
            wait = None if timeout is None else max(1, min(timeout, interval))
            self._order_queues()
            result = super().dequeue_job_and_maintain_ttl(wait, max_idle_time=wait)
            if result is not None or timeout is None:
                return result
        return None

    def _order_queues(self) -> None:
        """Listen on the queue with the most remaining work per serving worker first
        (services/queue_work.py); WORKER_QUEUE_ORDER=fixed keeps the configured order. RQ
        takes from the first non-empty queue of this order, so none is ever left out."""
        if settings.WORKER_QUEUE_ORDER != QUEUE_ORDER_REMAINING_WORK or len(self.queues) < 2:
            return
        names = [queue.name for queue in self.queues]
        try:
            share = work_per_serving_worker(self.connection, names)
        except RedisError as exc:  # RQ's own dequeue reports Redis being away
            self.log.warning("Worker %s: queue order unchanged: %s", self.name, exc)
            return
        by_name = {queue.name: queue for queue in self.queues}
        self._ordered_queues = [by_name[name] for name in busiest_first(names, share)]


class JobHeartbeat(threading.Thread):
    """The heartbeats of an in-process worker while its main thread runs a job: RQ's (worker
    key, started-job registry, as a forking worker sends them while it waits for its horse) and
    the PostgreSQL one, every job_monitoring_interval, on this thread's own connections."""

    def __init__(self, worker: "DistroWorker", job, execution):
        super().__init__(name=f"heartbeat of {job.id}", daemon=True)
        self._worker, self._job, self._execution = worker, job, execution
        self._done = threading.Event()

    def run(self) -> None:
        try:
            while not self._done.wait(self._worker.job_monitoring_interval):
                try:
                    self._worker.maintain_heartbeats(self._job, self._execution)
                except RedisError as exc:  # the PostgreSQL heartbeat handles its own errors
                    self._worker.log.warning(
                        "Worker %s: Redis heartbeat failed: %s", self._worker.name, exc
                    )
                except Exception:  # noqa: BLE001 - a dead heartbeat thread would get a running job declared lost
                    self._worker.log.exception(
                        "Worker %s: heartbeat failed, trying again", self._worker.name
                    )
        finally:
            connections.close_all()  # Django's connections are per thread: these are its own

    def stop(self) -> None:
        """No heartbeat is sent once this returns (one in flight is waited for)."""
        self._done.set()
        self.join()


class DistroWorker(DistroWorkerRules, SimpleWorker):
    """One worker process of a registered host (one per GPU) that runs its jobs itself."""

    # RQ's SimpleWorker sends no heartbeat while a job runs, so it lets its job's registry entry
    # live for the whole job timeout; this worker keeps beating (JobHeartbeat), so a worker
    # killed mid-job shows in RQ as soon as it would with a forking worker.
    get_heartbeat_ttl = BaseWorker.get_heartbeat_ttl

    def __init__(self, *args, worker_process_id: int, **kwargs):
        super().__init__(*args, worker_process_id=worker_process_id, **kwargs)
        self._running_job_pk: int | None = None
        self._job_heartbeat: JobHeartbeat | None = None
        self._cold_stopped = False

    def execute_job(self, job, queue):
        close_old_connections()  # as Django does before a request (see the module docstring)
        execution = self.prepare_execution(job)
        self._running_job_pk = job_pk_from_rq_id(job.id)
        self._job_heartbeat = JobHeartbeat(self, job, execution)
        self._job_heartbeat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._stop_job_heartbeat()
            running, self._running_job_pk = self._running_job_pk, None
        if self._cold_stopped:
            self._abandon_after_cold_stop(running)
            raise SystemExit
        close_old_connections()
        self.set_state(WorkerStatus.IDLE)

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        # Before RQ removes the execution: a heartbeat after that would write its keys again.
        self._stop_job_heartbeat()
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def _stop_job_heartbeat(self) -> None:
        if self._job_heartbeat is not None:
            self._job_heartbeat.stop()
            self._job_heartbeat = None

    def kill_horse(self, sig=signal.SIGKILL):
        """A stop request (a cancelled job) or a cold shutdown: end the running job's test."""
        if self._running_job_pk is not None:
            kill_leftovers(job_workspace(self._running_job_pk))

    def request_force_stop(self, signum, frame):
        """Cold shutdown (a second SIGTERM/SIGINT): RQ raises SystemExit in the main thread,
        wherever the job is; the runner kills its test on the way out, RQ records the failure,
        and execute_job ends the job in PostgreSQL before the worker exits."""
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            self._cold_stopped = True
            self.kill_horse()
            raise

    def _abandon_after_cold_stop(self, job_pk: int | None) -> None:
        # SystemExit may have interrupted a statement: never reuse that session.
        connections[DEFAULT_DB_ALIAS].close()
        if job_pk is not None:
            clean_up_dead_runner(job_id=job_pk)
            abandon_job(job_id=job_pk, reason=f"Worker {self.name} was shut down cold.")
