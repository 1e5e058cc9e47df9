"""The worker class's own decisions, in process (the full behaviour is in test_workers.py)."""

import django_rq
import pytest
from django.db import OperationalError
from django.db import connections
from django.utils import timezone
from rq.serializers import JSONSerializer

from testing_app.management import workers
from testing_app.management.commands.distro_worker import worker_class
from testing_app.management.forking_worker import ForkingDistroWorker
from testing_app.models import WorkerProcess
from testing_app.services.hosts import HeartbeatReply
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker(engine_settings):
    record = WorkerProcess.objects.create(
        host=factories.HostFactory(), name="w.cpu.1", last_heartbeat_at=timezone.now()
    )
    yield workers.DistroWorker(
        ["test.linux-64.cpu"],
        connection=django_rq.get_connection("default"),
        name="w.cpu.1",
        worker_process_id=record.pk,
    )
    # The worker added its heartbeat alias to this process's connections: take it away again.
    connections[workers.HEARTBEAT_DB].close()
    del connections.settings[workers.HEARTBEAT_DB]


def test_a_worker_of_host_queues_only_reads_json(worker):
    assert worker.serializer is JSONSerializer  # a pickle on its queue is refused, not loaded


def test_heartbeat_follows_the_host_state(worker, monkeypatch):
    replies = iter([HeartbeatReply("active"), HeartbeatReply("draining")])
    monkeypatch.setattr(workers, "record_worker_heartbeat", lambda **_: next(replies))
    monkeypatch.setattr(workers, "sweep_stale_workspaces", lambda: 0)
    assert worker.db_heartbeat(between_jobs=True) is True
    assert worker.db_heartbeat(between_jobs=True) is True  # within the interval: not asked again
    worker._last_db_heartbeat = 0.0
    assert worker.db_heartbeat(between_jobs=True) is False


def test_database_outage_pauses_the_worker_instead_of_ending_it(worker, monkeypatch):
    def unavailable(**_):
        raise OperationalError("connection refused")

    monkeypatch.setattr(workers, "record_worker_heartbeat", unavailable)
    assert worker.db_heartbeat(between_jobs=False) is False
    monkeypatch.setattr(workers, "record_worker_heartbeat", lambda **_: HeartbeatReply("active"))
    monkeypatch.setattr(workers, "sweep_stale_workspaces", lambda: 0)
    worker._last_db_heartbeat = 0.0
    assert worker.db_heartbeat(between_jobs=True) is True


def test_the_execution_model_picks_the_worker_class(settings):
    assert worker_class() is workers.DistroWorker  # in-process by default
    assert worker_class("fork") is ForkingDistroWorker
    settings.WORKER_EXECUTION = "fork"
    assert worker_class() is ForkingDistroWorker
    with pytest.raises(ValueError, match="WORKER_EXECUTION"):
        worker_class("thread")


def test_a_stop_lost_inside_a_database_call_still_ends_the_dequeue_loop(worker, monkeypatch):
    """A warm stop whose StopRequested was swallowed (turned into a database error inside a
    heartbeat) must still end the worker instead of going back to taking jobs."""
    from rq.exceptions import StopRequested

    def interrupted(**_):
        raise OperationalError("can't change 'autocommit' now")

    def paused_again(_seconds):
        raise AssertionError("the worker kept waiting for jobs after a stop")

    monkeypatch.setattr(workers, "record_worker_heartbeat", interrupted)
    monkeypatch.setattr(workers.time, "sleep", paused_again)
    with pytest.raises(StopRequested):
        worker._shutdown()  # idle: RQ raises; suppose the heartbeat's except ate it
    assert worker.dequeue_job_and_maintain_ttl(timeout=30) is None
