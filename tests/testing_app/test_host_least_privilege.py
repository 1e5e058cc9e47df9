"""A host with least privilege, end to end: a real `distro_worker` connected to PostgreSQL as the
role `manage.py host_db_role` prints and to Redis as the user `manage.py redis_host_acl` prints
enrolls, heartbeats, claims real test jobs, runs them and records their verdicts; the web side
then runs the follow-ups the host may not (maintainers' notices). The same credentials are
refused what a compromised host must not reach."""

import shlex
import subprocess
import uuid
from io import StringIO
from urllib.parse import urlparse
from urllib.parse import urlunparse

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import Notification
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import run_due_follow_ups
from testing_app.services.hosts import create_enrollment_token
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "lp-host"


@pytest.fixture
def host_role(db):
    """The host's PostgreSQL role, created and granted from the printed SQL (as an operator
    pipes it to psql); dropped afterwards. Returns (role, password)."""
    role = f"host_test_{uuid.uuid4().hex[:10]}"
    out, err = StringIO(), StringIO()
    call_command("host_db_role", "--role", role, "--create", stdout=out, stderr=err)
    password = err.getvalue().strip().rsplit(" ", 1)[-1]
    again = StringIO()  # after an upgrade the operator runs it again, without --create
    call_command("host_db_role", "--role", role, stdout=again)
    with connection.cursor() as cursor:
        cursor.execute(out.getvalue())
        cursor.execute(again.getvalue())
    try:
        yield role, password
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


@pytest.fixture
def role_database_url(host_role):
    role, password = host_role
    database = connection.settings_dict
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    return f"postgres://{role}:{password}@{host}:{port}/{database['NAME']}"


@pytest.fixture
def host_redis_url():
    """The host's Redis user, created from the printed ACL line; removed afterwards."""
    admin = redis.Redis.from_url(settings.REDIS_URL)
    user = f"host-lp-{uuid.uuid4().hex[:8]}"
    out, err = StringIO(), StringIO()
    call_command("redis_host_acl", "--host", HOST, "--user", user, stdout=out, stderr=err)
    password = err.getvalue().strip().rsplit(" ", 1)[-1]
    admin.execute_command(*shlex.split(out.getvalue().strip()))
    parsed = urlparse(settings.REDIS_URL)
    netloc = f"{user}:{password}@{parsed.hostname}:{parsed.port}"
    try:
        yield urlunparse(parsed._replace(netloc=netloc))
    finally:
        admin.execute_command("ACL", "DELUSER", user)


def _enqueue(build, cell, *, timeout_s: int = 600) -> Job:
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=build, timeout_s=timeout_s, **cell)],
    )
    return job


def _running_on_a_dead_worker(job: Job, *, host) -> Job:
    """`job` as a worker killed with -9 leaves it: running, its worker's process gone."""
    gone = subprocess.Popen(["true"])  # noqa: S607 - a pid that no longer runs
    gone.wait()
    dead = WorkerProcess.objects.create(
        host=host, name=f"{HOST}.cpu.{gone.pid}", pid=gone.pid, queues=[job.queue_name]
    )
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, worker=dead, host=host, started_at=timezone.now()
    )
    # Its RQ job was taken off the queue by the dead worker.
    redis.Redis.from_url(settings.REDIS_URL).lrem(f"rq:queue:{job.queue_name}", 0, job.rq_job_id)
    job.refresh_from_db()
    return job


@pytest.mark.parametrize("execution", ["in-process", "fork"])
def test_a_host_worker_runs_real_jobs_with_only_its_role_and_redis_user(
    start_worker, make_build, cpu_cell, role_database_url, host_redis_url, execution
):
    maintainer = factories.MaintainerFactory()
    passing = make_build(
        "lpokpkg", module_source="X = 1\n", run_test_py="import lpokpkg\nassert lpokpkg.X == 1\n"
    )
    failing = make_build("lpbadpkg", run_test_sh="echo nope\nexit 1\n")
    failing.package.maintainers.add(maintainer)
    slow = make_build("lpslowpkg", run_test_sh="sleep 300\n")
    jobs = {
        "passed": _enqueue(passing, cpu_cell),
        "failed": _enqueue(failing, cpu_cell),
        # A timeout is retried once: the host inserts the retry and pushes it to its queue.
        "timeout": _enqueue(slow, cpu_cell, timeout_s=2),
    }
    token = create_enrollment_token(name="lp", pre_approved=True)[1]

    limited_env = {
        "DATABASE_URL": role_database_url,
        "REDIS_URL": host_redis_url,
        "HOST_LIMITED_ROLE": "1",
        "WORKER_EXECUTION": execution,
    }
    worker = start_worker("--enroll-token", token, "--name", HOST, "--burst", env=limited_env)

    assert worker.wait(timeout=240) == 0, worker.output()[-4000:]
    output = worker.output()
    assert "permission denied" not in output.lower(), output[-4000:]
    assert "NOPERM" not in output, output[-4000:]
    for verdict, job in jobs.items():
        job.refresh_from_db()
        assert (job.status, job.verdict, job.host.name) == ("finished", verdict, HOST), output
        assert job.follow_ups_due  # left to the web side
    retry = Job.objects.get(retry_of=jobs["timeout"])
    assert (retry.status, retry.verdict, retry.host.name) == ("finished", "timeout", HOST)
    assert WorkerProcess.objects.get(host__name=HOST).stop_reason == "shut down"
    assert not Notification.objects.exists()  # the host wrote no notice

    # A restart without a token refreshes the enrolled host and ends the jobs of its earlier
    # worker that died (kill -9): the lost job ends `error` and its retry runs, all as the role.
    lost = _running_on_a_dead_worker(_enqueue(passing, cpu_cell), host=jobs["passed"].host)
    restart = start_worker("--name", HOST, "--burst", env=limited_env)
    assert restart.wait(timeout=240) == 0, restart.output()[-4000:]
    assert "permission denied" not in restart.output().lower(), restart.output()[-4000:]
    lost.refresh_from_db()
    assert (lost.status, lost.verdict) == ("finished", "error")
    assert "Worker lost" in lost.error_message
    lost_retry = Job.objects.get(retry_of=lost)
    assert (lost_retry.status, lost_retry.verdict) == ("finished", "passed")

    # The web side (the reconciler's step) runs the follow-ups, once.
    assert run_due_follow_ups() == len(jobs) + 3  # the retries and the lost job's too
    assert run_due_follow_ups() == 0
    assert not Job.objects.filter(follow_ups_due=True).exists()
    notice = Notification.objects.get()
    assert (notice.maintainer, notice.build) == (maintainer, failing)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT password FROM auth_user",
        "SELECT session_data FROM django_session",
        "SELECT token_hash FROM packages_app_packagetoken",
        "SELECT * FROM testing_app_promotion",
        "SELECT email FROM packages_app_maintainer",
        "UPDATE packages_app_package SET status = 'active'",
        "UPDATE packages_app_build SET sha256 = ''",
        "INSERT INTO testing_app_notification DEFAULT VALUES",
        "UPDATE testing_app_host SET state = 'active'",  # a host cannot approve itself
        "UPDATE testing_app_job SET build_id = 1",  # nor point a job at another build
        "DELETE FROM testing_app_job",
        "INSERT INTO testing_app_waiver DEFAULT VALUES",
        "SELECT * FROM django_migrations",
    ],
)
def test_the_host_role_is_refused_what_a_host_must_not_reach(role_database_url, statement):
    with (
        psycopg.connect(role_database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_the_host_redis_user_of_the_worker_cannot_reach_the_trusted_queues(host_redis_url):
    host = redis.Redis.from_url(host_redis_url)
    for command in (("LPUSH", "rq:queue:default", "x"), ("LRANGE", "rq:queue:promote", "0", "-1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            host.execute_command(*command)


def test_the_printed_sql_grants_columns_not_whole_tables_where_a_worker_writes_some():
    out = StringIO()
    call_command("host_db_role", "--role", "host_x", stdout=out)
    sql = out.getvalue()
    assert 'GRANT UPDATE ("status", "started_at",' in sql
    assert 'ON TABLE "testing_app_job" TO "host_x"' in sql
    update_host = next(line for line in sql.splitlines() if "UPDATE" in line and '_host"' in line)
    assert '"state"' not in update_host
    assert '"approved_by_id"' not in update_host
    assert "auth_user" not in sql
    assert 'packages_app_package"' not in sql
    assert "DELETE" not in sql


def test_a_host_with_the_role_but_without_host_limited_role_refuses_to_start(
    start_worker, role_database_url
):
    """Else every finished job would fail on its notices and stay `running`."""
    worker = start_worker("--name", HOST, "--burst", env={"DATABASE_URL": role_database_url})
    assert worker.wait(timeout=120) != 0
    assert "set HOST_LIMITED_ROLE=1" in worker.output()
    assert not Host.objects.exists()


def test_under_the_limited_role_a_host_leaves_install_to_the_web_side(settings):
    """`install` also carries the promotion gate's checks, which the role cannot record."""
    settings.HOST_LIMITED_ROLE = True
    with pytest.raises(CommandError, match="does not serve `install`"):
        call_command("distro_worker", "--name", HOST, "--cpu-queue", "install")
    assert not Host.objects.exists()
