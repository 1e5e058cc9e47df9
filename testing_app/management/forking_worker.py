"""The forking worker (WORKER_EXECUTION=fork): RQ's Worker, one work-horse per job, with the
rules every worker of a registered host follows (testing_app/management/workers.py says when
to use it).

Database connections and fork: the worker keeps two connections. Its own heartbeats use a
private alias, never touched by a work-horse. The default connection is handed to each
work-horse in turn: the worker opens it before forking and does not use it while a horse runs;
a horse that ends normally leaves it idle for the next one (a new PostgreSQL session per job
would cost more than the rest of the lifecycle), and after a horse that died the worker discards
it, since the session may have been left mid-statement. A killed work-horse ends its job `error`
at once (retried); the horse dies with its worker (Linux), taking its test with it.
"""

import gc
import os
import signal
from importlib import import_module

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db import connections
from django.db import transaction
from django.utils.module_loading import import_string
from rq.worker import Worker

from testing_app.management.workers import _LIBC
from testing_app.management.workers import PR_SET_PDEATHSIG
from testing_app.management.workers import DistroWorkerRules
from testing_app.services.conda_runner import clean_up_dead_runner
from testing_app.services.dispatch import job_pk_from_rq_id
from testing_app.services.execution import abandon_job

# Exit status of a work-horse whose database session raised an error (see perform_job).
EXIT_DATABASE_SUSPECT = 3


class _WarmUpDone(Exception):
    pass


def warm_up_lifecycle() -> None:
    """Run one job through start and finish on throwaway rows, then roll it all back.

    Django builds much of what a query needs lazily (model metadata caches, compiled lookups);
    a work-horse is a fresh fork per job, so whatever the worker itself never ran is rebuilt
    and thrown away for every job. Measured on this project's benchmark: about a third of a
    work-horse's CPU time. Skipped on an empty catalog (there is nothing to run anyway), and
    under a host's limited role (HOST_LIMITED_ROLE), which may not create runs: a speed-up is
    no reason to grant a privilege.
    """
    if settings.HOST_LIMITED_ROLE:
        return
    from packages_app.models import Build
    from packages_app.models import TorchRelease
    from testing_app.models import Job
    from testing_app.models import Platform
    from testing_app.models import Run
    from testing_app.models import Variant
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.execution import JobOutcome
    from testing_app.services.execution import execute_job

    cell = {
        "build": Build.objects.first(),
        "torch_release": TorchRelease.objects.first(),
        "variant": Variant.objects.first(),
        "platform": Platform.objects.first(),
    }
    if not all(cell.values()):
        return
    try:
        with transaction.atomic():
            run = Run.objects.create(trigger=Run.Trigger.MANUAL, trigger_detail="warm-up")
            (job,) = enqueue_jobs(run=run, jobs=[Job(kind="test", python="warm-up", **cell)])
            execute_job(job_id=job.pk, runner=lambda **_: JobOutcome(verdict="passed"))
            raise _WarmUpDone  # roll everything back, on-commit pushes included
    except _WarmUpDone:
        pass


class ForkingDistroWorker(DistroWorkerRules, Worker):
    """One worker process of a registered host that forks a work-horse per job."""

    def __init__(self, *args, worker_process_id: int, **kwargs):
        super().__init__(*args, worker_process_id=worker_process_id, **kwargs)
        # Imported here, once: a work-horse is a fresh fork per job and would otherwise import
        # the job module and a configured runner again for every single job.
        import_module("testing_app.jobs")
        if settings.DISTRO_JOB_RUNNER:
            import_string(settings.DISTRO_JOB_RUNNER)
        warm_up_lifecycle()
        self._horse_status: int | None = None

    def fork_work_horse(self, job, queue):
        # The horse inherits an open, idle default connection (see the module docstring).
        connections[DEFAULT_DB_ALIAS].ensure_connection()
        # Objects that exist now are left out of the horse's garbage collections, so it does not
        # touch (and copy-on-write) the memory it shares with this process.
        gc.freeze()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        super().main_work_horse(job, queue)

    def perform_job(self, job, queue, execution):
        result = super().perform_job(job, queue, execution)
        if self.is_horse and connections[DEFAULT_DB_ALIAS].errors_occurred:
            # The job's result is recorded; tell the worker this session saw a database error,
            # so that it does not hand the connection on to the next horse.
            os._exit(EXIT_DATABASE_SUSPECT)
        return result

    def wait_for_horse(self):
        retpid, ret_val, rusage = super().wait_for_horse()
        if retpid:
            self._horse_status = ret_val
        return retpid, ret_val, rusage

    def execute_job(self, job, queue):
        self._horse_status = None
        try:
            super().execute_job(job, queue)
        finally:
            if self._horse_status != os.EX_OK:
                self._discard_default_connection()

    def _discard_default_connection(self) -> None:
        # The horse may have died mid-statement: nobody may use that session again.
        connections[DEFAULT_DB_ALIAS].close()

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        self._discard_default_connection()
        job_pk = job_pk_from_rq_id(job.id)
        if job_pk is None:
            return
        clean_up_dead_runner(job_id=job_pk)
        signal_note = f" by signal {ret_val & 0x7F}" if ret_val and ret_val & 0x7F else ""
        abandon_job(
            job_id=job_pk,
            reason=f"Work-horse of {self.name} died{signal_note} (exit status {ret_val}).",
        )
