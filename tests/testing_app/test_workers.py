"""Real `manage.py distro_worker` processes against the pytest database and this test run's
Redis database: verdicts, kill -9, lost workers, drain/quarantine, routing, Redis losing
everything. The workers run jobs in-process (the default) unless a test names the forking
model; the kill -9 tests run under both. The workers are other processes: tests poll the
database for the state they expect (bounded by a generous timeout), and never assert on
durations."""

import os
import signal
from pathlib import Path

import pytest
import redis
from django.conf import settings

from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import Run
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import rq_queue
from testing_app.services.hosts import create_enrollment_token
from testing_app.services.hosts import drain_host
from testing_app.services.hosts import quarantine_host
from testing_app.services.hosts import resume_host
from testing_app.services.reconcile import reconcile
from tests import factories
from tests.testing_app.conftest import cuda_variant
from tests.testing_app.conftest import wait_for
from tests.testing_app.conftest import write_fake_nvidia_smi

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "test.linux-64.cpu"


def _token(*, pre_approved: bool = True) -> str:
    return create_enrollment_token(name="tests", pre_approved=pre_approved)[1]


def _enqueue(build, cell, *, python: str = "", **fields) -> Job:
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=build, python=python, **cell, **fields)],
    )
    return job


def _status(job: Job) -> tuple[str, str]:
    job.refresh_from_db()
    return job.status, job.verdict


def _job_process_of(worker_pid: int) -> int:
    """What runs the job below the worker: the worker's child that leads its own process group.
    Forking: the work-horse (RQ's setpgrp). In-process: the test itself (the runner starts it
    in its own session). The scheduler child stays in the worker's group."""
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    leaders = [int(pid) for pid in children if os.getpgid(int(pid)) == int(pid)]
    assert len(leaders) == 1, f"expected one job process among {children}"
    return leaders[0]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _resumable_script(tmp_path: Path, name: str) -> tuple[str, Path, Path, Path]:
    """A test that hangs on its first run (with a background process) and passes on the next."""
    marker, count, child = tmp_path / f"{name}.ran", tmp_path / f"{name}.count", tmp_path / name
    script = (
        f"echo run >> {count}\n"
        f"if [ -f {marker} ]; then echo second run; exit 0; fi\n"
        f"sleep 300 &\necho $! > {child}.pid\n"
        f"touch {marker}\necho started\nwait\n"
    )
    return script, marker, count, Path(f"{child}.pid")


def test_burst_worker_gives_every_verdict(start_worker, make_build, cpu_cell):
    builds = {
        "passed": make_build(
            "okpkg", module_source="X = 1\n", run_test_py="import okpkg\nassert okpkg.X == 1\n"
        ),
        "failed": make_build("badpkg", run_test_sh="echo nope\nexit 1\n"),
        "uninstallable": make_build("pinpkg", depends=("pytorch 2.1.*",), run_test_sh="true\n"),
        "no_tests": make_build("emptypkg"),
        "timeout": make_build("slowpkg", run_test_sh="sleep 300\n"),
    }
    jobs = {
        verdict: _enqueue(build, cpu_cell, timeout_s=2 if verdict == "timeout" else 600)
        for verdict, build in builds.items()
    }
    worker = start_worker("--enroll-token", _token(), "--name", "host-a", "--burst")
    assert worker.wait(timeout=240) == 0, worker.output()[-3000:]
    for verdict, job in jobs.items():
        assert _status(job) == ("finished", verdict), worker.output()[-3000:]
    # timeout: retried exactly once; the others never automatically.
    retries = Job.objects.filter(retry_of__isnull=False)
    assert [(r.retry_of_id, r.verdict) for r in retries] == [(jobs["timeout"].pk, "timeout")]
    assert jobs["passed"].host.name == "host-a"
    assert jobs["passed"].runner_version == "24.9.0"
    assert Run.objects.filter(state=Run.State.FINISHED).count() == len(jobs)
    assert WorkerProcess.objects.get().stop_reason == "shut down"


@pytest.mark.parametrize("execution", ["fork", "in-process"])
def test_kill_9_of_the_process_running_the_job_errors_then_the_retry_completes_once(
    start_worker, make_build, cpu_cell, tmp_path, execution
):
    """Forking: the work-horse is killed. In-process: the test's own process is."""
    script, marker, count, child_pid = _resumable_script(tmp_path, "horse")
    job = _enqueue(make_build("hanger", run_test_sh=script), cpu_cell)
    worker = start_worker("--enroll-token", _token(), "--name", "host-a", "--execution", execution)
    wait_for(marker.exists, timeout=90, what="the test to start")
    os.kill(_job_process_of(WorkerProcess.objects.get().pid), signal.SIGKILL)
    wait_for(lambda: _status(job) == ("finished", "error"), what="the killed job to end error")
    assert "signal 9" in job.error_message
    retry = wait_for(lambda: Job.objects.filter(retry_of=job, verdict="passed").first())
    assert count.read_text().count("run") == 2  # killed once, completed once
    assert Job.objects.count() == 2
    assert retry.host_id == job.host_id  # the only host: running beats waiting
    # The killed test's background process went with it (the worker cleaned up after its horse).
    wait_for(lambda: _gone(int(child_pid.read_text())), timeout=20, what="leftover cleanup")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


@pytest.mark.parametrize("execution", ["fork", "in-process"])
def test_kill_9_of_the_whole_worker_is_found_lost_and_retried_elsewhere(
    start_worker, make_build, cpu_cell, tmp_path, execution
):
    script, marker, count, child_pid = _resumable_script(tmp_path, "node")
    job = _enqueue(make_build("hanger", run_test_sh=script), cpu_cell)
    token = _token()
    lost = start_worker("--enroll-token", token, "--name", "host-lost", "--execution", execution)
    wait_for(marker.exists, timeout=90, what="the test to start")
    record = WorkerProcess.objects.get()
    if execution == "fork":
        horse = _job_process_of(record.pid)
        os.killpg(record.pid, signal.SIGKILL)  # the worker and its scheduler
        os.killpg(horse, signal.SIGKILL)  # and the work-horse: the whole node is gone
    else:
        # The worker and its scheduler only: the test must die with the worker by itself
        # (PR_SET_PDEATHSIG), and what it started in the background is swept below.
        test_process = _job_process_of(record.pid)
        os.killpg(record.pid, signal.SIGKILL)
        wait_for(lambda: _gone(test_process), timeout=20, what="the test to die with its worker")
    lost.proc.wait()
    assert _status(job) == ("running", "")  # nobody told PostgreSQL: only the heartbeat stops
    survivor = start_worker("--enroll-token", token, "--name", "host-ok")
    wait_for(lambda: reconcile().lost_jobs, timeout=30, what="the reconciler to find it lost")
    assert _status(job) == ("finished", "error")
    assert job.error_message.startswith("Worker lost (host-lost.cpu.")
    retry = wait_for(lambda: Job.objects.filter(retry_of=job, verdict="passed").first())
    assert retry.host.name == "host-ok"
    assert count.read_text().count("run") == 2
    assert Job.objects.count() == 2
    assert WorkerProcess.objects.get(pk=record.pk).stop_reason.startswith("lost: no heartbeat")
    # The survivor's heartbeat swept what the dead node's test left on this machine.
    wait_for(lambda: _gone(int(child_pid.read_text())), timeout=20, what="leftover sweep")
    survivor.proc.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0


def _heartbeats(n: int) -> None:
    """Wait until the (single) live worker has heartbeated n more times."""
    seen = []

    def advanced():
        seen.append(WorkerProcess.objects.filter(stopped_at__isnull=True).get().last_heartbeat_at)
        return len(set(seen)) > n

    wait_for(advanced, timeout=30, what=f"{n} heartbeats")


def test_drain_and_quarantine_stop_new_jobs_without_killing_the_running_one(
    start_worker, make_build, cpu_cell, tmp_path
):
    go = tmp_path / "go"
    running = _enqueue(
        make_build(
            "waiter", run_test_sh=f"echo waiting\nwhile [ ! -f {go} ]; do sleep 0.2; done\n"
        ),
        cpu_cell,
    )
    worker = start_worker("--enroll-token", _token(), "--name", "host-a")
    wait_for(lambda: _status(running)[0] == "running", timeout=90, what="the first job to start")
    host = Host.objects.get()
    quarantine_host(host=host)
    go.touch()
    wait_for(lambda: _status(running) == ("finished", "passed"), what="the running job to finish")
    waiting = _enqueue(make_build("later", run_test_sh="true\n"), cpu_cell)
    _heartbeats(3)
    assert _status(waiting) == ("queued", "")
    resume_host(host=host)
    wait_for(lambda: _status(waiting) == ("finished", "passed"), what="resume")
    drain_host(host=host)
    _heartbeats(2)
    drained = _enqueue(make_build("drained", run_test_sh="true\n"), cpu_cell)
    _heartbeats(3)
    assert _status(drained) == ("queued", "")
    assert drained.rq_job_id in rq_queue(QUEUE).get_job_ids()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


def test_pending_host_takes_nothing_until_approved(start_worker, make_build, cpu_cell):
    from testing_app.services.hosts import approve_host

    job = _enqueue(make_build("pkg", run_test_sh="true\n"), cpu_cell)
    token = _token(pre_approved=False)
    first = start_worker("--enroll-token", token, "--name", "new-host", "--burst")
    assert first.wait(timeout=90) == 0
    assert "waiting for an admin to approve" in first.output()
    assert _status(job) == ("queued", "")
    approve_host(host=Host.objects.get(name="new-host"))
    second = start_worker("--name", "new-host", "--burst")  # known host: no token needed
    assert second.wait(timeout=90) == 0
    assert _status(job) == ("finished", "passed")


def test_routing_follows_driver_cuda_version_and_platform(
    start_worker, make_build, cpu_cell, tmp_path, worker_env
):
    cuda118, cuda124 = cuda_variant("11.8"), cuda_variant("12.4")
    axes = {"torch_release": cpu_cell["torch_release"], "platform": cpu_cell["platform"]}
    show = "echo gpu=$CUDA_VISIBLE_DEVICES\n"
    new_job = _enqueue(make_build("newcuda", run_test_sh=show), {**axes, "variant": cuda124})
    old_job = _enqueue(make_build("oldcuda", run_test_sh=show), {**axes, "variant": cuda118})
    mac = factories.PlatformFactory(subdir="osx-arm64")
    mac_job = _enqueue(make_build("macpkg", run_test_sh="true\n"), {**cpu_cell, "platform": mac})
    token = _token()

    def gpu_env(cuda: str) -> dict:
        fake = write_fake_nvidia_smi(tmp_path / f"smi-{cuda}", gpus=1, cuda=cuda)
        return {"PATH": f"{fake}{os.pathsep}{worker_env['PATH']}"}

    old = start_worker(
        "--enroll-token", token, "--name", "old-driver", "--burst", env=gpu_env("11.8")
    )
    assert old.wait(timeout=120) == 0, old.output()[-3000:]
    assert _status(old_job) == ("finished", "passed")
    assert _status(new_job) == ("queued", "")  # a driver too old never receives it
    # Capability queues (each may come with runner-specific twins, "<queue>@<runner>").
    served = Host.objects.get(name="old-driver").queues
    assert [q for q in served if "@" not in q] == ["test.linux-64.cuda11.8", "test.linux-64.cpu"]
    new = start_worker(
        "--enroll-token", token, "--name", "new-driver", "--burst", env=gpu_env("12.4")
    )
    assert new.wait(timeout=120) == 0, new.output()[-3000:]
    assert _status(new_job) == ("finished", "passed")
    assert new_job.host.name == "new-driver"
    assert (new_job.gpu_index, new_job.gpu_name) == (0, "NVIDIA H200")
    assert new_job.driver_version == "580.159.04"
    assert "gpu=GPU-00000000-0000-0000-0000-000000000000" in new_job.log_tail
    assert _status(mac_job) == ("queued", "")  # no osx-arm64 host: it waits, it is not lost


def test_several_gpus_get_one_pinned_worker_each(start_worker, tmp_path, worker_env, cpu_cell):
    fake = write_fake_nvidia_smi(tmp_path / "smi", gpus=2, cuda="12.4")
    cuda_variant("12.4")
    env = {"PATH": f"{fake}{os.pathsep}{worker_env['PATH']}"}
    supervisor = start_worker("--enroll-token", _token(), "--name", "two-gpus", "--burst", env=env)
    assert supervisor.wait(timeout=120) == 0, supervisor.output()[-3000:]
    workers = WorkerProcess.objects.order_by("gpu_index")
    assert [(w.gpu_index, w.gpu_uuid[:14]) for w in workers] == [
        (0, "GPU-00000000-0"),
        (1, "GPU-00000001-0"),
    ]
    assert all(w.queues[0] == "test.linux-64.cuda12.4" for w in workers)
    assert {w.stop_reason for w in workers} == {"shut down"}


def test_redis_flushed_with_1000_queued_jobs_all_restored_none_duplicated(
    start_worker, cpu_cell, tmp_path
):
    build = factories.BuildFactory()
    run = factories.RunFactory()
    jobs = enqueue_jobs(
        run=run,
        jobs=[Job(kind="test", build=build, python=f"3.{i}", **cpu_cell) for i in range(1000)],
    )
    expected = {job.rq_job_id for job in jobs}
    queue = rq_queue(QUEUE)
    assert set(queue.get_job_ids()) == expected
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis restarted empty
    assert queue.count == 0
    assert reconcile(grace_s=0).restored == 1000
    ids = queue.get_job_ids()
    assert len(ids) == 1000
    assert set(ids) == expected
    assert reconcile(grace_s=0).restored == 0  # a second pass finds nothing missing
    assert len(queue.get_job_ids()) == 1000
    record = tmp_path / "ran.txt"
    worker = start_worker(
        "--enroll-token",
        _token(),
        "--name",
        "host-a",
        "--burst",
        env={
            "DISTRO_JOB_RUNNER": "tests.testing_app.runners.record_and_pass",
            "RUNNER_RECORD_FILE": str(record),
        },
    )
    assert worker.wait(timeout=600) == 0, worker.output()[-3000:]
    ran = record.read_text().split()
    assert len(ran) == 1000
    assert len(set(ran)) == 1000  # every job ran exactly once
    assert Job.objects.filter(status="finished", verdict="passed").count() == 1000
    assert Run.objects.get(pk=run.pk).state == Run.State.FINISHED
