"""Host queues (install, test.*) hold JSON job data, never pickle; a host's worker reads JSON
only, so a pickle pushed onto its queue cannot run code in it; no worker serves host queues and
the trusted side's queues (whose workers read pickle) together."""

import json
import pickle
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rq import Queue
from rq import Retry
from rq import SimpleWorker
from rq.serializers import DefaultSerializer
from rq.serializers import JSONSerializer

from testing_app.adapters.rq_serializers import TrustedSideSerializer
from testing_app.models import Host
from testing_app.services.dispatch import EXECUTE_FUNCTION
from testing_app.services.dispatch import Dispatch
from testing_app.services.dispatch import push_jobs
from testing_app.services.dispatch import rq_queue
from testing_app.services.queues import MixedQueuesError
from testing_app.services.queues import worker_serializer

pytestmark = pytest.mark.django_db


class _TouchOnUnpickle:
    """A pickle that creates a file when it is loaded: what an attacker's payload would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _raw_data(job_id: str) -> bytes:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return zlib.decompress(client.hget(f"rq:job:{job_id}", "data"))


def test_jobs_pushed_to_host_queues_are_stored_as_json():
    push_jobs(
        [Dispatch(41, "test.linux-64.cuda12.4", 600), Dispatch(42, "install", 600)], stamp=False
    )
    for pk in (41, 42):
        data = _raw_data(f"distro-job-{pk}")
        assert json.loads(data) == [EXECUTE_FUNCTION, None, [pk], {}]
        assert not data.startswith(b"\x80")  # no pickle protocol header


def test_retries_scheduled_for_later_are_json_too():
    later = timezone.now() + timedelta(minutes=5)
    push_jobs([Dispatch(43, "test.linux-64.cpu", 600, not_before=later)], stamp=False)
    assert json.loads(_raw_data("distro-job-43"))[2] == [43]


def test_workers_read_json_only_when_they_serve_host_queues_only():
    assert worker_serializer(["test.linux-64.cpu", "install"]) is JSONSerializer
    assert worker_serializer(["default", "promote"]) is TrustedSideSerializer
    assert worker_serializer(["promote"]) is TrustedSideSerializer
    assert TrustedSideSerializer.loads(JSONSerializer.dumps([1, "a"])) == [1, "a"]
    assert TrustedSideSerializer.loads(DefaultSerializer.dumps((1, "a"))) == (1, "a")


def test_a_pickle_pushed_onto_a_host_queue_runs_nothing_on_the_host(tmp_path):
    marker = tmp_path / "unpickled"
    hostile = Queue("test.linux-64.cpu", connection=rq_queue("x").connection)  # pickle
    hostile.enqueue(print, _TouchOnUnpickle(marker), job_id="hostile-pickle")
    assert pickle.loads(pickle.dumps(_TouchOnUnpickle(tmp_path / "control"))) is None
    assert (tmp_path / "control").exists()  # the payload does run when unpickled

    names = ["test.linux-64.cpu"]
    worker = SimpleWorker(
        [rq_queue(n) for n in names],
        connection=rq_queue("x").connection,
        serializer=worker_serializer(names),
    )
    worker.work(burst=True)

    assert not marker.exists()
    assert "hostile-pickle" in rq_queue("test.linux-64.cpu").failed_job_registry.get_job_ids()


def declines():
    """A job that hands itself back, as rq_execute_job does for a Declined delivery."""
    return Retry(max=5, interval=0)


def test_a_declined_job_goes_back_to_its_queue_as_json():
    names = ["test.linux-64.cpu"]
    queue = rq_queue(names[0])
    queue.enqueue(f"{__name__}.declines", job_id="distro-job-77")
    worker = SimpleWorker([queue], connection=queue.connection, serializer=worker_serializer(names))
    worker.work(burst=True, max_jobs=1)

    assert queue.get_job_ids() == ["distro-job-77"]
    assert json.loads(_raw_data("distro-job-77"))[0] == f"{__name__}.declines"


@pytest.mark.parametrize("names", [["install", "default"], ["promote", "test.linux-64.cpu"]])
def test_no_worker_serves_host_and_trusted_queues_together(names):
    with pytest.raises(MixedQueuesError, match="not both"):
        worker_serializer(names)
    with pytest.raises(CommandError, match="not both"):
        call_command("rqworker", *names, "--burst")


def test_a_host_worker_refuses_trusted_queues_before_registering_anything():
    with pytest.raises(CommandError, match="host queues only, not default, promote"):
        call_command(
            "distro_worker", "--name", "h", "--cpu-queue", "default", "--cpu-queue", "promote"
        )
    assert not Host.objects.exists()


def test_the_web_sides_install_worker_runs_nothing_a_host_pickled(tmp_path):
    """`rqworker install` (a worker of the web side) meets a pickle a compromised host pushed
    to `install`: the job fails unread, the payload never runs."""
    marker = tmp_path / "unpickled"
    hostile = Queue("install", connection=rq_queue("x").connection)  # pickle
    hostile.enqueue(print, _TouchOnUnpickle(marker), job_id="distro-installcheck-666")

    call_command("rqworker", "install", "--burst", "--worker-class", "rq.worker.SimpleWorker")

    assert not marker.exists()
    assert "distro-installcheck-666" in rq_queue("install").failed_job_registry.get_job_ids()
