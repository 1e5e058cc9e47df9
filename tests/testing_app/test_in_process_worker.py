"""What the in-process worker (the default, testing_app/management/workers.py) must keep from
the forking one: heartbeats while its main thread runs a job, a job timeout that kills the
test's process group, recovery from a database session PostgreSQL dropped between jobs, and a
cold shutdown that ends the running job. Real `distro_worker` processes, as in test_workers.py."""

import signal
import time
from pathlib import Path

import pytest
from django.db import connection
from rq import Worker as RqWorker

from testing_app.models import Job
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import rq_queue
from testing_app.services.reconcile import reconcile
from tests.testing_app.conftest import wait_for
from tests.testing_app.test_workers import QUEUE
from tests.testing_app.test_workers import _enqueue
from tests.testing_app.test_workers import _gone
from tests.testing_app.test_workers import _status
from tests.testing_app.test_workers import _token

pytestmark = pytest.mark.django_db(transaction=True)


def _background_sleeper(tmp_path: Path, name: str) -> tuple[str, Path, Path]:
    """A test that starts a background process, says so, and then waits for `go`."""
    pid_file, go = tmp_path / f"{name}.pid", tmp_path / f"{name}.go"
    script = (
        f"sleep 300 &\necho $! > {pid_file}\necho started\n"
        f"while [ ! -f {go} ]; do sleep 0.2; done\n"
    )
    return script, pid_file, go


def _rq_heartbeat_of(name: str) -> str:
    worker = RqWorker.find_by_key(f"rq:worker:{name}", connection=rq_queue(QUEUE).connection)
    return worker.last_heartbeat.isoformat() if worker else ""


def test_heartbeats_go_on_while_a_job_runs(start_worker, make_build, cpu_cell, tmp_path):
    script, pid_file, go = _background_sleeper(tmp_path, "long")
    job = _enqueue(make_build("long", run_test_sh=script), cpu_cell)
    start_worker("--enroll-token", _token(), "--name", "host-a")
    wait_for(pid_file.exists, timeout=90, what="the test to start")
    record = WorkerProcess.objects.get()
    db_beats, rq_beats = set(), set()

    def beating() -> bool:
        record.refresh_from_db()
        db_beats.add(record.last_heartbeat_at)
        rq_beats.add(_rq_heartbeat_of(record.name))
        return len(db_beats) > 4 and len(rq_beats) > 4

    # WORKER_HEARTBEAT_S is 1 and WORKER_LOST_AFTER_S 3 here: a worker whose heartbeats
    # stopped while its job runs would be found lost within this wait.
    wait_for(beating, timeout=60, what="heartbeats during the job")
    assert _status(job) == ("running", "")
    assert record.current_job_id == job.pk
    assert reconcile().lost_jobs == 0
    go.touch()
    wait_for(lambda: _status(job) == ("finished", "passed"), what="the job to finish")
    assert not Job.objects.filter(retry_of=job).exists()


def test_rq_job_timeout_kills_the_test_process_group(
    start_worker, make_build, cpu_cell, tmp_path, settings
):
    """RQ's own timeout (SIGALRM in the worker's main thread) interrupts the runner, which takes
    the test's whole process group down on its way out; the job ends `error` and is retried."""
    script, pid_file, go = _background_sleeper(tmp_path, "stuck")
    # RQ's limit, written with the job at enqueue = timeout_s + JOB_TIMEOUT_MARGIN_S: 30 s (the
    # test must have started by then, also on a busy machine), long before the runner's 600 s.
    settings.JOB_TIMEOUT_MARGIN_S = -570
    job = _enqueue(make_build("stuck", run_test_sh=script), cpu_cell, timeout_s=600)
    worker = start_worker("--enroll-token", _token(), "--name", "host-a")
    wait_for(pid_file.exists, timeout=90, what="the test to start")
    wait_for(lambda: _status(job) == ("finished", "error"), what="RQ's timeout to end the job")
    assert "JobTimeoutException" in job.error_message
    assert _gone(int(pid_file.read_text()))  # the background process went with its group
    go.touch()
    wait_for(lambda: Job.objects.filter(retry_of=job, verdict="passed").exists(), what="retry")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


def test_worker_survives_postgresql_dropping_its_sessions_between_jobs(
    start_worker, make_build, cpu_cell
):
    first = _enqueue(make_build("first", run_test_sh="true\n"), cpu_cell)
    worker = start_worker("--enroll-token", _token(), "--name", "host-a")
    wait_for(lambda: _status(first) == ("finished", "passed"), timeout=90, what="the first job")
    with connection.cursor() as cursor:  # every session of this database but the test's own
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    second = _enqueue(make_build("second", run_test_sh="true\n"), cpu_cell)
    wait_for(lambda: _status(second) == ("finished", "passed"), what="the job after the drop")
    assert worker.proc.poll() is None
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


def test_cold_shutdown_ends_the_running_job_and_its_test(
    start_worker, make_build, cpu_cell, tmp_path
):
    script, pid_file, _go = _background_sleeper(tmp_path, "cold")
    job = _enqueue(make_build("cold", run_test_sh=script), cpu_cell)
    worker = start_worker("--enroll-token", _token(), "--name", "host-a")
    wait_for(pid_file.exists, timeout=90, what="the test to start")
    worker.proc.send_signal(signal.SIGTERM)  # warm: would wait for the job
    wait_for(lambda: "warm shut down requested" in worker.output(), what="the warm request")
    time.sleep(1.5)  # RQ ignores a second signal within 1 s of the first (a duplicate)
    worker.proc.send_signal(signal.SIGTERM)  # cold
    worker.wait(timeout=60)
    assert _status(job) == ("finished", "error")
    assert "shut down cold" in job.error_message
    assert _gone(int(pid_file.read_text()))
    assert Job.objects.filter(retry_of=job, status="queued").exists()
